// The console's shell: runtime config, sign-in, hash routes (every page has its own URL, so links
// in notifications and chats work), and one page module per route.

import { ApiError, explain, setApiBase } from "./api.js";
import { authMode, currentIdentity, initAuth, signOut } from "./auth.js";
import { append, h, message } from "./dom.js";
import { approvalPage, approvalsPage } from "./pages/approvals.js";
import { auditPage } from "./pages/audit.js";
import { datasetPage, datasetsPage } from "./pages/datasets.js";
import { driftCheckPage, driftModelPage, driftPage } from "./pages/drift.js";
import { modelPage } from "./pages/model.js";
import { overviewPage } from "./pages/overview.js";
import { signInPage } from "./pages/signin.js";
import { versionPage } from "./pages/version.js";

const ROUTES = [
  [/^\/$/, overviewPage],
  [/^\/signin$/, signInPage],
  [/^\/models\/([^/]+)$/, modelPage],
  [/^\/models\/([^/]+)\/versions\/(\d+)$/, versionPage],
  [/^\/approvals$/, approvalsPage],
  [/^\/approvals\/([^/]+)$/, approvalPage],
  [/^\/drift$/, driftPage],
  [/^\/drift\/([^/]+)$/, driftModelPage],
  [/^\/drift\/([^/]+)\/checks\/([^/]+)$/, driftCheckPage],
  [/^\/datasets$/, datasetsPage],
  [/^\/datasets\/([^/]+)$/, datasetPage],
  [/^\/audit$/, auditPage],
];

let config = { api: "", auth: "local", identities: [] };
let renderCount = 0;

export function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = raw.split("?");
  return { path, query: new URLSearchParams(query) };
}

function renderIdentity() {
  const box = document.getElementById("identity");
  box.replaceChildren();
  const who = currentIdentity();
  const local = authMode() === "local";
  if (local) box.append(h("span", { className: "local-mark", title: "Local cloud: identities are not authenticated" }, "LOCAL"));
  if (who) {
    append(box, [
      h("span", { id: "whoami" }, `Signed in as ${who}`),
      h("a", { href: "#/signin", className: "button-link" }, local ? "Switch identity" : "Account"),
      local
        ? null
        : h("button", { type: "button", onclick: () => { signOut(); route(); } }, "Sign out"),
    ]);
  } else {
    box.append(h("a", { href: "#/signin", className: "button-link" }, "Sign in"));
  }
}

async function route() {
  const ticket = ++renderCount;
  const main = document.getElementById("main");
  renderIdentity();
  const { path, query } = parseHash();
  if (!currentIdentity() && path !== "/signin") {
    location.hash = "#/signin?next=" + encodeURIComponent(location.hash || "#/");
    return;
  }
  const found = ROUTES.map(([re, page]) => [path.match(re), page]).find(([m]) => m);
  const view = h("div", { className: "page" });
  main.replaceChildren(h("p", { className: "loading", role: "status" }, "Loading…"));
  try {
    if (!found) {
      view.append(h("h1", {}, "Not found"), message("error", `No page at ${path}`));
    } else {
      const [match, page] = found;
      const params = match.slice(1).map((p) => decodeURIComponent(p));
      await page(view, { params, query, config, refresh: route });
    }
  } catch (err) {
    view.replaceChildren(h("h1", {}, "Could not load this page"), message("error", explain(err)));
    if (err instanceof ApiError && err.status === 403) {
      view.append(h("p", {}, "Your identity may not read this. ", h("a", { href: "#/signin" }, "Switch identity")));
    }
  }
  if (ticket !== renderCount) return; // a newer navigation won
  main.replaceChildren(view);
  document.title = `${(view.querySelector("h1") || {}).textContent || "Stepwise"} · Stepwise console`;
  const heading = view.querySelector("h1");
  if (heading) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
  for (const a of document.querySelectorAll("header nav a")) {
    const target = a.getAttribute("href").slice(1);
    a.toggleAttribute("aria-current", target === "/" ? path === "/" : path.startsWith(target));
  }
}

async function start() {
  try {
    const reply = await fetch("config.json", { credentials: "same-origin" });
    if (reply.ok) config = { ...config, ...(await reply.json()) };
  } catch {
    // the defaults: same-origin API, local sign-in
  }
  setApiBase(config.api);
  await initAuth(config);
  window.addEventListener("hashchange", route);
  await route();
  document.body.dataset.ready = "true";
}

start();
