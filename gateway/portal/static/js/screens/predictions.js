// Predictions: what the published iterations answered (stored predictions), with the model's tags (or boxes);
// accept or correct them and add the image to the training set.
import {boxedImage, boxElement, clamp, colourOf} from "../boxes.js";
import {field, fill, h, messageArea, percent, run, when} from "../dom.js";

const PAGE = 24;
const SUGGESTED = 0.5; // tags the model gave at least this probability start checked
const MOST_BOXES = 20; // boxes offered an image, the likeliest

export async function render({api, root, project, detection}) {
  const message = messageArea();
  const list = h("ul", {class: "stored", "aria-label": "Stored predictions"});
  const iteration = h("select", {});
  const refresh = h("button", {type: "button"}, "Refresh");
  const more = h("button", {type: "button", hidden: true}, "More");
  // A detector answers many unlikely boxes: those from the slider's probability are offered, and start kept.
  const slider = h("input", {type: "range", min: 0, max: 100, step: 1, value: 50});
  const shown = h("output", {}, "50%");
  root.append(h("div", {class: "row"}, field("Iteration", iteration), refresh,
                detection && field("Offer boxes from", slider, shown)), message, list, more);
  let results = []; // the stored predictions listed, redrawn when the slider moves
  let tags = [];
  let token = null;
  let generation = 0; // a newer reload wins over one still under way

  async function load(reset) {
    const mine = reset ? ++generation : generation;
    const asked = reset ? {orderBy: "Newest", maxCount: PAGE, iterationId: iteration.value || undefined} : token;
    const answer = await api.queryPredictions(project.id, asked);
    if (mine !== generation) return;
    if (reset) {
      fill(list);
      results = [];
    }
    token = {...answer.token, maxCount: PAGE};
    results.push(...answer.results);
    list.append(...answer.results.map(item));
    if (!list.children.length) list.append(h("li", {class: "empty"}, "No stored prediction yet: call the "
      + "prediction API of a published iteration (see Publish), or run a Quick Test."));
    more.hidden = !answer.token?.continuation;
  }

  function item(stored) {
    if (detection) return detectionItem(stored);
    const given = new Map(stored.predictions.map((p) => [p.tagId, p.probability]));
    const boxes = tags.map((tag) => {
      const box = h("input", {type: "checkbox", value: tag.id, checked: (given.get(tag.id) ?? 0) >= SUGGESTED});
      return h("label", {class: "choice"}, box, ` ${tag.name}`,
               given.has(tag.id) ? h("small", {}, ` ${percent(given.get(tag.id))}`) : "");
    });
    const itemMessage = messageArea();
    const add = h("button", {type: "button", class: "primary"}, "Add to training set");
    const remove = h("button", {type: "button", class: "quiet"}, "Delete");
    const top = stored.predictions[0];
    const element = h("li", {class: "card stored-item", "data-prediction": stored.id},
      h("img", {src: stored.thumbnailUri, alt: `Predicted ${top?.tagName ?? "nothing"}`, width: 160, height: 160}),
      h("div", {},
        h("p", {}, h("strong", {}, top ? `${top.tagName} ${percent(top.probability)}` : "No tag"),
          h("br"), h("small", {}, when(stored.created))),
        h("fieldset", {class: "choices"}, h("legend", {}, "Tags for the training set"), boxes),
        add, " ", remove, itemMessage));
    add.addEventListener("click", () => run(add, itemMessage, async () => {
      const tagIds = boxes.map((b) => b.querySelector("input")).filter((b) => b.checked).map((b) => b.value);
      const summary = await api.imagesFromPredictions(project.id, [{id: stored.id, tagIds}]);
      const status = summary.images[0]?.status;
      if (status === "OK" || status === "OKDuplicate") itemMessage.info(
        status === "OK" ? "Added to the training set." : "Already in the training set.");
      else itemMessage.show({code: status, message: "The image was not added."});
    }));
    remove.addEventListener("click", () => run(remove, itemMessage, async () => {
      await api.deletePredictions(project.id, [stored.id]);
      element.remove();
    }));
    return element;
  }

  /** A detector's stored prediction: its boxes drawn, each offered with a tag that can be corrected. */
  function detectionItem(stored) {
    const threshold = slider.value / 100;
    const offered = stored.predictions.filter((p) => p.boundingBox && p.probability >= threshold).slice(0, MOST_BOXES);
    const picture = boxedImage(stored.resizedImageUri || stored.originalImageUri,
                               `Stored prediction of ${offered.length} box(es)`);
    const choices = offered.map((p, i) => {
      const keep = h("input", {type: "checkbox", checked: true,
                               "aria-label": `Keep box ${i + 1} (${p.tagName} ${percent(p.probability)})`});
      const tag = h("select", {"aria-label": `Tag of box ${i + 1}`}, tags.map((t) => h("option", {
        value: t.id, selected: t.id === p.tagId}, t.name)));
      return {prediction: p, keep, tag, element: h("li", {}, keep, ` Box ${i + 1} `, tag,
                                                   h("small", {}, ` ${percent(p.probability)}`))};
    });
    const draw = () => fill(picture.layer, choices.map((c, i) => {
      if (!c.keep.checked) return null;
      const name = `${i + 1}: ${tags.find((t) => t.id === c.tag.value)?.name ?? c.prediction.tagName}`;
      return boxElement(c.prediction.boundingBox, name, colourOf(c.tag.value, tags),
                        {role: "img", "aria-label": `Box ${name}`});
    }));
    choices.forEach((c) => { c.keep.addEventListener("change", draw); c.tag.addEventListener("change", draw); });
    draw();
    const itemMessage = messageArea();
    const add = h("button", {type: "button", class: "primary"}, "Add to training set");
    const remove = h("button", {type: "button", class: "quiet"}, "Delete");
    const element = h("li", {class: "card stored-item detection", "data-prediction": stored.id},
      picture.element,
      h("div", {},
        h("p", {}, h("strong", {}, `${offered.length} box(es) from ${percent(threshold)}`), h("br"),
          h("small", {}, when(stored.created))),
        h("fieldset", {class: "choices"}, h("legend", {}, "Boxes for the training set"),
          choices.length ? h("ul", {class: "box-choices"}, choices.map((c) => c.element))
                         : "No box this likely: lower the slider."),
        add, " ", remove, itemMessage));
    add.addEventListener("click", () => run(add, itemMessage, async () => {
      const regions = choices.filter((c) => c.keep.checked)
        .map((c) => ({tagId: c.tag.value, ...clamp(c.prediction.boundingBox)}));
      const summary = await api.imagesFromPredictions(project.id, [{id: stored.id, regions}]);
      const result = summary.images[0];
      if (result?.status !== "OK" && result?.status !== "OKDuplicate") {
        return itemMessage.show({code: result?.status, message: "The image was not added."});
      }
      itemMessage.info(result.status === "OK" ? "Added to the training set. " : "Already in the training set. ");
      if (result.image) itemMessage.append(h("a", {href: `#/projects/${project.id}/regions/${result.image.id}`},
                                             "Correct its boxes in Regions"));
    }));
    remove.addEventListener("click", () => run(remove, itemMessage, async () => {
      await api.deletePredictions(project.id, [stored.id]);
      element.remove();
    }));
    return element;
  }

  slider.addEventListener("input", () => { shown.value = `${slider.value}%`; });
  slider.addEventListener("change", () => results.length && fill(list, results.map(item)));
  refresh.addEventListener("click", () => run(refresh, message, () => load(true)));
  iteration.addEventListener("change", () => run(null, message, () => load(true)));
  more.addEventListener("click", () => run(more, message, () => load(false)));
  try {
    const iterations = await api.iterations(project.id);
    tags = await api.tags(project.id);
    fill(iteration, h("option", {value: ""}, "All iterations"),
         iterations.filter((i) => i.status === "Completed").reverse().map((i) => h("option", {value: i.id}, i.name)));
    await load(true);
  } catch (error) {
    message.show(error);
  }
}
