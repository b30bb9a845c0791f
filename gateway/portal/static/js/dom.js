// Small helpers to build the DOM without a framework.

/** An element: h("button", {type: "button", onclick}, "Label"). Attributes starting with "on" become listeners. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "class") element.className = value;
    else if (name in element && typeof value !== "string") element[name] = value;
    else element.setAttribute(name, value === true ? "" : value);
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
}

/** Replace an element's children. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/** A labelled form control: the label names the control for screen readers and Playwright alike. */
export function field(label, control, hint) {
  const id = control.id || `field-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  return h("div", {class: "field"}, h("label", {for: id}, label), control, hint && h("small", {}, hint));
}

/** Where a screen's part shows its API errors: right beside the controls that caused them. */
export function messageArea() {
  const area = h("div", {class: "message", role: "alert", "aria-live": "assertive"});
  area.hidden = true;
  area.show = (error) => {
    area.hidden = false;
    area.className = "message error";
    fill(area, error.code ? h("strong", {}, `${error.code}: `) : "", error.message || String(error));
  };
  area.info = (text) => {
    area.hidden = false;
    area.className = "message info";
    fill(area, text);
  };
  area.clear = () => { area.hidden = true; fill(area); };
  return area;
}

/** Run an action behind a button: the button is disabled meanwhile, errors land in the message area. */
export async function run(button, area, action) {
  area?.clear();
  if (button) button.disabled = true;
  try {
    return await action();
  } catch (error) {
    if (area) area.show(error); else throw error;
  } finally {
    if (button) button.disabled = false;
  }
}

export function percent(value) {
  return value === undefined || value === null ? "–" : `${(value * 100).toFixed(1)}%`;
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "–";
}
