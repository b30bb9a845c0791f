// The precision-recall curve of an iteration from its per-image results (Custom Vision's ImagePerformance: a
// held-out image's true tags, or a detector's true boxes, and the iteration's predictions), and an SVG drawing of
// it. No state, no DOM but the SVG.

/**
 * A classifier's points {threshold, precision, recall} over every (image, tag) pair: a pair is positive when the
 * image has the tag, and predicted when the tag's probability reaches the threshold. tagId limits it to one tag.
 */
export function precisionRecall(images, tagId) {
  const scored = [];
  for (const image of images) {
    const truth = new Set((image.tags || []).map((t) => t.tagId));
    for (const prediction of image.predictions || []) {
      if (tagId && prediction.tagId !== tagId) continue;
      scored.push({score: prediction.probability, positive: truth.has(prediction.tagId)});
    }
  }
  return curve(scored, scored.filter((s) => s.positive).length);
}

/**
 * A detector's points over its predicted boxes: each image's boxes, most probable first, are matched one by one to
 * the true box of the same tag, not matched yet, that overlaps them most, if that overlap (intersection over union)
 * reaches `overlap`; a matched box is a true positive, any other a false positive. Recall is out of every true box,
 * so boxes never found keep it below 1. tagId limits it to one tag.
 */
export function detectionPrecisionRecall(images, overlap, tagId) {
  const scored = [];
  let positives = 0;
  for (const image of images) {
    const truth = (image.regions || []).filter((r) => !tagId || r.tagId === tagId);
    positives += truth.length;
    const boxes = (image.predictions || []).filter((p) => p.boundingBox && (!tagId || p.tagId === tagId))
      .sort((a, b) => b.probability - a.probability);
    const unmatched = new Set(truth);
    for (const box of boxes) {
      const match = bestMatch(box, unmatched, overlap);
      unmatched.delete(match);
      scored.push({score: box.probability, positive: Boolean(match)});
    }
  }
  return curve(scored, positives);
}

/** The true box of the prediction's tag that overlaps it most, at least by `overlap`; undefined when none does. */
function bestMatch(prediction, regions, overlap) {
  let best, bestOverlap = overlap;
  for (const region of regions) {
    if (region.tagId !== prediction.tagId) continue;
    const share = intersectionOverUnion(prediction.boundingBox, region);
    if (share >= bestOverlap) [best, bestOverlap] = [region, share];
  }
  return best;
}

/** The area two boxes {left, top, width, height} share over the area they cover together. */
export function intersectionOverUnion(a, b) {
  const width = Math.min(a.left + a.width, b.left + b.width) - Math.max(a.left, b.left);
  const height = Math.min(a.top + a.height, b.top + b.height) - Math.max(a.top, b.top);
  if (width <= 0 || height <= 0) return 0;
  const shared = width * height;
  return shared / (a.width * a.height + b.width * b.height - shared);
}

/** Precision and recall at each cut of the scored predictions, highest score first, out of `positives`. */
function curve(scored, positives) {
  if (!positives) return [];
  scored.sort((a, b) => b.score - a.score);
  const points = [];
  let truePositives = 0;
  scored.forEach((item, i) => {
    truePositives += item.positive;
    if (i + 1 < scored.length && scored[i + 1].score === item.score) return; // ties move together
    points.push({threshold: item.score, precision: truePositives / (i + 1), recall: truePositives / positives});
  });
  return points;
}

/** The point the slider's threshold picks: the lowest threshold at or above it. */
export function at(points, threshold) {
  return points.filter((p) => p.threshold >= threshold).at(-1);
}

const SVG = "http://www.w3.org/2000/svg";

function node(tag, attributes, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

/** An SVG chart: recall across, precision up, the threshold's point marked. */
export function drawCurve(points, threshold) {
  const size = 240, pad = 36;
  const x = (recall) => pad + recall * (size - pad - 8);
  const y = (precision) => size - pad - precision * (size - pad - 8);
  const svg = node("svg", {viewBox: `0 0 ${size} ${size}`, role: "img", class: "curve",
                           "aria-label": "Precision-recall curve"});
  svg.append(node("title", {}, "Precision against recall as the probability threshold falls"));
  svg.append(node("rect", {x: pad, y: 8, width: size - pad - 8, height: size - pad - 8, class: "frame"}));
  for (const tick of [0, 0.5, 1]) {
    svg.append(node("text", {x: x(tick), y: size - pad + 14, "text-anchor": "middle"}, tick));
    svg.append(node("text", {x: pad - 6, y: y(tick) + 4, "text-anchor": "end"}, tick));
  }
  svg.append(node("text", {x: x(0.5), y: size - 4, "text-anchor": "middle"}, "Recall"));
  svg.append(node("text", {x: 10, y: y(0.5), transform: `rotate(-90 10 ${y(0.5)})`, "text-anchor": "middle"},
                  "Precision"));
  const path = [{precision: 1, recall: 0}, ...points].map((p, i) => `${i ? "L" : "M"}${x(p.recall)},${y(p.precision)}`);
  svg.append(node("path", {d: path.join(" "), class: "line"}));
  const chosen = at(points, threshold);
  if (chosen) svg.append(node("circle", {cx: x(chosen.recall), cy: y(chosen.precision), r: 4, class: "mark"}));
  return svg;
}
