// Quick Test: a file or an image URL against any trained iteration; the tags with their probabilities, or for a
// detector its boxes drawn on the image with their tags and probabilities.
import {boxedImage, predictedBoxes} from "../boxes.js";
import {field, fill, h, messageArea, percent, run} from "../dom.js";

export async function render({api, root, project, detection}) {
  const message = messageArea();
  let iterations = [];
  let tags = [];
  try {
    iterations = (await api.iterations(project.id)).filter((i) => i.status === "Completed").reverse();
    tags = await api.tags(project.id);
  } catch (error) {
    message.show(error);
  }
  // A published iteration runs where predictions run: it comes first.
  iterations.sort((a, b) => Boolean(b.publishName) - Boolean(a.publishName));
  const choose = h("select", {}, iterations.map((i) => h("option", {value: i.id},
    `${i.name}${i.publishName ? ` (published as ${i.publishName})` : " (not published)"}`)));
  const file = h("input", {type: "file", accept: "image/*"});
  const url = h("input", {type: "url", placeholder: "https://…", autocomplete: "off"});
  const testFile = h("button", {type: "button", class: "primary"}, "Test this file");
  const testUrl = h("button", {type: "button"}, "Test this URL");
  const slider = h("input", {type: "range", min: 0, max: 100, step: 1, value: 50});
  const shown = h("output", {}, "50%");
  const preview = h("div", {class: "preview"});
  const results = h("div", {class: "predictions", "aria-live": "polite"});
  root.append(h("div", {class: "card"}, h("h2", {}, "Quick Test"),
    iterations.length ? field("Iteration", choose) : h("p", {}, "No trained iteration yet: train one first."),
    h("div", {class: "row"}, field("Image file", file), testFile),
    h("div", {class: "row"}, field("Image URL", url), testUrl), message),
    detection && field("Show boxes from", slider, shown), h("div", {class: "split"}, preview, results));

  let last = null; // the picture and answer shown, redrawn when the slider moves
  function draw() {
    if (!last) return;
    const threshold = slider.value / 100;
    if (!detection) return fill(results, table(last.answer.predictions));
    const picture = boxedImage(last.picture, "The tested image");
    fill(picture.layer, predictedBoxes(last.answer.predictions, threshold, tags));
    fill(preview, picture.element);
    const kept = last.answer.predictions.filter((p) => p.probability >= threshold);
    fill(results, kept.length ? table(kept)
                              : h("p", {}, `No box at ${percent(threshold)} or more: lower the threshold.`));
  }
  slider.addEventListener("input", () => { shown.value = `${slider.value}%`; draw(); });

  async function test(button, picture, predict) {
    last = null;
    await run(button, message, async () => {
      fill(results, "Testing…");
      fill(preview, h("img", {src: picture, alt: "The tested image"}));
      last = {picture, answer: await predict()};
      draw();
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

/** Tags (or boxes) by probability, highest first (as the API sorts them). */
export function table(predictions) {
  return h("table", {class: "probabilities", "aria-label": "Predictions"},
    h("thead", {}, h("tr", {}, h("th", {scope: "col"}, "Tag"), h("th", {scope: "col"}, "Probability"))),
    h("tbody", {}, predictions.map((p) => h("tr", {}, h("th", {scope: "row"}, p.tagName),
      h("td", {}, h("meter", {min: 0, max: 1, value: p.probability, "aria-hidden": "true"}), " ",
        percent(p.probability))))));
}
