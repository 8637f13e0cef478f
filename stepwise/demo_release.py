"""Demo steps for approval, release and serving: the data producer whose upload started the run
tries to approve it and is refused (four-eyes, on as it is on AWS), a named operator approves the
waiting version, the workflow releases it, and a few hundred predictions go to it over HTTP.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from functions.models.approvals import approval_id
from stepwise.commands.models import render_models
from stepwise.commands.predict import predict_all
from stepwise.commands.release import render_approvals
from stepwise.demo_shared import MODEL, OPERATOR, PRODUCER, DemoFailure

RELEASE_WAIT_SECONDS = 120.0
DEMO_CONTEXT: dict[str, Any] = {}  # the stack's defaults: four-eyes on


def step_approve(ctx: Any) -> None:
    version = ctx.state["lifecycle_version"]
    pending = ctx.target.api("GET", "/v1/approvals")
    if not pending.ok:
        raise DemoFailure(f"GET /v1/approvals answered HTTP {pending.status}: {pending.body}")
    ctx.say(render_approvals(pending.body))
    reason = "demo: gates passed, holdout accuracy above 0.85"
    path = f"/v1/approvals/{approval_id(MODEL, version)}/approve"
    mine = ctx.target.api("POST", path, {"reason": "my own upload looks fine"}, identity=PRODUCER)
    if mine.status != 403:
        raise DemoFailure(f"the uploader's self-approval should be refused (403), it answered {mine.status}")
    ctx.say(f"POST {path} as {PRODUCER} (whose upload started the run) -> 403: {mine.body.get('message')}")
    reply = ctx.target.api(
        "POST", f"/v1/approvals/{approval_id(MODEL, version)}/approve", {"reason": reason}, identity=OPERATOR
    )
    if not reply.ok:
        raise DemoFailure(f"approve answered HTTP {reply.status}: {reply.body}")
    decision = reply.body.get("decision") or {}
    ctx.say(f"POST /v1/approvals/{approval_id(MODEL, version)}/approve as {OPERATOR} -> {reply.body.get('status')}")
    ctx.say(f"  recorded: by {decision.get('who')}, reason {decision.get('reason')!r}")


def step_released(ctx: Any) -> None:
    version = ctx.state["lifecycle_version"]
    deadline = time.monotonic() + RELEASE_WAIT_SECONDS
    while True:
        reply = ctx.target.api("GET", "/v1/models")
        models = reply.body.get("models", []) if reply.ok and isinstance(reply.body, dict) else []
        record = next((m for m in models if m.get("name") == MODEL), None)
        if record and record.get("production_version") == version:
            break
        if time.monotonic() > deadline:
            raise DemoFailure(f"{MODEL} v{version} did not reach production within {RELEASE_WAIT_SECONDS:.0f} s")
        time.sleep(0.5)
    ctx.say(render_models(reply.body))


def step_predict(ctx: Any) -> None:
    from stepwise.demo_data import wine_table

    table = wine_table()
    features = [c for c in table.column_names if c not in ("id", "label")]
    rows = table.select(features).to_pylist()
    labels = table.column("label").to_pylist()
    rows = (rows * 2)[:300]
    results: list[dict[str, Any]] = []
    for start in range(0, len(rows), 10):  # 30 HTTP requests of 10 rows
        batch, failed = predict_all(ctx.target, MODEL, rows[start : start + 10], 10, None)
        if failed is not None:
            raise DemoFailure(f"predict answered HTTP {failed.status}: {failed.body}")
        results += batch
    versions = Counter(r["version"] for r in results)
    correct = sum(str(r["prediction"]) == str(labels[i % len(labels)]) for i, r in enumerate(results))
    ctx.state["request_ids"] = sorted({r["request_id"] for r in results})
    ctx.say(f"{len(results)} rows in 30 POST /v1/models/{MODEL}/predict calls; answered by versions {dict(versions)}")
    ctx.say(f"{correct}/{len(results)} predictions match the known cultivar; every reply names its version")
    if set(versions) != {ctx.state["lifecycle_version"]}:
        raise DemoFailure(f"expected only v{ctx.state['lifecycle_version']} to answer, got {dict(versions)}")


def step_batch(ctx: Any) -> None:
    import json

    from stepwise.commands.batch import render_job

    version = ctx.target.api("GET", f"/v1/models/{MODEL}/versions/{ctx.state['lifecycle_version']}").body
    body = {"input": {"dataset": version["dataset"], "version": version["dataset_version"]}, "passthrough": ["id"]}
    reply = ctx.target.api("POST", f"/v1/models/{MODEL}/batch", body, identity=OPERATOR)
    if reply.status != 202:
        raise DemoFailure(f"POST /v1/models/{MODEL}/batch answered HTTP {reply.status}: {reply.body}")
    job = ctx.target.api("GET", f"/v1/models/{MODEL}/batch/{reply.body['job_id']}").body
    ctx.say(f"stepwise score {MODEL} --dataset {version['dataset']}@{version['dataset_version']} --passthrough id")
    ctx.say(render_job(job))
    if job["status"] != "SUCCEEDED":
        raise DemoFailure(f"the batch job ended {job['status']}: {job.get('error')}: {job.get('message')}")
    bucket, key = job["output_prefix"][5:].split("/", 1)
    manifest = json.loads(ctx.target.client("s3").get_object(Bucket=bucket, Key=key + "_manifest.json")["Body"].read())
    parts = [{k: p[k] for k in ("key", "rows", "sha256")} for p in manifest["parts"]]
    shown = {k: manifest[k] for k in ("version", "artifact_sha256", "rows", "scored", "rejected")} | {"parts": parts}
    ctx.say(json.dumps(shown, indent=1))


def release_steps() -> list[tuple[str, Any]]:
    return [
        (
            f"four-eyes: {PRODUCER} may not approve the run its upload started; {OPERATOR} approves over HTTPS "
            "(task token resumes the workflow)",
            step_approve,
        ),
        ("the workflow releases it: stepwise models", step_released),
        ("send 300 predictions over HTTP to the local API", step_predict),
        ("score the dataset version production was trained on as a batch job; its manifest", step_batch),
    ]
