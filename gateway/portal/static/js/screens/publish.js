// Publish: publish or unpublish a trained iteration, the Prediction URL (endpoint, key header, a ready curl line),
// and the ONNX export download.
import {PREDICTION_BASE} from "../api.js";
import {field, fill, h, messageArea, run} from "../dom.js";

const UNPUBLISH_POLLS = 120; // seconds

export async function render({api, root, project, domain, session}) {
  const task = domain?.type === "ObjectDetection" ? "detect" : "classify";
  const message = messageArea();
  const list = h("div", {class: "publish-list"});
  const key = h("input", {type: "password", autocomplete: "off", value: session.predictionKey, spellcheck: "false"});
  key.addEventListener("change", () => { session.setPredictionKey(key.value.trim()); show(); });
  root.append(field("Prediction key (fills the curl lines; kept in this tab only)", key), message, list);

  async function show() {
    try {
      const iterations = (await api.iterations(project.id)).filter((i) => i.status === "Completed").reverse();
      fill(list, iterations.length ? iterations.map(card)
                                   : h("p", {}, "No trained iteration yet: train one first."));
    } catch (error) {
      message.show(error);
    }
  }

  /** The API answers an unpublish at once; the iteration says so once its model is unloaded. */
  async function unpublished(id) {
    for (let tries = 0; tries < UNPUBLISH_POLLS; tries++) {
      const iteration = (await api.iterations(project.id)).find((i) => i.id === id);
      if (!iteration?.publishName) return;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }

  function card(iteration) {
    const itemMessage = messageArea();
    const body = [h("h2", {}, iteration.name), itemMessage];
    if (iteration.publishName) {
      const unpublish = h("button", {type: "button", class: "danger"}, "Unpublish");
      unpublish.addEventListener("click", () => {
        if (!confirm(`Unpublish ${iteration.name}? Calls to "${iteration.publishName}" will fail.`)) return;
        run(unpublish, itemMessage, async () => {
          await api.unpublish(project.id, iteration.id);
          itemMessage.info("Unpublishing: the model is being unloaded…");
          await unpublished(iteration.id);
          await show();
        });
      });
      body.push(h("p", {}, "Published as ", h("strong", {}, iteration.publishName), " ", unpublish),
                predictionUrl(project, task, iteration.publishName, session.predictionKey));
    } else {
      const name = h("input", {required: true, pattern: "[a-z0-9]([-a-z0-9]*[a-z0-9])?", maxlength: 63,
                               value: iteration.name.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "")});
      const publish = h("button", {type: "submit", class: "primary"}, "Publish");
      const form = h("form", {class: "row", "aria-label": `Publish ${iteration.name}`},
                     field("Published name", name, "Lower-case letters, digits and dashes."), publish);
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        run(publish, itemMessage, async () => {
          itemMessage.info("Publishing: the model is being loaded…");
          await api.publish(project.id, iteration.id, name.value);
          await show();
        });
      });
      body.push(form);
    }
    const exportButton = h("button", {type: "button"}, "Export ONNX");
    const download = h("span", {});
    exportButton.addEventListener("click", () => run(exportButton, itemMessage, async () => {
      await api.exportIteration(project.id, iteration.id);
      const onnx = (await api.exports(project.id, iteration.id)).find((e) => e.platform === "ONNX");
      fill(download, onnx?.status === "Done" ? h("a", {href: onnx.downloadUri, download: `${iteration.name}.onnx`},
                                                 `Download ${iteration.name}.onnx`) : `Export: ${onnx?.status}`);
    }));
    body.push(h("div", {class: "row"}, exportButton, download));
    return h("section", {class: "card", "aria-label": iteration.name}, body);
  }

  await show();
}

function predictionUrl(project, task, publishName, predictionKey) {
  const base = `${PREDICTION_BASE}/${project.id}/${task}/iterations/${publishName}`;
  const key = predictionKey || "<Prediction-Key>";
  const curl = `curl -s -H "Prediction-Key: ${key}" -H "Content-Type: application/octet-stream" `
             + `--data-binary @image.jpg ${base}/image`;
  return h("section", {class: "prediction-url", "aria-label": "Prediction URL"}, h("h3", {}, "Prediction URL"),
    h("dl", {},
      h("dt", {}, "Image file"), h("dd", {}, h("code", {}, `${base}/image`)),
      h("dt", {}, "Image URL"), h("dd", {}, h("code", {}, `${base}/url`), " with the body ",
                                          h("code", {}, '{"url": "https://…"}')),
      h("dt", {}, "Headers"), h("dd", {}, h("code", {}, `Prediction-Key: ${key}`), ", ",
                                       h("code", {}, "Content-Type: application/octet-stream"))),
    h("label", {}, "Ready curl line", h("textarea", {readonly: true, rows: 3, class: "curl"}, curl)));
}
