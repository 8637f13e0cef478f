// Version: metrics and gate verdicts beside the production version's, the lineage chain (dataset
// version -> contract -> run -> spec -> approval -> releases), the model card, and the validation
// report of the data it was trained on.
import { get, tryGet } from "../api.js";
import { badge, fmtNumber, fmtTime, h, link, message, part, section, table } from "../dom.js";
import { renderMarkdown } from "../markdown.js";
import { reportView } from "./datasets.js";

export async function versionPage(view, { params }) {
  const [name, number] = params;
  const base = `/v1/models/${part(name)}/versions/${part(number)}`;
  const [v, lineage, card, models] = await Promise.all([get(base), tryGet(`${base}/lineage`), tryGet(`${base}/card`), get("/v1/models")]);
  const model = models.models.find((m) => m.name === name) || {};
  const prodNumber = model.production_version;
  const prod = prodNumber && String(prodNumber) !== String(number) ? await tryGet(`/v1/models/${part(name)}/versions/${prodNumber}`) : null;

  view.append(
    h("h1", {}, `${name} v${v.version}`),
    h("p", { className: "lead" }, badge(v.status), ` · ${v.task} · target ${v.target} · created ${fmtTime(v.created_at)}`, v.started_by ? ` · started by ${v.started_by}` : ""),
  );
  if ((v.reasons || []).length) view.append(section("Why", h("ul", {}, v.reasons.map((r) => h("li", { className: "reason" }, r)))));

  const names = [...new Set([...Object.keys(v.metrics || {}), ...Object.keys((prod && prod.metrics) || {})])].sort();
  view.append(
    section(
      prod ? `Metrics vs production v${prod.version}` : "Metrics",
      table(
        "Metrics",
        prod ? ["Metric", `v${v.version}`, `v${prod.version} (production)`, "Difference"] : ["Metric", `v${v.version}`],
        names.map((n) => {
          const a = v.metrics[n];
          const b = prod ? prod.metrics[n] : undefined;
          const label = n === v.primary_metric ? h("strong", {}, `${n} (primary)`) : n;
          return prod ? [label, fmtNumber(a), fmtNumber(b), typeof a === "number" && typeof b === "number" ? fmtNumber(a - b) : "–"] : [label, fmtNumber(a)];
        }),
      ),
    ),
  );
  const prodGates = new Map(((prod && prod.gates) || []).map((g) => [g.gate, g]));
  view.append(
    section(
      "Gates",
      table(
        "Gate verdicts",
        prod ? ["Gate", `v${v.version}`, "Value", "Threshold", `v${prod.version}`] : ["Gate", "Verdict", "Value", "Threshold"],
        (v.gates || []).map((g) => {
          const row = [g.gate, badge(g.passed ? "passed" : "failed"), fmtNumber(g.value), fmtNumber(g.threshold)];
          if (prod) row.push(prodGates.has(g.gate) ? badge(prodGates.get(g.gate).passed ? "passed" : "failed") : "–");
          return row;
        }),
      ),
    ),
  );
  if (lineage) view.append(section("Lineage", lineageChain(name, lineage)));
  view.append(
    section(
      "Model card",
      card ? renderMarkdown(card.markdown) : message("info", "No model card readable for this version."),
    ),
  );
  const dsv = v.dataset ? await tryGet(`/v1/datasets/${part(v.dataset)}/versions/${v.dataset_version}`) : null;
  const reports = dsv ? await tryGet(`/v1/datasets/${part(v.dataset)}/reports?limit=100`) : null;
  const stored = reports && reports.reports.find((r) => dsv.report_uri && dsv.report_uri.split("?")[0] === r.uri);
  view.append(
    section(
      `Validation report of ${v.dataset}@${v.dataset_version}`,
      stored ? reportView(stored) : message("info", dsv ? `Report not found among the dataset's latest reports (${dsv.report_uri}).` : "Dataset version not readable."),
    ),
  );
}

function step(title, ...lines) {
  return h("li", { className: "chain-step" }, h("strong", {}, title), lines.filter(Boolean).map((l) => h("span", {}, l)));
}

function lineageChain(name, l) {
  const d = l.dataset || {};
  const r = l.run || {};
  const a = l.approval;
  const periods = l.production_periods || [];
  return h(
    "ol",
    { className: "chain", "aria-label": "Lineage chain" },
    step("Dataset version", link(`#/datasets/${part(d.dataset)}`, `${d.dataset}@${d.version}`), d.rows != null ? `${d.rows} rows` : "", d.report_verdict ? `validation: ${d.report_verdict}` : ""),
    step("Contract", `v${d.contract_version}`),
    step("Run", r.run_id, r.status ? `status ${r.status}` : "", r.started_by ? `started by ${r.started_by}` : "", fmtTime(r.started_at)),
    step("Spec", `${r.spec_name} v${r.spec_version}`, r.source === "imported" ? "imported model" : ""),
    step("Approval", a ? a.status : "none", a && a.who ? `by ${a.who}` : "", a && a.reason ? h("q", { className: "reason" }, a.reason) : "", a && a.at ? fmtTime(a.at) : ""),
    step(
      "Releases",
      periods.length
        ? h("ul", { className: "plain" }, periods.map((p) => h("li", {}, `${fmtTime(p.started)} → ${p.ended ? fmtTime(p.ended) : "now"}${p.promoted_by ? ` (by ${p.promoted_by})` : ""}${p.ended_as ? `, ended as ${p.ended_as}` : ""}`)))
        : "never in production",
    ),
    (l.missing || []).length ? h("li", { className: "chain-step missing" }, h("strong", {}, "Not resolved"), l.missing.map((m) => h("span", {}, m))) : null,
  );
}
