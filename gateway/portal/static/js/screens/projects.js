// Projects: the key's namespace's projects with their type, domain, images and last iteration; create and delete.
import {field, fill, h, messageArea, run, when} from "../dom.js";

export async function render({api, root, navigate, getDomains}) {
  const message = messageArea();
  const list = h("div", {class: "project-list"}, h("p", {}, "Loading…"));
  root.append(h("div", {class: "heading"}, h("h1", {}, "Projects")), message, createForm(api, getDomains, navigate),
              list);
  try {
    const [projects, domains] = await Promise.all([api.projects(), getDomains()]);
    fill(list, projects.length ? h("ul", {class: "cards"}, projects.map((p) => card(api, p, domains, list)))
                               : h("p", {}, "No project yet: create one above."));
    if (!projects.length) root.querySelector("details.create").open = true; // a first visit starts at the form
  } catch (error) {
    fill(list);
    message.show(error);
  }
}

function card(api, project, domains, list) {
  const message = messageArea();
  const domain = domains.find((d) => d.id === project.settings?.domainId);
  const images = h("span", {}, "…");
  const latest = h("span", {}, "…");
  api.imageCount(project.id).then((n) => fill(images, `${n} image${n === 1 ? "" : "s"}`),
                                 (e) => fill(images, e.code));
  api.iterations(project.id).then((its) => {
    const last = its.at(-1);
    fill(latest, last ? `${last.name}: ${last.status}${last.publishName ? ` (published as ${last.publishName})` : ""}`
                      : "not trained yet");
  }, (e) => fill(latest, e.code));
  const remove = h("button", {type: "button", class: "danger", "aria-label": `Delete project ${project.name}`},
                   "Delete");
  const item = h("li", {class: "card"},
    h("h2", {}, h("a", {href: `#/projects/${project.id}/images`}, project.name)),
    project.description && h("p", {}, project.description),
    h("dl", {class: "facts"},
      h("dt", {}, "Type"), h("dd", {}, `${domain?.type === "ObjectDetection" ? "Object detection" : "Classification"}`
                                      + (domain?.type === "ObjectDetection" ? "" :
                                         ` (${project.settings?.classificationType || "Multiclass"})`)),
      h("dt", {}, "Domain"), h("dd", {}, domain?.name || project.settings?.domainId || "–"),
      h("dt", {}, "Images"), h("dd", {}, images),
      h("dt", {}, "Last iteration"), h("dd", {}, latest),
      h("dt", {}, "Created"), h("dd", {}, when(project.created))),
    remove, message);
  remove.addEventListener("click", () => {
    if (!confirm(`Delete the project "${project.name}" with its images and iterations? This cannot be undone.`)) return;
    run(remove, message, async () => {
      await api.deleteProject(project.id);
      item.remove();
      if (!list.querySelector("li")) fill(list, h("p", {}, "No project yet: create one above."));
    });
  });
  return item;
}

function createForm(api, getDomains, navigate) {
  const name = h("input", {required: true, maxlength: 256});
  const description = h("textarea", {rows: 2, maxlength: 4096});
  const kind = radios("Project type", "projectType",
                      [["Classification", "Classification"], ["ObjectDetection", "Object detection"]]);
  const classification = radios("Classification type", "classificationType",
                                [["Multiclass", "Multiclass (one tag an image)"],
                                 ["Multilabel", "Multilabel (several tags an image)"]]);
  const domain = h("select", {});
  const message = messageArea();
  const submit = h("button", {type: "submit", class: "primary"}, "Create project");
  const form = h("form", {class: "card", "aria-label": "New project"},
    h("h2", {}, "New project"), field("Name", name), field("Description", description),
    kind.element, classification.element, field("Domain", domain), message, submit);
  const details = h("details", {class: "create"}, h("summary", {}, "New project"), form);

  async function showDomains() {
    const type = kind.value();
    classification.element.hidden = type !== "Classification";
    try {
      const choices = (await getDomains()).filter((d) => d.type === type && d.enabled);
      fill(domain, choices.map((d) => h("option", {value: d.id}, d.name)));
      submit.disabled = !choices.length;
      if (!choices.length) message.info("This gateway offers no domain of this type yet.");
      else message.clear();
    } catch (error) {
      message.show(error);
    }
  }

  kind.element.addEventListener("change", showDomains);
  details.addEventListener("toggle", () => details.open && (showDomains(), name.focus()), {once: true});
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run(submit, message, async () => {
      const project = await api.createProject({
        name: name.value.trim(), description: description.value.trim() || undefined, domainId: domain.value,
        classificationType: kind.value() === "Classification" ? classification.value() : undefined,
      });
      navigate(`#/projects/${project.id}/images`);
    });
  });
  return details;
}

/** A group of radio buttons with a legend; the first choice is checked. */
export function radios(legend, name, choices) {
  const element = h("fieldset", {class: "choices"}, h("legend", {}, legend), choices.map(([value, label], i) =>
    h("label", {}, h("input", {type: "radio", name, value, checked: i === 0}), " ", label)));
  return {element, value: () => element.querySelector("input:checked")?.value};
}
