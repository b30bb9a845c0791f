// Sign-in: the Training-Key opens the projects of its namespace; the Prediction-Key only fills the curl lines.
import {Api} from "../api.js";
import {field, h, messageArea, run} from "../dom.js";
import {session} from "../session.js";

export function render({root, done}) {
  const trainingKey = h("input", {type: "password", autocomplete: "off", required: true, spellcheck: "false"});
  const predictionKey = h("input", {type: "password", autocomplete: "off", spellcheck: "false"});
  const message = messageArea();
  const submit = h("button", {type: "submit", class: "primary"}, "Sign in");
  const form = h("form", {class: "card narrow", "aria-label": "Sign in"},
    h("h1", {}, "Sign in"),
    h("p", {}, "Use your namespace's Training-Key. On one machine, ",
      h("code", {}, "kubevision local keys"), " prints it."),
    field("Training key", trainingKey),
    field("Prediction key (optional)", predictionKey, "Shown in the ready curl lines of published iterations."),
    message, submit);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run(submit, message, async () => {
      const key = trainingKey.value.trim();
      await new Api(key).projects(); // a wrong key answers 401 here, not on the next screen
      session.signIn(key, predictionKey.value.trim());
      done();
    });
  });
  root.append(form);
  trainingKey.focus();
}
