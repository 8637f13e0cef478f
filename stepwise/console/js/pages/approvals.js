// Approvals: the queue, and one request's page with what an approver needs to decide (metrics vs
// production, gates, data, who started it, expiry) and Approve / Reject with a required reason.
// A four-eyes refusal (403) and a decision someone else made first (409) are clear messages.
import { ApiError, explain, get, post, tryGet } from "../api.js";
import { badge, fmtNumber, fmtTime, h, link, message, part, section, table } from "../dom.js";

export async function approvalsPage(view) {
  const reply = await get("/v1/approvals");
  const rows = reply.approvals.map((a) => [
    link(`#/approvals/${part(a.id)}`, a.id),
    link(`#/models/${part(a.model)}`, a.model),
    `v${a.version}`,
    badge(a.status),
    a.started_by || "–",
    fmtTime(a.requested_at),
    fmtTime(a.expires_at),
  ]);
  view.append(
    h("h1", {}, "Approvals"),
    section(
      "Queue",
      table("Approval requests", ["Request", "Model", "Version", "Status", "Started by", "Requested", "Expires"], rows, "nothing waits for a decision."),
    ),
  );
}

export function metricsVsProduction(metrics, production, primary) {
  const names = [...new Set([...Object.keys(metrics || {}), ...Object.keys(production || {})])].sort();
  return table(
    "Metrics: candidate vs production",
    ["Metric", "Candidate", "Production", "Difference"],
    names.map((n) => {
      const a = metrics ? metrics[n] : undefined;
      const b = production ? production[n] : undefined;
      const diff = typeof a === "number" && typeof b === "number" ? a - b : null;
      return [n === primary ? h("strong", {}, `${n} (primary)`) : n, fmtNumber(a), fmtNumber(b), diff === null ? "–" : (diff >= 0 ? "+" : "") + fmtNumber(diff)];
    }),
    "no metrics recorded.",
  );
}

export function gatesTable(gates) {
  return table(
    "Gates",
    ["Gate", "Verdict", "Value", "Threshold", "Reason"],
    (gates || []).map((g) => [g.gate, badge(g.passed ? "passed" : "failed"), fmtNumber(g.value), fmtNumber(g.threshold), g.reason || ""]),
    "no gates recorded.",
  );
}

export async function approvalPage(view, { params, refresh }) {
  const [id] = params;
  const a = await get(`/v1/approvals/${part(id)}`);
  const version = await tryGet(`/v1/models/${part(a.model)}/versions/${a.version}`);
  const cmp = a.comparison || {};
  const status = h("div", { id: "decision-status", "aria-live": "polite" });
  view.append(
    h("h1", {}, `Approval ${a.id}`),
    h(
      "p",
      { className: "lead" },
      "Model ",
      link(`#/models/${part(a.model)}`, a.model),
      " version ",
      link(`#/models/${part(a.model)}/versions/${a.version}`, `v${a.version}`),
      " · status ",
      badge(a.status),
    ),
    section(
      "Request",
      h(
        "dl",
        { className: "kv" },
        h("dt", {}, "Started by"), h("dd", {}, a.started_by || "not recorded"),
        h("dt", {}, "Run"), h("dd", {}, a.run_id || "–"),
        h("dt", {}, "Requested"), h("dd", {}, fmtTime(a.requested_at)),
        h("dt", {}, "Expires"), h("dd", {}, fmtTime(a.expires_at)),
        h("dt", {}, "Production version"), h("dd", {}, cmp.production_version ? `v${cmp.production_version}` : "none (first release)"),
        h("dt", {}, "Data"), h("dd", {}, version ? `${version.dataset}@${version.dataset_version} (contract v${version.contract_version})` : "–"),
      ),
    ),
    section("Metrics vs production", metricsVsProduction(a.metrics, cmp.production_metrics, cmp.primary_metric)),
    section("Gates", gatesTable(a.gates)),
  );
  if (a.decision) {
    view.append(
      section(
        "Decision",
        h("p", {}, `${a.decision.approved ? "Approved" : "Rejected"} by ${a.decision.who} at ${fmtTime(a.decision.at)}`),
        h("p", {}, "Reason: ", h("q", { className: "reason" }, a.decision.reason)),
      ),
    );
  }
  if (a.status !== "PENDING") return;
  const reason = h("textarea", { id: "decision-reason", name: "reason", rows: "3", required: "", maxlength: "4096" });
  const decide = async (approve) => {
    const text = reason.value.trim();
    if (!text) {
      status.replaceChildren(message("error", "A reason is required to approve or reject."));
      reason.focus();
      return;
    }
    status.replaceChildren(message("info", "Sending…"));
    try {
      await post(`/v1/approvals/${part(a.id)}/${approve ? "approve" : "reject"}`, { reason: text });
      status.replaceChildren(message("ok", `${approve ? "Approved" : "Rejected"}: recorded under your identity.`));
      setTimeout(refresh, 600);
    } catch (err) {
      if (err instanceof ApiError && err.status === 403) {
        status.replaceChildren(message("refused", `Not allowed: ${err.message}`));
      } else if (err instanceof ApiError && err.status === 409) {
        status.replaceChildren(message("refused", `Already decided: someone else decided first (${err.message}). Reload to see the decision.`));
      } else {
        status.replaceChildren(message("error", explain(err)));
      }
    }
  };
  view.append(
    section(
      "Decide",
      h(
        "form",
        { className: "stack", onsubmit: (e) => e.preventDefault() },
        h("label", { htmlFor: "decision-reason" }, "Reason (required, recorded in the audit trail)"),
        reason,
        h(
          "div",
          { className: "row" },
          h("button", { type: "button", id: "approve", className: "primary", onclick: () => decide(true) }, "Approve"),
          h("button", { type: "button", id: "reject", className: "danger", onclick: () => decide(false) }, "Reject"),
        ),
      ),
      status,
    ),
  );
}
