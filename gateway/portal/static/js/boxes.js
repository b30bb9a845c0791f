// Boxes over an image (detection): the regions of the training set and the boxes a detector predicted. A box is
// {left, top, width, height}, fractions of the image, as the API gives it; it is drawn as a positioned element in
// percent, so it follows the image at any width. Positions are set through element.style (the CSP forbids style
// attributes in markup, not the CSSOM).
import {h, percent} from "./dom.js";

const COLOURS = ["#e8590c", "#1c7ed6", "#2b8a3e", "#ae3ec9", "#c92a2a", "#0c8599", "#5f3dc4", "#a07a00"];

/** A colour per tag, the same on every screen for one list of tags. */
export function colourOf(tagId, tags) {
  const index = Math.max(0, tags.findIndex((t) => t.id === tagId));
  return COLOURS[index % COLOURS.length];
}

/** An image with a layer for boxes on top of it; `layer` takes the box elements. */
export function boxedImage(src, alt) {
  const layer = h("div", {class: "box-layer"});
  return {element: h("div", {class: "boxed"}, h("img", {src, alt, draggable: "false"}), layer), layer};
}

/** Place an element on a box (fractions of the image). */
export function place(element, box) {
  element.style.left = `${box.left * 100}%`;
  element.style.top = `${box.top * 100}%`;
  element.style.width = `${box.width * 100}%`;
  element.style.height = `${box.height * 100}%`;
  return element;
}

/** A drawn box with its caption ("fork 87%" for a prediction, "fork" for a region). */
export function boxElement(box, caption, colour, attributes = {}) {
  const element = h("div", {class: "box", ...attributes}, h("span", {class: "box-caption"}, caption));
  element.style.borderColor = colour;
  element.firstChild.style.background = colour;
  return place(element, box);
}

/** The predicted boxes at or above the threshold, as drawn boxes with tag and probability. */
export function predictedBoxes(predictions, threshold, tags) {
  return predictions.filter((p) => p.boundingBox && p.probability >= threshold).map((p) => boxElement(
    p.boundingBox, `${p.tagName} ${percent(p.probability)}`, colourOf(p.tagId, tags),
    {role: "img", "aria-label": `${p.tagName} ${percent(p.probability)}`}));
}

/** A box with its edges kept inside the image. */
export function clamp(box) {
  const left = Math.min(Math.max(box.left, 0), 1), top = Math.min(Math.max(box.top, 0), 1);
  return {left, top, width: Math.min(box.width, 1 - left), height: Math.min(box.height, 1 - top)};
}
