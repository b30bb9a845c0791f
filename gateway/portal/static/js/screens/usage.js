// Usage: what the key's namespace used over a window, a row a project and their total (KubeVision's usage route).
import {field, fill, h, messageArea, when} from "../dom.js";

// The windows offered; the route takes others too (90m, 2w), as `kubevision usage --since` does.
const WINDOWS = [["24h", "Last 24 hours"], ["7d", "Last 7 days"], ["30d", "Last 30 days"]];
const BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

const count = (n) => n.toLocaleString();
const hours = (seconds) => (seconds / 3600).toFixed(2);

/** Bytes in the largest binary unit that keeps the figure at 1 or more: 1536 → "1.5 KiB". */
function humanBytes(n) {
  let unit = 0;
  while (n >= 1024 && unit < BYTE_UNITS.length - 1) {
    n /= 1024;
    unit++;
  }
  return unit ? `${n.toFixed(1)} ${BYTE_UNITS[unit]}` : `${n} B`;
}

// The figures, in the order of `kubevision usage`; exact says the figure behind a rounded one.
const COLUMNS = [
  {field: "predictionsStored", label: "Predictions stored", show: count},
  {field: "predictionsNotStored", label: "Predictions not stored", show: count},
  {field: "imagesStored", label: "Images stored", show: count},
  {field: "imageBytes", label: "Image bytes", show: humanBytes, exact: (n) => `${count(n)} bytes`},
  {field: "exports", label: "Exports", show: count},
  {field: "trainings", label: "Trainings", show: count},
  {field: "trainingSeconds", label: "Training hours", show: hours, exact: (s) => `${count(Math.round(s))} seconds`},
  {field: "gpuSeconds", label: "GPU hours", show: hours, exact: (s) => `${count(Math.round(s))} GPU seconds`},
];

export async function render({api, root}) {
  const picker = h("select", {}, WINDOWS.map(([value, label]) => h("option", {value}, label)));
  const message = messageArea();
  const since = h("p", {class: "note"});
  const body = h("div", {}, h("p", {}, "Loading…"));
  root.append(h("div", {class: "heading"}, h("h1", {}, "Usage")),
    h("p", {}, "What this namespace used, by project: predictions, training images, exports and trainings."),
    h("div", {class: "row"}, field("Window", picker)), message, since, body);

  let asked = 0; // a newer window wins over one still loading
  async function refresh() {
    const mine = ++asked;
    const label = picker.selectedOptions[0].textContent.toLowerCase(); // "last 7 days"
    message.clear();
    try {
      const report = await api.usage(picker.value);
      if (mine !== asked) return;
      fill(since, `Since ${when(report.since)}: calls from the start of that hour, trainings that ended after it.`);
      fill(body, report.projects.length ? table(report.projects, label)
                                        : h("p", {class: "empty"}, `Nothing used in the ${label}.`));
    } catch (error) {
      if (mine !== asked) return;
      fill(since);
      fill(body);
      message.show(error);
    }
  }

  picker.addEventListener("change", refresh);
  await refresh();
}

function table(projects, label) {
  const total = Object.fromEntries(COLUMNS.map((c) => [c.field, projects.reduce((sum, p) => sum + p[c.field], 0)]));
  const cells = (figures) => COLUMNS.map((c) => h("td", {class: "number", title: c.exact?.(figures[c.field])},
                                                   c.show(figures[c.field])));
  return h("div", {class: "scroll"}, h("table", {class: "usage", "aria-label": `Usage in the ${label}`},
    h("thead", {}, h("tr", {}, h("th", {scope: "col"}, "Project"),
                     COLUMNS.map((c) => h("th", {scope: "col", class: "number"}, c.label)))),
    h("tbody", {}, projects.map((p) => h("tr", {}, h("th", {scope: "row"}, p.project), cells(p)))),
    h("tfoot", {}, h("tr", {}, h("th", {scope: "row"}, "Total"), cells(total)))));
}
