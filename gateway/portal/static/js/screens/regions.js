// Regions (detection projects): draw, move, resize, tag and delete the boxes of the project's images, one image at
// a time. The API has no update of a region: a moved, resized or re-tagged box is created anew, then the old one is
// deleted, so a refusal loses nothing.
import {boxedImage, boxElement, colourOf, place} from "../boxes.js";
import {field, fill, h, messageArea, run} from "../dom.js";

const PAGE = 256; // the API's largest page
const SMALLEST = 0.01; // a drag shorter than this share of the image is a click, not a box
const CORNERS = ["nw", "ne", "sw", "se"];
const KEYS = "← and → go to the previous and next image; Delete removes the chosen box; Esc lets it go.";

export async function render({api, root, project, rest}) {
  const state = {tags: [], images: [], index: 0, selected: null};
  const message = messageArea();
  const show = h("select", {}, h("option", {value: "untagged"}, "Images without boxes"),
                 h("option", {value: "all"}, "All images"));
  show.value = rest[0] ? "all" : "untagged";
  const previous = h("button", {type: "button", "aria-keyshortcuts": "ArrowLeft"}, "← Previous");
  const next = h("button", {type: "button", "aria-keyshortcuts": "ArrowRight"}, "Next →");
  const position = h("span", {role: "status", class: "position"});
  const tagList = h("datalist", {id: "region-tags"});
  const tagName = h("input", {list: "region-tags", autocomplete: "off", placeholder: "e.g. fork"});
  const stage = h("div", {class: "stage"});
  const regionList = h("ul", {class: "region-list", "aria-label": "Boxes on this image"});
  root.append(tagList,
    h("p", {class: "note"}, "Drag on the image to draw a box around an object: it gets the tag for new boxes (choose ",
      "one, or type a new name). Drag a box to move it, drag its corners to resize it. ", KEYS),
    h("div", {class: "row"}, field("Tag for new boxes", tagName), field("Show", show), previous, position, next),
    message,
    h("div", {class: "regions-split"}, stage,
      h("section", {"aria-label": "Boxes"}, h("h2", {}, "Boxes"), regionList)));

  const image = () => state.images[state.index];

  async function loadTags() {
    state.tags = await api.tags(project.id);
    fill(tagList, state.tags.map((t) => h("option", {value: t.name})));
    if (!tagName.value && state.tags.length) tagName.value = state.tags[0].name;
  }

  async function loadImages(imageId) {
    const all = [];
    for (let skip = 0; ; skip += PAGE) {
      const page = await api.images(project.id, {filter: show.value, take: PAGE, skip, orderBy: "Oldest"});
      all.push(...page);
      if (page.length < PAGE) break;
    }
    if (!all.length && show.value === "untagged" && await api.imageCount(project.id)) {
      show.value = "all"; // every image has boxes: show them all rather than nothing
      await loadImages(imageId);
      message.info("Every image has boxes: all images are shown.");
      return;
    }
    state.images = all;
    state.index = Math.max(0, all.findIndex((i) => i.id === imageId));
    showImage();
  }

  function go(step) {
    const index = state.index + step;
    if (index < 0 || index >= state.images.length) return;
    state.index = index;
    showImage();
  }

  function showImage() {
    state.selected = null;
    message.clear();
    const current = image();
    const count = state.images.length;
    fill(position, count ? `Image ${state.index + 1} of ${count}` : "No image");
    previous.disabled = state.index <= 0;
    next.disabled = state.index >= count - 1;
    if (!current) {
      fill(regionList);
      fill(stage, h("p", {class: "empty"}, "No image yet: add some in ",
                    h("a", {href: `#/projects/${project.id}/images`}, "Images"), ", then draw their boxes here."));
      return;
    }
    // The address names the image (a reload comes back to it) without leaving the screen.
    history.replaceState(null, "", `#/projects/${project.id}/regions/${current.id}`);
    const picture = boxedImage(current.resizedImageUri || current.originalImageUri,
                               `Image ${state.index + 1} of ${count}`);
    picture.layer.classList.add("drawable");
    picture.layer.addEventListener("pointerdown", (event) => drag(event, picture.layer));
    fill(stage, picture.element);
    drawRegions();
  }

  function drawRegions() {
    const layer = stage.querySelector(".box-layer");
    const regions = image()?.regions || [];
    if (layer) fill(layer, regions.map(regionBox));
    fill(regionList, regions.length ? regions.map(listItem)
                                    : h("li", {class: "empty"}, "No box yet: drag on the image to draw one."));
  }

  function regionBox(region, i) {
    const chosen = region === state.selected;
    const element = boxElement(region, `${i + 1}: ${region.tagName}`, colourOf(region.tagId, state.tags), {
      tabindex: 0, role: "button", "aria-label": `Box ${i + 1}: ${region.tagName}`,
      "aria-pressed": String(chosen), class: chosen ? "box selected" : "box"});
    element.region = region;
    element.addEventListener("focus", () => select(region));
    element.append(...CORNERS.map((corner) => h("span", {class: `handle ${corner}`, "data-corner": corner})));
    return element;
  }

  function listItem(region, i) {
    const retag = h("select", {"aria-label": `Tag of box ${i + 1}`}, state.tags.map((t) => h("option", {
      value: t.id, selected: t.id === region.tagId}, t.name)));
    retag.addEventListener("change", () => save(() => replaceRegion(region, {...region, tagId: retag.value})));
    const remove = h("button", {type: "button", class: "quiet",
                                "aria-label": `Delete box ${i + 1} (${region.tagName})`}, "Delete");
    remove.addEventListener("click", () => save(() => removeRegion(region)));
    const swatch = h("span", {class: "swatch", "aria-hidden": "true"});
    swatch.style.background = colourOf(region.tagId, state.tags);
    return h("li", {class: region === state.selected ? "selected" : ""}, swatch, `Box ${i + 1} `, retag, remove);
  }

  /** Choose a box (or none): its handles show and Delete removes it. */
  function select(region) {
    if (state.selected === region) return;
    state.selected = region;
    for (const element of stage.querySelectorAll(".box")) {
      element.classList.toggle("selected", element.region === region);
      element.setAttribute("aria-pressed", String(element.region === region));
    }
    regionList.querySelectorAll("li").forEach((item, i) => {
      item.classList.toggle("selected", (image()?.regions || [])[i] === region);
    });
  }

  /** One pointer drag on the image: a new box from empty space, a move from a box, a resize from its corner. */
  function drag(event, layer) {
    if (event.button !== 0) return;
    event.preventDefault();
    const frame = layer.getBoundingClientRect();
    const at = (e) => ({x: Math.min(Math.max((e.clientX - frame.left) / frame.width, 0), 1),
                        y: Math.min(Math.max((e.clientY - frame.top) / frame.height, 0), 1)});
    const start = at(event);
    let element = event.target.closest(".box");
    const region = element?.region;
    const corner = event.target.dataset?.corner;
    let shape;
    if (region && corner) {
      const anchor = {x: corner.endsWith("w") ? region.left + region.width : region.left,
                      y: corner.startsWith("n") ? region.top + region.height : region.top};
      shape = (point) => span(anchor, point);
    } else if (region) {
      shape = (point) => ({
        left: Math.min(Math.max(region.left + point.x - start.x, 0), 1 - region.width),
        top: Math.min(Math.max(region.top + point.y - start.y, 0), 1 - region.height),
        width: region.width, height: region.height});
    } else {
      element = boxElement({left: start.x, top: start.y, width: 0, height: 0}, "new box", "#f0b429",
                           {class: "box drawing"});
      layer.append(element);
      shape = (point) => span(start, point);
    }
    if (region) {
      select(region);
      element.focus({preventScroll: true});
    } else {
      select(null);
    }
    let box = null;
    const move = (e) => { box = shape(at(e)); place(element, box); };
    const end = () => {
      layer.removeEventListener("pointermove", move);
      layer.removeEventListener("pointerup", end);
      layer.removeEventListener("pointercancel", end);
      if (!box || box.width < SMALLEST || box.height < SMALLEST) {
        if (region) place(element, region); else element.remove();
        return;
      }
      save(() => region ? replaceRegion(region, {...box, tagId: region.tagId}) : addRegion(box));
    };
    layer.setPointerCapture(event.pointerId);
    layer.addEventListener("pointermove", move);
    layer.addEventListener("pointerup", end);
    layer.addEventListener("pointercancel", end);
  }

  /** Run a change of the regions; an error is shown and the boxes go back to what the API holds. */
  async function save(change) {
    await run(null, message, change);
    drawRegions();
  }

  async function addRegion(box) {
    const tagId = await tagForNewBoxes();
    const created = await createOne({...box, tagId});
    image().regions = [...(image().regions || []), created];
    state.selected = created;
  }

  async function replaceRegion(old, changed) {
    const created = await createOne(changed);
    await api.deleteRegions(project.id, [old.regionId]);
    image().regions = image().regions.map((r) => r === old ? created : r);
    state.selected = created;
  }

  async function removeRegion(region) {
    await api.deleteRegions(project.id, [region.regionId]);
    image().regions = image().regions.filter((r) => r !== region);
    state.selected = null;
  }

  async function createOne({tagId, left, top, width, height}) {
    const summary = await api.createRegions(project.id, [{imageId: image().id, tagId, left, top, width, height}]);
    const created = summary.created?.[0];
    if (!created) {
      throw new Error(summary.duplicated?.length ? "That box is already on the image with this tag."
                                                 : "The image holds as many boxes as it may.");
    }
    return created;
  }

  /** The id of the tag named for new boxes, created when it is new. */
  async function tagForNewBoxes() {
    const name = tagName.value.trim();
    if (!name) {
      tagName.focus();
      throw new Error("Name the tag of the new box first, in \"Tag for new boxes\".");
    }
    const known = state.tags.find((t) => t.name.toLowerCase() === name.toLowerCase());
    if (known) return known.id;
    const tag = await api.createTag(project.id, name);
    await loadTags();
    return tag.id;
  }

  const onKey = (event) => {
    if (event.target.closest?.("input, select, textarea") || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === "ArrowRight") go(1);
    else if (event.key === "ArrowLeft") go(-1);
    else if ((event.key === "Delete" || event.key === "Backspace") && state.selected) {
      const region = state.selected;
      save(() => removeRegion(region));
    } else if (event.key === "Escape") select(null);
    else return;
    event.preventDefault();
  };
  document.addEventListener("keydown", onKey);
  previous.addEventListener("click", () => go(-1));
  next.addEventListener("click", () => go(1));
  show.addEventListener("change", () => run(null, message, () => loadImages(image()?.id)));

  try {
    await loadTags();
    await loadImages(rest[0]);
  } catch (error) {
    message.show(error);
  }
  return () => document.removeEventListener("keydown", onKey);
}

/** The box between two points. */
function span(a, b) {
  return {left: Math.min(a.x, b.x), top: Math.min(a.y, b.y), width: Math.abs(b.x - a.x), height: Math.abs(b.y - a.y)};
}
