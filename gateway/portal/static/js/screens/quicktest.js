// Quick Test: a file or an image URL against a trained iteration; the tags with their probabilities.
import {field, fill, h, messageArea, percent, run} from "../dom.js";

export async function render({api, root, project}) {
  const message = messageArea();
  let iterations = [];
  try {
    iterations = (await api.iterations(project.id)).filter((i) => i.status === "Completed").reverse();
  } catch (error) {
    message.show(error);
  }
  // Quick tests run where predictions run: a published iteration comes first.
  iterations.sort((a, b) => Boolean(b.publishName) - Boolean(a.publishName));
  const choose = h("select", {}, iterations.map((i) => h("option", {value: i.id},
    `${i.name}${i.publishName ? ` (published as ${i.publishName})` : " (not published)"}`)));
  const file = h("input", {type: "file", accept: "image/*"});
  const url = h("input", {type: "url", placeholder: "https://…", autocomplete: "off"});
  const testFile = h("button", {type: "button", class: "primary"}, "Test this file");
  const testUrl = h("button", {type: "button"}, "Test this URL");
  const preview = h("div", {class: "preview"});
  const results = h("div", {class: "predictions", "aria-live": "polite"});
  root.append(h("div", {class: "card"}, h("h2", {}, "Quick Test"),
    iterations.length ? field("Iteration", choose) : h("p", {}, "No trained iteration yet."),
    h("div", {class: "row"}, field("Image file", file), testFile),
    h("div", {class: "row"}, field("Image URL", url), testUrl), message),
    h("div", {class: "split"}, preview, results));

  async function test(button, picture, predict) {
    await run(button, message, async () => {
      fill(results, "Testing…");
      fill(preview, h("img", {src: picture, alt: "The tested image"}));
      const answer = await predict();
      fill(results, table(answer.predictions));
    });
    if (!message.hidden) fill(results);
  }
  testFile.addEventListener("click", () => {
    if (!file.files[0]) return message.show(new Error("Choose an image file first."));
    test(testFile, URL.createObjectURL(file.files[0]),
         () => api.quickTestImage(project.id, choose.value, file.files[0]));
  });
  testUrl.addEventListener("click", () => {
    if (!url.value) return message.show(new Error("Type an image URL first."));
    test(testUrl, url.value, () => api.quickTestUrl(project.id, choose.value, url.value));
  });
}

/** Tags by probability, highest first (as the API sorts them). */
export function table(predictions) {
  return h("table", {class: "probabilities", "aria-label": "Predictions"},
    h("thead", {}, h("tr", {}, h("th", {scope: "col"}, "Tag"), h("th", {scope: "col"}, "Probability"))),
    h("tbody", {}, predictions.map((p) => h("tr", {}, h("th", {scope: "row"}, p.tagName),
      h("td", {}, h("meter", {min: 0, max: 1, value: p.probability, "aria-hidden": "true"}), " ",
        percent(p.probability))))));
}
