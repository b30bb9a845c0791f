// The portal's shell: sign-in, hash routes, the project's tabs, the namespace's usage, and one screen at a time.
import {Api} from "./api.js";
import {fill, h} from "./dom.js";
import {session} from "./session.js";
import * as signIn from "./screens/signin.js";
import * as projects from "./screens/projects.js";
import * as images from "./screens/images.js";
import * as regions from "./screens/regions.js";
import * as train from "./screens/train.js";
import * as performance from "./screens/performance.js";
import * as quickTest from "./screens/quicktest.js";
import * as predictions from "./screens/predictions.js";
import * as publish from "./screens/publish.js";
import * as usage from "./screens/usage.js";

// A project's tabs, in the order of the work; Regions only for detection projects.
const TABS = [
  {name: "images", label: "Images", screen: images},
  {name: "regions", label: "Regions", screen: regions, detection: true},
  {name: "train", label: "Train", screen: train},
  {name: "performance", label: "Performance", screen: performance},
  {name: "quicktest", label: "Quick Test", screen: quickTest},
  {name: "predictions", label: "Predictions", screen: predictions},
  {name: "publish", label: "Publish", screen: publish},
];

const main = document.getElementById("main");
const crumbs = document.getElementById("crumbs");
const signOut = document.getElementById("sign-out");
const usageLink = document.getElementById("usage-link");
let leave = null; // the shown screen's cleanup (timers)
let domains = null;
let visit = 0; // a newer route wins over one still loading

signOut.addEventListener("click", () => {
  session.signOut();
  location.hash = "#/signin";
});

export function navigate(hash) {
  if (location.hash === hash) show(); else location.hash = hash;
}

/** "#/projects/ID/tab/rest" → {projectId, tab, rest}. */
function parse(hash) {
  const [, first, projectId, tab, ...rest] = hash.replace(/^#/, "").split("/");
  return {first: first || "projects", projectId, tab: tab || "images", rest};
}

async function show() {
  leave?.();
  leave = null;
  const mine = ++visit;
  const route = parse(location.hash);
  signOut.hidden = usageLink.hidden = !session.trainingKey;
  if (route.first === "usage") usageLink.setAttribute("aria-current", "page");
  else usageLink.removeAttribute("aria-current");
  if (!session.trainingKey || route.first === "signin") {
    fill(crumbs);
    document.title = "Sign in · KubeVision";
    return signIn.render({root: fill(main), done: () => navigate("#/projects")});
  }
  const api = new Api(session.trainingKey);
  const context = {api, navigate, session, root: fill(main), getDomains: () => (domains ??= api.domains())};
  if (route.first === "usage") {
    fill(crumbs, h("span", {"aria-current": "page"}, "Usage"));
    document.title = "Usage · KubeVision";
    await usage.render(context);
    return;
  }
  if (!route.projectId) {
    fill(crumbs, h("span", {"aria-current": "page"}, "Projects"));
    document.title = "Projects · KubeVision";
    await projects.render(context);
    return;
  }
  let project;
  try {
    project = await api.project(route.projectId);
  } catch (error) {
    if (error.status === 401) return signInAgain();
    fill(main, h("p", {class: "message error", role: "alert"}, `${error.code}: ${error.message}`),
         h("a", {href: "#/projects"}, "Back to the projects"));
    return;
  }
  const domain = (await context.getDomains().catch(() => [])).find((d) => d.id === project.settings?.domainId);
  if (mine !== visit) return;
  const detection = domain?.type === "ObjectDetection";
  const tabs = TABS.filter((t) => !t.detection || detection);
  const tab = tabs.find((t) => t.name === route.tab) || tabs[0];
  fill(crumbs, h("a", {href: "#/projects"}, "Projects"), " / ",
       h("span", {"aria-current": "page"}, project.name));
  document.title = `${tab.label} · ${project.name} · KubeVision`;
  const nav = h("nav", {class: "tabs", "aria-label": "Project"}, tabs.map((t) => h("a", {
    href: `#/projects/${project.id}/${t.name}`, "aria-current": t === tab ? "page" : undefined,
  }, t.label)));
  const body = h("section", {class: "screen", "aria-label": tab.label});
  fill(main, nav, body);
  const cleanup = await tab.screen.render({...context, root: body, project, domain, detection, rest: route.rest});
  if (mine === visit) leave = cleanup; else cleanup?.();
}

function signInAgain() {
  session.signOut();
  navigate("#/signin");
}

addEventListener("hashchange", show);
// A key that stops working (rotated, or the wrong one) sends the user back to the sign-in.
addEventListener("unhandledrejection", (event) => {
  if (event.reason?.status === 401) signInAgain();
});
show();
