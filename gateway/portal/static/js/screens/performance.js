// Performance: an iteration's precision, recall and AP (mAP for a detector) at a probability threshold (and an
// overlap threshold for a detector), per tag, and its PR curve from the held-out images' results.
import {field, fill, h, messageArea, percent} from "../dom.js";
import {detectionPrecisionRecall, drawCurve, precisionRecall} from "../prcurve.js";

export async function render({api, root, project, rest, navigate, detection}) {
  const message = messageArea();
  let iterations;
  try {
    iterations = (await api.iterations(project.id)).filter((i) => i.status === "Completed").reverse();
  } catch (error) {
    root.append(message);
    return message.show(error);
  }
  if (!iterations.length) {
    root.append(h("p", {}, "No trained iteration yet. ", h("a", {href: `#/projects/${project.id}/train`},
                                                           "Train one")));
    return;
  }
  const iteration = iterations.find((i) => i.id === rest[0]) || iterations[0];
  const choose = h("select", {}, iterations.map((i) => h("option", {value: i.id, selected: i === iteration},
    `${i.name}${i.publishName ? ` (published as ${i.publishName})` : ""}`)));
  choose.addEventListener("change", () => navigate(`#/projects/${project.id}/performance/${choose.value}`));
  const slider = h("input", {type: "range", min: 0, max: 100, step: 1, value: 50});
  const shown = h("output", {}, "50%");
  // A box counts as found when it overlaps a true box of its tag by this share (intersection over union).
  const overlap = h("input", {type: "range", min: 0, max: 100, step: 1, value: 50});
  const overlapShown = h("output", {}, "50%");
  const summary = h("div", {class: "figures", "aria-live": "polite"});
  const perTag = h("tbody", {});
  const curve = h("figure", {class: "curve-box"});
  const curveTag = h("select", {}, h("option", {value: ""}, "All tags"));
  curveTag.addEventListener("change", () => drawPerImage(slider.value / 100));
  const curveChoice = field("Curve of", curveTag);
  curveChoice.hidden = true; // until the per-image results are read
  root.append(h("div", {class: "row"}, field("Iteration", choose),
                field("Probability threshold", slider, shown),
                detection && field("Overlap threshold", overlap, overlapShown)),
              message, summary,
              h("div", {class: "split"},
                h("section", {"aria-label": "Performance per tag"}, h("h2", {}, "Performance per tag"),
                  h("div", {class: "scroll"}, h("table", {}, h("thead", {}, h("tr", {},
                    ["Tag", "Precision", "Recall", "AP"].map((c) => h("th", {scope: "col"}, c)))), perTag))),
                h("section", {"aria-label": "Precision-recall curve"}, h("h2", {}, "Precision-recall curve"),
                  curveChoice, curve)));

  let images = null; // the per-image results, once read; null while not offered
  let pending = 0;
  async function update() {
    const threshold = slider.value / 100;
    shown.value = `${slider.value}%`;
    overlapShown.value = `${overlap.value}%`;
    const request = ++pending;
    try {
      const performance = await api.performance(project.id, iteration.id, threshold,
                                                detection ? overlap.value / 100 : undefined);
      if (request !== pending) return; // a later slider position has been asked for
      message.clear();
      fill(summary, figure("Precision", performance.precision), figure("Recall", performance.recall),
           figure(detection ? "mAP" : "AP", performance.averagePrecision));
      if (curveTag.options.length === 1) {
        curveTag.append(...performance.perTagPerformance.map((t) => h("option", {value: t.id}, t.name)));
      }
      fill(perTag, performance.perTagPerformance.map((t) => h("tr", {}, h("th", {scope: "row"}, t.name),
        h("td", {}, percent(t.precision)), h("td", {}, percent(t.recall)), h("td", {}, percent(t.averagePrecision)))));
    } catch (error) {
      if (request !== pending) return;
      message.show(error); // the figures of the previous thresholds stay, dimmed
      for (const part of [summary, perTag]) part.classList.add("stale");
      return;
    }
    for (const part of [summary, perTag]) part.classList.remove("stale");
    drawPerImage(threshold);
  }

  function drawPerImage(threshold) {
    if (images === null) return;
    const tagId = curveTag.value || undefined;
    const points = detection ? detectionPrecisionRecall(images, overlap.value / 100, tagId)
                             : precisionRecall(images, tagId);
    fill(curve, points.length ? drawCurve(points, threshold) : "No held-out result to draw the curve from.",
         h("figcaption", {}, `${images.length} held-out images`
           + (detection ? `; a box is found at an overlap of ${overlap.value}% or more` : "")
           + "; the dot is the threshold."));
  }

  slider.addEventListener("input", () => { shown.value = `${slider.value}%`; });
  slider.addEventListener("change", update);
  overlap.addEventListener("input", () => { overlapShown.value = `${overlap.value}%`; });
  overlap.addEventListener("change", update);
  await update();
  try {
    images = await api.imagePerformances(project.id, iteration.id);
    curveChoice.hidden = false;
    drawPerImage(slider.value / 100);
  } catch (error) {
    // An iteration (or a gateway) without per-image results (GetImagePerformances) still shows the figures above.
    fill(curve, h("p", {class: "note"}, `The curve needs the iteration's per-image results, which the gateway `
                  + `does not give for it (${error.code}).`));
  }
}

function figure(name, value) {
  return h("div", {class: "figure"}, h("span", {class: "value"}, percent(value)), h("span", {}, name));
}
