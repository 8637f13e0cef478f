// Audit: the trail filtered by model, actor, action and time (every filter is the API's, so a page
// holds only matching events); the shown rows export as CSV.
import { get } from "../api.js";
import { fmtTime, h, section, table } from "../dom.js";

const FIELDS = ["time", "who", "action", "target", "version", "reason", "correlation_id"];

export function toCsv(events) {
  const cell = (value) => {
    let text = value === null || value === undefined ? "" : typeof value === "object" ? JSON.stringify(value) : String(value);
    if (/^[=+\-@\t\r]/.test(text)) text = "'" + text; // never a formula in a spreadsheet
    return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  };
  return [FIELDS.join(","), ...events.map((e) => FIELDS.map((f) => cell(e[f])).join(","))].join("\r\n") + "\r\n";
}

function input(id, label, value, type = "text") {
  return h("div", { className: "field" }, h("label", { htmlFor: id }, label), h("input", { id, name: id, type, value: value || "" }));
}

export async function auditPage(view, { query }) {
  const f = {
    model: query.get("model") || "",
    actor: query.get("actor") || "",
    action: query.get("action") || "",
    since: query.get("since") || "",
    until: query.get("until") || "",
  };
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(f)) if (value) params.set(key, value);
  const reply = await get(`/v1/audit${params.toString() ? "?" + params : ""}`);
  const events = reply.events;
  const form = h(
    "form",
    {
      className: "filters",
      id: "audit-filters",
      onsubmit: (e) => {
        e.preventDefault();
        const next = new URLSearchParams();
        for (const key of Object.keys(f)) {
          const value = form.elements[`audit-${key}`].value.trim();
          if (value) next.set(key, value);
        }
        location.hash = `#/audit${next.toString() ? "?" + next : ""}`;
      },
    },
    input("audit-model", "Model", f.model),
    input("audit-actor", "Actor contains (case-sensitive)", f.actor),
    input("audit-action", "Action starts with", f.action),
    input("audit-since", "Since (ISO time, UTC)", f.since),
    input("audit-until", "Until (ISO time, UTC)", f.until),
    h("div", { className: "field" }, h("button", { type: "submit", id: "audit-apply" }, "Filter")),
  );
  const exportCsv = () => {
    const blob = new Blob([toCsv(events)], { type: "text/csv" });
    const a = h("a", {});
    a.href = URL.createObjectURL(blob);
    a.download = "stepwise-audit.csv";
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  };
  view.append(
    h("h1", {}, "Audit"),
    section("Filter", form),
    section(
      `Events (${events.length}${reply.next_token ? ", more on the next page" : ""})`,
      h("button", { type: "button", id: "audit-export", onclick: exportCsv, disabled: !events.length }, "Export CSV"),
      table(
        "Audit events",
        ["Time", "Who", "Action", "Target", "Version", "Reason"],
        events.map((e) => [fmtTime(e.time), e.who, e.action, e.target, e.version ? `v${e.version}` : "–", e.reason || ""]),
        "no event matches.",
      ),
    ),
  );
}
