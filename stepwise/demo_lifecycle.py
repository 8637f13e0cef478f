"""Demo steps of the lifecycle: a training spec for the bundled wine data, then the model the
validated upload trains, waiting for approval.

    steps = [*foundation_steps(), *spec_steps(),
             *data_steps(workdir / "data", training_spec=SPEC_NAME), *lifecycle_steps()]

The spec goes first: the wine contract names it, so the good upload starts the workflow.
"""

from __future__ import annotations

import time
from typing import Any

from stepwise.commands.models import render_runs, render_version, render_versions
from stepwise.demo_shared import MODEL, SPEC_NAME, DemoFailure

WAIT_SECONDS = 300.0


def wine_spec() -> dict[str, Any]:
    from stepwise.demo_data import wine_table

    features = [name for name in wine_table().column_names if name not in ("id", "label")]
    return {
        "name": SPEC_NAME,
        "model": MODEL,
        "dataset": "wine",
        "target": "label",
        "features": features,
        "task": "classification",
        "estimator": {"name": "HistGradientBoostingClassifier", "params": {"max_iter": 100, "learning_rate": 0.1}},
        "split": {"holdout_fraction": 0.25, "seed": 7},
        "metrics": ["accuracy", "f1", "log_loss"],
        "gates": {
            "min_primary": 0.85,
            "max_regression": 0.02,
            "max_p99_latency_ms": 50.0,
            "max_artifact_bytes": 20_000_000,
        },
        "description": "Cultivar from the 13 wine measurements and the region",
    }


def step_spec(ctx: Any) -> None:
    reply = ctx.target.api("PUT", f"/v1/specs/{SPEC_NAME}", wine_spec())
    if reply.status != 201:
        raise DemoFailure(f"spec put answered HTTP {reply.status}: {reply.body}")
    spec = reply.body["spec"]
    ctx.say(
        f"PUT /v1/specs/{SPEC_NAME} -> version {reply.body['version']}: {spec['estimator']['name']} on "
        f"{len(spec['features'])} features, gates {spec['gates']}"
    )


def step_wait(ctx: Any) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        reply = ctx.target.api("GET", f"/v1/models/{MODEL}/versions")
        versions = reply.body.get("versions") if reply.ok and isinstance(reply.body, dict) else None
        if versions:
            break
        if time.monotonic() > deadline:
            raise DemoFailure(f"no version of {MODEL} after {WAIT_SECONDS:.0f} s")
        time.sleep(1.0)
    ctx.say(render_versions(reply.body))
    latest = versions[-1]
    if latest["status"] != "PENDING_APPROVAL":
        raise DemoFailure(f"{MODEL} v{latest['version']} is {latest['status']}, not PENDING_APPROVAL")
    ctx.state["lifecycle_version"] = latest["version"]


def step_show(ctx: Any) -> None:
    version = ctx.state["lifecycle_version"]
    ctx.say(render_version(ctx.target.api("GET", f"/v1/models/{MODEL}/versions/{version}").body))
    ctx.say("")
    ctx.say(render_runs(ctx.target.api("GET", f"/v1/models/{MODEL}/runs").body))


def spec_steps() -> list[tuple[str, Any]]:
    return [(f"put the training spec {SPEC_NAME!r} (the wine contract names it)", step_spec)]


def lifecycle_steps() -> list[tuple[str, Any]]:
    return [
        (f"the workflow trains, evaluates and registers {MODEL}: wait for the version", step_wait),
        (f"stepwise show {MODEL} VERSION and stepwise runs {MODEL}", step_show),
    ]
