// The precision-recall curve of a classifier from its per-image results (Custom Vision's ImagePerformance:
// the image's tags and the iteration's predictions), and an SVG drawing of it. No state, no DOM but the SVG.

/**
 * Points {threshold, precision, recall} over every (image, tag) pair: a pair is positive when the image has the
 * tag, and predicted when the tag's probability reaches the threshold. tagId limits it to one tag.
 */
export function precisionRecall(images, tagId) {
  const pairs = [];
  for (const image of images) {
    const truth = new Set((image.tags || []).map((t) => t.tagId));
    for (const prediction of image.predictions || []) {
      if (tagId && prediction.tagId !== tagId) continue;
      pairs.push({score: prediction.probability, positive: truth.has(prediction.tagId)});
    }
  }
  const positives = pairs.filter((p) => p.positive).length;
  if (!positives) return [];
  pairs.sort((a, b) => b.score - a.score);
  const points = [];
  let truePositives = 0;
  pairs.forEach((pair, i) => {
    truePositives += pair.positive;
    if (i + 1 < pairs.length && pairs[i + 1].score === pair.score) return; // ties move together
    points.push({threshold: pair.score, precision: truePositives / (i + 1), recall: truePositives / positives});
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
