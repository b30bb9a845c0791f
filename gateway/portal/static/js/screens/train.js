// Train: Quick or Advanced (with a budget in hours), and the iterations, refreshed while one trains.
import {field, fill, h, messageArea, run, when} from "../dom.js";
import {radios} from "./projects.js";

const REFRESH_MS = 3000;

export async function render({api, root, project}) {
  const kind = radios("Training type", "trainingType",
                      [["Regular", "Quick training"], ["Advanced", "Advanced training"]]);
  const budget = h("input", {type: "number", min: 1, max: 48, value: 1, step: 1});
  const budgetField = field("Training budget (hours)", budget, "Advanced training fine-tunes within this budget.");
  budgetField.hidden = true;
  const force = h("input", {type: "checkbox"});
  const message = messageArea();
  const submit = h("button", {type: "submit", class: "primary"}, "Train");
  const form = h("form", {class: "card", "aria-label": "Train"}, h("h2", {}, "Train a new iteration"),
    kind.element, budgetField, h("label", {}, force, " Train even if nothing changed since the last iteration"),
    message, submit);
  kind.element.addEventListener("change", () => { budgetField.hidden = kind.value() !== "Advanced"; });
  const listMessage = messageArea();
  const nextStep = h("p", {class: "message info"});
  nextStep.hidden = true;
  const table = h("tbody", {});
  root.append(form, h("section", {"aria-label": "Iterations"}, h("h2", {}, "Iterations"), listMessage, nextStep,
    h("div", {class: "scroll"}, h("table", {},
      h("thead", {}, h("tr", {}, ["Iteration", "Status", "Type", "Created", "Trained", "Published as", "Details"]
        .map((c) => h("th", {scope: "col"}, c)))), table))));

  let timer = null;
  async function refresh() {
    clearTimeout(timer);
    try {
      const iterations = await api.iterations(project.id);
      listMessage.clear();
      fill(table, iterations.length ? [...iterations].reverse().map((i) => row(project, i))
                                    : h("tr", {}, h("td", {colspan: 7}, "No iteration yet.")));
      if (iterations.some((i) => i.status === "Training")) timer = setTimeout(refresh, REFRESH_MS);
      else if (message.classList.contains("info")) message.clear(); // "is training" said its part
      showNextStep(iterations);
    } catch (error) {
      listMessage.show(error);
      timer = setTimeout(refresh, REFRESH_MS * 3);
    }
  }

  /** What to do with a trained iteration, for someone new to it. */
  function showNextStep(iterations) {
    const trained = iterations.filter((i) => i.status === "Completed").at(-1);
    nextStep.hidden = !trained || iterations.some((i) => i.publishName);
    if (nextStep.hidden) return;
    const tab = (name, label) => h("a", {href: `#/projects/${project.id}/${name}`}, label);
    fill(nextStep, `${trained.name} is trained. Next: read its `, tab("performance", "Performance"),
         ", try it on a new image in ", tab("quicktest", "Quick Test"), ", then ", tab("publish", "Publish"),
         " it to call it from your applications.");
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run(submit, message, async () => {
      const advanced = kind.value() === "Advanced";
      const iteration = await api.train(project.id, {trainingType: kind.value(), forceTrain: force.checked,
                                                     reservedBudgetInHours: advanced ? budget.value : undefined});
      message.info(`${iteration.name} is training: its status below follows it.`);
      await refresh();
    });
  });

  await refresh();
  return () => clearTimeout(timer);
}

function row(project, iteration) {
  const link = iteration.status === "Completed"
    ? h("a", {href: `#/projects/${project.id}/performance/${iteration.id}`}, iteration.name)
    : iteration.name;
  return h("tr", {},
    h("th", {scope: "row"}, link),
    h("td", {}, h("span", {class: `status ${iteration.status}`}, iteration.status)),
    h("td", {}, iteration.trainingType === "Advanced"
      ? `Advanced (${iteration.reservedBudgetInHours ?? "?"} h)` : "Quick"),
    h("td", {}, when(iteration.created)),
    h("td", {}, when(iteration.trainedAt)),
    h("td", {}, iteration.publishName || "–"),
    h("td", {}, iteration.trainingErrorDetails || ""));
}
