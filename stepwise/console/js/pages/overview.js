// Overview: every model with its production and canary versions, traffic split, last drift verdict,
// pending approvals; the stores' health.
import { get, tryGet } from "../api.js";
import { badge, fmtTime, h, link, part, section, table } from "../dom.js";

export async function overviewPage(view) {
  const [models, approvals, health] = await Promise.all([
    get("/v1/models"),
    tryGet("/v1/approvals"),
    tryGet("/v1/health"),
  ]);
  const pending = {};
  for (const a of (approvals && approvals.approvals) || []) {
    if (a.status === "PENDING") pending[a.model] = (pending[a.model] || 0) + 1;
  }
  const drift = await Promise.all(
    models.models.map((m) => tryGet(`/v1/models/${part(m.name)}/drift/checks?limit=1`)),
  );
  const rows = models.models.map((m, i) => {
    const last = drift[i] && drift[i].checks[0];
    const canaryShare = m.candidate_version ? Math.round(m.candidate_weight * 100) : 0;
    return [
      link(`#/models/${part(m.name)}`, m.name),
      m.production_version ? link(`#/models/${part(m.name)}/versions/${m.production_version}`, `v${m.production_version}`) : "none",
      m.candidate_version ? `v${m.candidate_version}` : "–",
      m.candidate_version ? `${100 - canaryShare}% / ${canaryShare}%` : m.production_version ? "100% production" : "–",
      last ? h("span", {}, badge(last.verdict), " ", fmtTime(last.created_at)) : "no check yet",
      pending[m.name] ? link("#/approvals", `${pending[m.name]} pending`) : "0",
      String(m.versions),
    ];
  });
  view.append(
    h("h1", {}, "Overview"),
    section(
      "Models",
      table(
        "Models",
        ["Model", "Production", "Canary", "Traffic (production / canary)", "Last drift check", "Approvals", "Versions"],
        rows,
        "no model registered yet.",
      ),
    ),
  );
  if (health) {
    const stores = (health.stores || []).map((s) => [s.name, s.kind, badge(s.ok ? "ok" : "failing"), s.detail]);
    view.append(
      section(
        "Health",
        h("p", {}, "Status: ", badge(health.status || "unknown"), health.version ? ` · version ${health.version}` : ""),
        stores.length ? table("Stores", ["Store", "Kind", "Status", "Detail"], stores) : null,
      ),
    );
  }
}
