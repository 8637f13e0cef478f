// Datasets: every dataset, its versions, and its uploads' validation reports; a quarantined
// upload shows its failed rules with example rows.
import { get, tryGet } from "../api.js";
import { badge, fmtTime, h, link, part, section, table } from "../dom.js";

export async function datasetsPage(view) {
  const reply = await get("/v1/datasets");
  view.append(
    h("h1", {}, "Datasets"),
    section(
      "Datasets",
      table(
        "Datasets",
        ["Dataset", "Latest version", "Latest contract", "Updated"],
        reply.datasets.map((d) => [link(`#/datasets/${part(d.dataset)}`, d.dataset), d.latest_version ? `v${d.latest_version}` : "none", d.latest_contract_version ? `v${d.latest_contract_version}` : "none", fmtTime(d.updated_at)]),
        "no dataset yet.",
      ),
    ),
  );
}

export function reportView(stored) {
  const r = stored.report;
  const failed = (r.rules || []).filter((x) => !x.passed);
  return h(
    "div",
    { className: "report" },
    h("p", {}, badge(r.verdict), ` ${r.rows} rows · ${r.columns} columns · contract v${r.contract_version} · ${(r.rules || []).length} rules`, r.reason ? h("span", { className: "reason" }, ` · ${r.reason}`) : ""),
    failed.length
      ? table(
          "Failed rules",
          ["Rule", "Column", "Offending rows", "Message", "Examples (row: value)"],
          failed.map((x) => [x.rule, x.column || "–", String(x.offending), x.message || "", h("ul", { className: "plain" }, (x.examples || []).map((e) => h("li", {}, `${e.row}: ${e.value ?? "null"}`)))]),
        )
      : h("p", {}, "Every rule passed."),
  );
}

export async function datasetPage(view, { params }) {
  const [name] = params;
  const [summary, versions, reports, contract] = await Promise.all([
    get(`/v1/datasets/${part(name)}`),
    get(`/v1/datasets/${part(name)}/versions`),
    tryGet(`/v1/datasets/${part(name)}/reports?limit=50`),
    tryGet(`/v1/datasets/${part(name)}/contract`),
  ]);
  view.append(h("h1", {}, `Dataset ${summary.dataset}`));
  view.append(
    section(
      "Versions",
      table(
        "Versions",
        ["Version", "Rows", "Contract", "Uploaded by", "Training", "Created"],
        [...versions.versions].reverse().map((v) => [`v${v.version}`, String(v.rows), `v${v.contract_version}`, v.uploaded_by || "–", v.training_spec ? `${v.training_spec}: ${v.training_status}` : v.training_status, fmtTime(v.created_at)]),
      ),
    ),
  );
  if (contract) {
    view.append(
      section(
        `Contract v${contract.version}`,
        table("Columns", ["Column", "Type", "Nullable"], (contract.contract.columns || []).map((c) => [c.name, c.type, c.nullable === false ? "no" : "yes"])),
      ),
    );
  }
  const all = reports ? reports.reports : [];
  const quarantined = all.filter((r) => r.quarantined);
  view.append(
    section(
      "Quarantined uploads",
      quarantined.length
        ? quarantined.map((r) => h("article", { className: "quarantine" }, h("h3", {}, `${fmtTime(r.stored_at)} · ${r.report.source || r.uri}`), reportView(r)))
        : h("p", { className: "empty" }, "No upload was quarantined."),
    ),
  );
}
