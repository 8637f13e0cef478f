"""Demo steps of governance: the production version's lineage and audit trail, then the retirement
of an older (archived or rejected) version (retiring the production version is refused: 409), and
the reproducibility check of the retired version (or of production when nothing was retired).

    steps = [..., *lifecycle_steps(), <approval and release steps>, *governance_steps()]

Runs after a version of the demo model reached PRODUCTION. When no older version is retirable but
one waits for approval (the drift demo's retrained version), the retire step approves it as the
demo operator, waits until it serves, and retires the version it replaced (now ARCHIVED).
"""

from __future__ import annotations

import time
from typing import Any

from stepwise.commands.governance import render_audit, render_lineage
from stepwise.demo_shared import MODEL, OPERATOR, DemoFailure

RETIRABLE = ("ARCHIVED", "REJECTED", "ROLLED_BACK", "APPROVED")
WAIT_SECONDS = 180.0


def _production(ctx: Any) -> int:
    reply = ctx.target.api("GET", "/v1/models")
    models = reply.body.get("models", []) if reply.ok else []
    model = next((m for m in models if m["name"] == MODEL), None)
    if model is None or model.get("production_version") is None:
        raise DemoFailure(f"{MODEL} has no production version (HTTP {reply.status})")
    return int(model["production_version"])


def step_lineage(ctx: Any) -> None:
    version = _production(ctx)
    reply = ctx.target.api("GET", f"/v1/models/{MODEL}/versions/{version}/lineage")
    if not reply.ok:
        raise DemoFailure(f"lineage answered HTTP {reply.status}: {reply.body}")
    ctx.say(f"stepwise lineage {MODEL} {version}")
    ctx.say(render_lineage(reply.body))
    if reply.body.get("missing"):
        raise DemoFailure(f"unresolved lineage links: {reply.body['missing']}")


def step_audit(ctx: Any) -> None:
    reply = ctx.target.api("GET", f"/v1/audit?model={MODEL}")
    if not reply.ok:
        raise DemoFailure(f"audit answered HTTP {reply.status}: {reply.body}")
    ctx.say(f"stepwise audit {MODEL}")
    ctx.say(render_audit(reply.body))


def _retirable(ctx: Any, production: int) -> list[dict[str, Any]]:
    versions = ctx.target.api("GET", f"/v1/models/{MODEL}/versions").body.get("versions", [])
    return [v for v in versions if v["version"] != production and v["status"] in RETIRABLE]


def _release_pending(ctx: Any) -> bool:
    """Approve the newest version waiting for approval (as the demo operator) and wait until it
    serves, so the version it replaces is ARCHIVED. False when none waits."""
    from functions.models.approvals import approval_id

    pending = [a for a in ctx.target.api("GET", "/v1/approvals").body.get("approvals", []) if a["model"] == MODEL]
    if not pending:
        return False
    version = max(a["version"] for a in pending)
    reason = "demo: the retrained version replaces production"
    reply = ctx.target.api(
        "POST", f"/v1/approvals/{approval_id(MODEL, version)}/approve", {"reason": reason}, identity=OPERATOR
    )
    if not reply.ok:
        raise DemoFailure(f"approving {MODEL} v{version} answered HTTP {reply.status}: {reply.body}")
    deadline = time.monotonic() + WAIT_SECONDS
    while ctx.target.api("GET", f"/v1/models/{MODEL}/versions/{version}").body.get("status") != "PRODUCTION":
        if time.monotonic() > deadline:
            raise DemoFailure(f"{MODEL} v{version} did not reach PRODUCTION in {WAIT_SECONDS:.0f} s")
        time.sleep(0.5)
    ctx.say(f"approved {MODEL} v{version} as {OPERATOR}: it serves now, the version it replaced is ARCHIVED")
    return True


def step_retire(ctx: Any) -> None:
    production = _production(ctx)
    refused = ctx.target.api(
        "POST", f"/v1/models/{MODEL}/versions/{production}/retire", {"reason": "demo: try production"}
    )
    if refused.status != 409:
        raise DemoFailure(f"retiring the production version answered HTTP {refused.status}, not 409")
    ctx.say(f"retire {MODEL} {production} (production) -> 409: {refused.body.get('message')}")
    older = _retirable(ctx, production)
    if not older and _release_pending(ctx):  # e.g. the retrained version: it replaces production
        production = _production(ctx)
        older = _retirable(ctx, production)
    if not older:
        ctx.say("no older (archived or rejected) version to retire in this run")
        return
    victim = older[0]["version"]
    reply = ctx.target.api(
        "POST", f"/v1/models/{MODEL}/versions/{victim}/retire", {"reason": "demo: superseded by production"}
    )
    if not reply.ok:
        raise DemoFailure(f"retire answered HTTP {reply.status}: {reply.body}")
    ctx.say(
        f"retire {MODEL} {victim} -> {reply.body['status']}; {len(reply.body['tagged'])} artifacts tagged for the "
        f"colder storage class; card {reply.body['card_uri']}"
    )
    ctx.state["retired_version"] = victim


def step_reproduce(ctx: Any) -> None:
    """The retired version retrained from its records by the stack's reproduce function."""
    from stepwise.commands.governance import render_reproduce, reproduction

    version = ctx.state.get("retired_version") or _production(ctx)
    body = reproduction(ctx.target, MODEL, version, timeout=900)
    ctx.say(f"stepwise reproduce {MODEL} {version}")
    if body.get("status") != "SUCCEEDED":
        raise DemoFailure(f"{MODEL} v{version}: reproduction {body.get('error')}: {body.get('message')}")
    ctx.say(render_reproduce(body["result"]))
    if not body["result"]["identical"]:
        raise DemoFailure(f"{MODEL} v{version} did not reproduce")


def governance_steps() -> list[tuple[str, Any]]:
    return [
        (f"stepwise lineage {MODEL} (the production version, down to the uploaded object)", step_lineage),
        (f"stepwise audit {MODEL}: every action in order, with identities", step_audit),
        ("stepwise retire: production refused (409), an older version retired", step_retire),
        ("stepwise reproduce: the retired version retrained from its records, identical predictions", step_reproduce),
    ]
