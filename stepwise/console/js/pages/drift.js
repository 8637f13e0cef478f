// Drift: the checks of each model; a check's page shows the verdict per section and its HTML report
// in a sandboxed frame (sandbox="": no scripts, no same-origin access, no forms, no navigation).
import { get, tryGet } from "../api.js";
import { driftChart } from "../chart.js";
import { badge, fmtNumber, fmtTime, h, link, part, section, table } from "../dom.js";

export async function driftPage(view) {
  const models = await get("/v1/models");
  const lists = await Promise.all(models.models.map((m) => tryGet(`/v1/models/${part(m.name)}/drift/checks?limit=5`)));
  view.append(h("h1", {}, "Drift"));
  models.models.forEach((m, i) => {
    const checks = lists[i] ? lists[i].checks : [];
    view.append(section(m.name, checksTable(m.name, checks), link(`#/drift/${part(m.name)}`, `All checks of ${m.name}`)));
  });
  if (!models.models.length) view.append(h("p", { className: "empty" }, "No model yet."));
}

function checksTable(model, checks) {
  return table(
    `Checks of ${model}`,
    ["Check", "Verdict", "Drift share", "Drifted features", "Rows", "Window end", "Version"],
    checks.map((c) => [
      link(`#/drift/${part(model)}/checks/${part(c.check_id)}`, fmtTime(c.created_at)),
      badge(c.verdict),
      fmtNumber(c.drift_share, 3),
      (c.drifted_features || []).join(", ") || "–",
      String(c.row_count),
      fmtTime(c.window_end),
      `v${c.version}`,
    ]),
    "no check yet.",
  );
}

export async function driftModelPage(view, { params }) {
  const [name] = params;
  const reply = await get(`/v1/models/${part(name)}/drift/checks`);
  view.append(
    h("h1", {}, `Drift of ${name}`),
    h("p", {}, link(`#/models/${part(name)}`, `Model ${name}`)),
    section("Drift share over time", reply.checks.length ? driftChart(reply.checks) : h("p", { className: "empty" }, "No check yet.")),
    section("Checks", checksTable(name, reply.checks)),
  );
}

export async function driftCheckPage(view, { params }) {
  const [name, checkId] = params;
  const d = await get(`/v1/models/${part(name)}/drift/checks/${part(checkId)}`);
  const c = d.check;
  view.append(
    h("h1", {}, `Drift check of ${name}`),
    h("p", { className: "lead" }, badge(c.verdict), ` ${fmtTime(c.window_start)} → ${fmtTime(c.window_end)} · ${c.row_count} rows · reference v${c.version}`),
    h("p", {}, c.reason),
    section(
      "Verdict per section",
      table("Sections", ["Section", "Verdict", "Reason"], d.sections.map((s) => [s.section.replace("_", " "), badge(s.verdict), s.reason || ""])),
    ),
  );
  const blob = new Blob([d.html], { type: "text/html" });
  const url = URL.createObjectURL(blob);
  const frame = h("iframe", { sandbox: "", src: url, title: `Drift report ${c.check_id}`, className: "report-frame", id: "drift-report" });
  frame.setAttribute("sandbox", "");
  view.append(section("Report", frame, h("p", { className: "hint" }, "The report is shown in a sandboxed frame: its content cannot run scripts or reach the console.")));
  window.addEventListener("hashchange", () => URL.revokeObjectURL(url), { once: true });
}
