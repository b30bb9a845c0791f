// Images: upload many files with tags (progress and per-file results), a paged grid with tag and untagged
// filters, and tagging, untagging or deleting the selected images.
import {field, fill, h, messageArea, run} from "../dom.js";

const PAGE = 48;
// Custom Vision's per-image statuses, said plainly.
const REASONS = {
  OK: "added",
  OKDuplicate: "already in the project",
  ErrorSource: "could not be read",
  ErrorImageFormat: "not a JPEG, PNG, BMP, GIF or WEBP image",
  ErrorImageSize: "over the size limit (6 MB)",
  ErrorImageDimensions: "too many pixels",
  ErrorInvalidTag: "a tag does not exist",
  ErrorNegativeAndRegularTagOnSameImage: "the Negative tag cannot go with another tag",
  ErrorLimitExceed: "the project holds as many images as it may",
  ErrorStorage: "storage failed: try again",
};

export async function render({api, root, project, detection}) {
  const state = {tags: [], filter: "all", tagId: "", skip: 0, selected: new Set(), loads: 0};
  const tagList = h("datalist", {id: "known-tags"});
  const tagSummary = h("ul", {class: "chips", "aria-label": "Tags"});
  const message = messageArea();
  const grid = h("ul", {class: "grid", "aria-label": "Images"});
  const pager = h("div", {class: "pager"});
  const actions = selectionActions();
  const filters = filterBar();
  root.append(tagList, uploadPanel(), h("section", {"aria-label": "Tags"}, h("h2", {}, "Tags"), tagSummary),
              h("section", {"aria-label": "Project images"}, h("h2", {}, "Images"), filters.element, actions.element,
                message, grid, pager));
  await refresh();

  async function loadTags() {
    state.tags = await api.tags(project.id);
    fill(tagList, state.tags.map((t) => h("option", {value: t.name})));
    fill(tagSummary, state.tags.length ? state.tags.map((t) => h("li", {class: "chip"}, `${t.name} `,
      h("span", {class: "count", "aria-label": `${t.imageCount} images`}, t.imageCount)))
      : h("li", {}, detection ? "No tags yet: name them when you draw boxes in Regions."
                              : "No tags yet: name them when you upload."));
    filters.update();
    actions.update();
  }

  async function refresh() {
    try {
      await loadTags();
      await loadPage();
    } catch (error) {
      message.show(error);
    }
  }

  async function loadPage() {
    const mine = ++state.loads; // the page of the latest filter wins over one still loading
    const options = {filter: state.filter, tagIds: state.tagId || undefined};
    const [count, page] = await Promise.all([api.imageCount(project.id, options),
      api.images(project.id, {...options, take: PAGE, skip: state.skip})]);
    if (mine !== state.loads) return;
    state.selected.clear();
    actions.update();
    fill(grid, page.length ? page.map(tile) : h("li", {class: "empty"}, "No images here."));
    const last = Math.min(state.skip + PAGE, count);
    const previous = h("button", {type: "button", disabled: state.skip === 0}, "Previous");
    const next = h("button", {type: "button", disabled: last >= count}, "Next");
    previous.addEventListener("click", () => { state.skip = Math.max(0, state.skip - PAGE); run(null, message, loadPage); });
    next.addEventListener("click", () => { state.skip += PAGE; run(null, message, loadPage); });
    fill(pager, previous, h("span", {role: "status"}, count ? `${state.skip + 1}–${last} of ${count}` : "0 images"),
         next);
  }

  function tile(image) {
    const names = [...new Set([...image.tags || [], ...image.regions || []].map((t) => t.tagName))];
    const boxes = image.regions?.length;
    const label = boxes ? `${boxes} box${boxes > 1 ? "es" : ""}: ${names.join(", ")}`
                        : names.length ? names.join(", ") : detection ? "no box" : "untagged";
    const box = h("input", {type: "checkbox", "aria-label": `Select image ${image.id} (${label})`});
    box.addEventListener("change", () => {
      if (box.checked) state.selected.add(image.id); else state.selected.delete(image.id);
      actions.update();
    });
    return h("li", {class: "tile"}, h("label", {},
      box, h("img", {src: image.thumbnailUri, alt: label, width: 120, height: 120}),
      h("span", {class: "tile-tags"}, label)),
      detection && h("a", {href: `#/projects/${project.id}/regions/${image.id}`, class: "tile-link"}, "Draw boxes"));
  }

  function filterBar() {
    const show = h("select", {}, h("option", {value: "all"}, "All images"),
                   h("option", {value: "tagged"}, detection ? "With boxes" : "Tagged"),
                   h("option", {value: "untagged"}, detection ? "Without boxes" : "Untagged"));
    const tag = h("select", {});
    const apply = () => {
      state.filter = show.value;
      tag.disabled = show.value === "untagged";
      state.tagId = tag.disabled ? "" : tag.value;
      state.skip = 0;
      run(null, message, loadPage);
    };
    show.addEventListener("change", apply);
    tag.addEventListener("change", apply);
    const element = h("div", {class: "row"}, field("Show", show), field("With tag", tag));
    return {element, update() {
      fill(tag, h("option", {value: ""}, "Any tag"), state.tags.map((t) => h("option", {value: t.id}, t.name)));
      tag.value = state.tags.some((t) => t.id === state.tagId) ? state.tagId : "";
    }};
  }

  function selectionActions() {
    const count = h("span", {role: "status"});
    const tag = h("select", {});
    const add = h("button", {type: "button"}, "Add tag");
    const remove = h("button", {type: "button"}, "Remove tag");
    const del = h("button", {type: "button", class: "danger"}, "Delete images");
    const chosen = () => [...state.selected];
    add.addEventListener("click", () => run(add, message, async () => {
      await api.tagImages(project.id, chosen(), [tag.value]);
      await refresh();
    }));
    remove.addEventListener("click", () => run(remove, message, async () => {
      await api.untagImages(project.id, chosen(), [tag.value]);
      await refresh();
    }));
    del.addEventListener("click", () => {
      if (!confirm(`Delete ${state.selected.size} image(s) from the project?`)) return;
      run(del, message, async () => {
        await api.deleteImages(project.id, chosen());
        await refresh();
      });
    });
    // A detection project's tags go on boxes (Regions), not on whole images.
    const element = h("div", {class: "row selection", "aria-label": "Selected images"}, count,
                      !detection && [field("Tag", tag), add, remove], del);
    return {element, update() {
      const n = state.selected.size;
      fill(count, `${n} selected`);
      const current = tag.value;
      fill(tag, state.tags.map((t) => h("option", {value: t.id}, t.name)));
      if (current) tag.value = current;
      for (const button of [add, remove]) button.disabled = !n || !state.tags.length;
      del.disabled = !n;
    }};
  }

  function uploadPanel() {
    let files = [];
    const picker = h("input", {type: "file", multiple: true, accept: "image/*"});
    const chosen = h("p", {role: "status"}, "No files chosen.");
    const tags = h("input", {list: "known-tags", autocomplete: "off", placeholder: "e.g. Hemlock"});
    const progress = h("progress", {max: 1, value: 0, "aria-label": "Upload progress"});
    progress.hidden = true;
    const results = h("ul", {class: "results", "aria-label": "Upload results"});
    const upload = h("button", {type: "submit", class: "primary", disabled: true}, "Upload");
    const uploadMessage = messageArea();
    const zone = h("div", {class: "dropzone"}, h("p", {}, "Drop images here, or "), field("Choose files", picker),
                   chosen);
    const choose = (list) => {
      files = [...list].filter((f) => f.type.startsWith("image/") || !f.type);
      fill(chosen, files.length ? `${files.length} file(s) chosen` : list.length ? "No image among the files."
                                                                  : "No files chosen.");
      upload.disabled = !files.length;
      fill(upload, files.length ? `Upload ${files.length} file(s)` : "Upload");
    };
    picker.addEventListener("change", () => choose(picker.files));
    zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      choose(event.dataTransfer.files);
    });
    // A detector learns from boxes, not from tags of whole images: they are drawn in Regions after the upload.
    const tagField = detection ? h("p", {class: "note"}, "Then draw and tag the boxes around the objects in ",
                                   h("a", {href: `#/projects/${project.id}/regions`}, "Regions"), ".")
      : field("Tags for these images", tags, "Comma-separated; new tags are created. Leave empty for untagged images.");
    const form = h("form", {class: "card", "aria-label": "Upload images"}, h("h2", {}, "Add images"), zone,
                   tagField, uploadMessage, upload, progress, results);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      await run(upload, uploadMessage, async () => {
        const tagIds = await ensureTags(tags.value);
        fill(results);
        progress.hidden = false;
        progress.max = files.length;
        progress.value = 0;
        let good = 0;
        await api.uploadImages(project.id, files, tagIds, (answers, batch) => {
          answers.forEach((answer, i) => {
            const ok = answer.status === "OK" || answer.status === "OKDuplicate";
            good += ok;
            results.append(h("li", {class: ok ? "ok" : "refused"}, h("strong", {}, batch[i].name), ": ",
              answer.message || REASONS[answer.status] || answer.status, ok ? "" : ` (${answer.status})`));
          });
          progress.value += batch.length;
        });
        uploadMessage.info(`${good} of ${files.length} file(s) uploaded.`);
        picker.value = "";
        files = [];
        await refresh();
      });
      choose(files); // a refused upload keeps its files for another try
    });
    return form;
  }

  /** The ids of the comma-separated tag names, creating the ones that do not exist yet. */
  async function ensureTags(text) {
    const names = [...new Set(text.split(",").map((n) => n.trim()).filter(Boolean))];
    const ids = [];
    for (const name of names) {
      const known = state.tags.find((t) => t.name.toLowerCase() === name.toLowerCase());
      ids.push(known ? known.id : (await api.createTag(project.id, name)).id);
    }
    await loadTags();
    return ids;
  }
}
