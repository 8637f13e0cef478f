"""Approvals and release (all over the HTTPS API, signed as the caller: `--as NAME` locally).

stepwise approvals                                  pending approval requests
stepwise approve MODEL VERSION --reason "..."       approve (you may not approve your own run)
stepwise reject MODEL VERSION --reason "..."
stepwise rollback MODEL [--to VERSION] --reason "..."
    an in-progress canary is rolled back; otherwise production returns to the previous (or the
    named) former production version, after its artifact's sha256 verifies. The command reads what
    serves, prints it, and sends it as the expectation: if the model changed in between (another
    rollback, the workflow's own canary rollback), the API answers 409 and nothing is rolled back.
"""

from __future__ import annotations

import argparse
from typing import Any

from functions.models.approvals import approval_id
from stepwise.output import table
from stepwise.target import ApiReply, add_page_arguments, get_pages


def register(sub: Any) -> None:
    approvals = sub.add_parser("approvals", help="pending approval requests")
    add_page_arguments(approvals, "requests")
    approvals.set_defaults(func=run_approvals)
    for name, verb in (("approve", "approve"), ("reject", "reject")):
        parser = sub.add_parser(name, help=f"{verb} a version waiting for approval (as the signing identity)")
        parser.add_argument("model")
        parser.add_argument("version", type=int)
        parser.add_argument("--reason", required=True, help="why (recorded with your identity)")
        parser.set_defaults(func=run_decide, decision=name)
    rollback = sub.add_parser("rollback", help="roll back a model's canary or production in one call")
    rollback.add_argument("model")
    rollback.add_argument("--to", type=int, dest="to_version", help="a former production version to return to")
    rollback.add_argument("--reason", required=True)
    rollback.set_defaults(func=run_rollback)


def _failed(reply: ApiReply) -> int:
    body = reply.body if isinstance(reply.body, dict) else {"message": reply.body}
    print(f"error: HTTP {reply.status} {body.get('error', '')}: {body.get('message', '')}")
    return 1


def _reason(args: argparse.Namespace) -> str | None:
    reason = (args.reason or "").strip()
    if not reason:
        print("error: --reason must not be empty")
    return reason or None


def render_approvals(body: dict[str, Any]) -> str:
    rows = []
    for a in body["approvals"]:
        comparison = a.get("comparison") or {}
        primary = comparison.get("primary_metric") or ""
        value = a.get("metrics", {}).get(primary)
        delta = comparison.get("delta")
        vs = f"{delta:+.4f} vs v{comparison['production_version']}" if delta is not None else "no production"
        gates = a.get("gates", [])
        passed = sum(1 for g in gates if g.get("passed"))
        rows.append(
            (
                a["model"],
                a["version"],
                f"{primary} {value:.4f}" if isinstance(value, int | float) else "-",
                vs,
                f"{passed}/{len(gates)}",
                a.get("started_by") or "-",
                a["requested_at"][:19],
                a["expires_at"][:19],
            )
        )
    if not rows:
        return "no approvals pending"
    return table(rows, ["model", "version", "metric", "vs production", "gates", "trained by", "requested", "expires"])


def run_approvals(args: argparse.Namespace, target_factory: Any) -> int:
    reply, pending, token = get_pages(
        target_factory(), "/v1/approvals", "approvals", {}, limit=args.limit, every=args.all
    )
    if not reply.ok:
        return _failed(reply)
    print(render_approvals({"approvals": pending}))
    if token:
        print(f"(more pending requests: stepwise approvals --all, or GET /v1/approvals?next_token={token})")
    return 0


def run_decide(args: argparse.Namespace, target_factory: Any) -> int:
    reason = _reason(args)
    if reason is None:
        return 2
    id_ = approval_id(args.model, args.version)
    reply = target_factory().api("POST", f"/v1/approvals/{id_}/{args.decision}", {"reason": reason})
    if not reply.ok:
        return _failed(reply)
    decision = reply.body.get("decision") or {}
    who, why = decision.get("who"), decision.get("reason")
    print(f"{args.model} version {args.version}: {reply.body['status']} by {who} ({why})")
    if args.decision == "approve":
        print("the workflow continues with the release; `stepwise models` shows what serves")
    return 0


def serving_versions(versions: list[dict[str, Any]]) -> tuple[int | None, int | None]:
    """(production, canary) from a model's version summaries (their statuses move with the aliases)."""
    production = next((v["version"] for v in versions if v.get("status") == "PRODUCTION"), None)
    canary = next((v["version"] for v in versions if v.get("status") == "CANARY"), None)
    return production, canary


def run_rollback(args: argparse.Namespace, target_factory: Any) -> int:
    reason = _reason(args)
    if reason is None:
        return 2
    target = target_factory()
    read = target.api("GET", f"/v1/models/{args.model}/versions")
    if not read.ok:
        return _failed(read)
    production, canary = serving_versions(read.body.get("versions", []))
    if production is None:
        print(f"error: {args.model} has no production version to roll back")
        return 1
    if canary is not None and args.to_version is None:
        print(f"{args.model}: rolling back canary version {canary}; production version {production} keeps serving")
    else:
        where = f"version {args.to_version}" if args.to_version is not None else "the previous production version"
        print(f"{args.model}: rolling back production version {production} to {where}")
    body: dict[str, Any] = {"reason": reason, "expected_production_version": production}
    if canary is not None:
        body["expected_canary_version"] = canary
    if args.to_version is not None:
        body["to_version"] = args.to_version
    reply = target.api("POST", f"/v1/models/{args.model}/rollback", body)
    if not reply.ok:
        return _failed(reply)
    r = reply.body
    canary_now = (
        f", canary v{r['candidate_version']} at {r['candidate_weight']:.0%}" if r.get("candidate_version") else ""
    )
    print(f"{args.model}: production is version {r.get('production_version')}{canary_now} (revision {r['revision']})")
    return 0
