// Model: versions with status, primary metric, gates and data; drift history chart; releases and
// rollbacks (from the audit trail); a rollback button with a required reason.
import { ApiError, explain, get, post, tryGet } from "../api.js";
import { driftChart } from "../chart.js";
import { badge, fmtNumber, fmtTime, h, link, message, part, section, table } from "../dom.js";

const RELEASE_ACTIONS = new Set(["version.promote", "version.canary", "version.rollback", "version.approve", "version.reject", "version.retire", "version.restore", "release.refused"]);

export async function modelPage(view, { params, refresh }) {
  const [name] = params;
  const [models, versions, checks, audit] = await Promise.all([
    get("/v1/models"),
    get(`/v1/models/${part(name)}/versions`),
    tryGet(`/v1/models/${part(name)}/drift/checks`),
    tryGet(`/v1/audit?model=${part(name)}`),
  ]);
  const model = models.models.find((m) => m.name === name);
  if (!model) throw new ApiError(404, "NotFound", `no model ${name}`);
  const latest = versions.versions.length ? versions.versions[versions.versions.length - 1] : null;
  const detail = latest ? await tryGet(`/v1/models/${part(name)}/versions/${latest.version}`) : null;
  const spec = detail && detail.spec_name ? await tryGet(`/v1/specs/${part(detail.spec_name)}`) : null;
  const description = spec && (spec.spec ? spec.spec.description : spec.description);

  view.append(
    h("h1", {}, `Model ${name}`),
    description ? h("p", { className: "lead", id: "model-description" }, description) : null,
    h(
      "p",
      { id: "model-serving" },
      "Production: ",
      model.production_version ? h("strong", { id: "production-version" }, `v${model.production_version}`) : h("strong", { id: "production-version" }, "none"),
      model.candidate_version ? ` · canary v${model.candidate_version} at ${Math.round(model.candidate_weight * 100)}%` : "",
    ),
  );
  const rows = [...versions.versions].reverse().map((v) => [
    link(`#/models/${part(name)}/versions/${v.version}`, `v${v.version}`),
    badge(v.status),
    `${v.primary_metric} ${fmtNumber(v.primary_value)}`,
    link(`#/datasets/${part(v.dataset)}`, `${v.dataset}@${v.dataset_version}`),
    `v${v.spec_version}`,
    fmtTime(v.created_at),
  ]);
  view.append(section("Versions", table("Versions", ["Version", "Status", "Primary metric", "Dataset", "Spec", "Created"], rows)));
  if (detail && detail.gates && detail.gates.length) {
    view.append(
      section(
        `Gates of v${detail.version}`,
        table("Gates", ["Gate", "Verdict", "Value", "Threshold"], detail.gates.map((g) => [g.gate, badge(g.passed ? "passed" : "failed"), fmtNumber(g.value), fmtNumber(g.threshold)])),
      ),
    );
  }
  const history = checks ? checks.checks : [];
  view.append(
    section(
      "Drift history",
      history.length ? driftChart(history) : h("p", { className: "empty" }, "No drift check yet."),
      h("p", { className: "legend" }, h("span", { className: "key key-share" }, "drift share"), " ", h("span", { className: "key key-perf" }, "performance (labelled traffic)")),
      history.length ? link(`#/drift/${part(name)}`, "All checks and reports") : null,
    ),
  );
  const events = audit ? audit.events.filter((e) => RELEASE_ACTIONS.has(e.action)).reverse() : null;
  view.append(
    section(
      "Releases and rollbacks",
      events === null
        ? message("info", "The audit trail is not readable with this identity (Auditor persona).")
        : table("Release events", ["Time", "Action", "Version", "Who", "Reason"], events.map((e) => [fmtTime(e.time), e.action, e.version ? `v${e.version}` : "–", e.who, e.reason || ""])),
    ),
  );
  if (model.production_version) view.append(rollbackForm(name, model, refresh));
}

function rollbackForm(name, model, refresh) {
  const reason = h("textarea", { id: "rollback-reason", rows: "2", required: "", maxlength: "4096" });
  const status = h("div", { "aria-live": "polite" });
  const submit = async () => {
    const text = reason.value.trim();
    if (!text) {
      status.replaceChildren(message("error", "A reason is required to roll back."));
      reason.focus();
      return;
    }
    const body = { reason: text, expected_production_version: model.production_version };
    if (model.candidate_version) body.expected_canary_version = model.candidate_version;
    try {
      await post(`/v1/models/${part(name)}/rollback`, body);
      status.replaceChildren(message("ok", "Rolled back: recorded under your identity."));
      setTimeout(refresh, 600);
    } catch (err) {
      const kind = err instanceof ApiError && (err.status === 403 || err.status === 409) ? "refused" : "error";
      status.replaceChildren(message(kind, explain(err)));
    }
  };
  return section(
    "Roll back",
    h("p", {}, `Reverts serving from v${model.production_version} to the previous production version.`),
    h(
      "form",
      { className: "stack", novalidate: "", onsubmit: (e) => { e.preventDefault(); submit(); } },
      h("label", { htmlFor: "rollback-reason" }, "Reason (required)"),
      reason,
      h("button", { type: "submit", className: "danger", id: "rollback" }, "Roll back"),
    ),
    status,
  );
}
