// Building the page from data: every value becomes a text node (textContent), never markup.
// `h(tag, attrs, ...children)`: attrs are set as properties or attributes of known-safe kinds;
// children may be strings (text), numbers, nodes, arrays or null.

const PROPS = new Set(["className", "value", "checked", "disabled", "type", "htmlFor", "id", "name", "title", "hidden"]);

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (PROPS.has(key)) {
      el[key] = value;
    } else if (key === "href") {
      el.setAttribute("href", safeHref(value));
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// links inside the console are hash routes; anything else (javascript:, data:) is refused
export function safeHref(value) {
  const text = String(value);
  return text.startsWith("#/") ? text : "#/";
}

export function link(route, ...children) {
  return h("a", { href: route }, ...children);
}

export function part(value) {
  return encodeURIComponent(String(value));
}

export function fmtNumber(value, digits = 4) {
  if (value === null || value === undefined || value === "") return "–";
  const n = Number(value);
  if (!Number.isFinite(n)) return String(value);
  return Number.isInteger(n) ? String(n) : n.toPrecision(digits);
}

export function fmtTime(value) {
  if (!value) return "–";
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? String(value) : d.toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

export function table(caption, headers, rows, emptyText = "Nothing yet.") {
  if (!rows.length) return h("p", { className: "empty" }, `${caption}: ${emptyText}`);
  return h(
    "div",
    { className: "table-wrap" },
    h(
      "table",
      {},
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, rows.map((row) => h("tr", {}, row.map((cell) => h("td", {}, cell))))),
    ),
  );
}

export function badge(text) {
  const kind = String(text || "").toLowerCase();
  return h("span", { className: `badge badge-${kind.replace(/[^a-z0-9_-]/g, "")}` }, String(text ?? "–"));
}

export function section(title, ...children) {
  return h("section", { className: "card" }, h("h2", {}, title), ...children);
}

export function message(kind, text) {
  return h("p", { className: `msg msg-${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

// key/value pairs of a plain object, nested objects as nested lists
export function details(obj) {
  if (obj === null || obj === undefined) return h("span", {}, "–");
  if (typeof obj !== "object") return h("span", {}, String(obj));
  if (Array.isArray(obj)) {
    if (!obj.length) return h("span", {}, "–");
    return h("ul", { className: "plain" }, obj.map((item) => h("li", {}, details(item))));
  }
  const entries = Object.entries(obj);
  if (!entries.length) return h("span", {}, "–");
  return h("dl", { className: "kv" }, entries.map(([k, v]) => [h("dt", {}, k), h("dd", {}, details(v))]));
}
