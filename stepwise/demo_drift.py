"""Demo steps for monitoring: shifted traffic, a drift check with its reports, and the retraining
decision (a second check inside the cooldown is recorded as skipped)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from functions.models.drift import DriftCheckAccepted, DriftReport, RetrainingDecision
from stepwise.commands.predict import predict_all
from stepwise.demo_shared import MODEL, DemoFailure

SHIFTED_ROWS = 1_200
REPORT_WAIT_SECONDS = 120.0


def shifted_rows(n: int, seed: int = 11) -> list[dict[str, Any]]:
    """Wine rows resampled, with three measurements shifted and one region over-represented."""
    from stepwise.demo_data import wine_table

    table = wine_table()
    features = [c for c in table.column_names if c not in ("id", "label")]
    rng = np.random.default_rng(seed)
    base = table.select(features).take(rng.integers(0, table.num_rows, n)).to_pylist()
    alcohol = np.array([r["alcohol"] for r in base])
    for row in base:
        row["alcohol"] = float(row["alcohol"] + 1.5 * alcohol.std())  # mean shift
        row["color_intensity"] = float(row["color_intensity"] * 1.6)  # scale change
        row["proline"] = float(row["proline"] * 1.4)
    for row in base[: n // 2]:
        row["region"] = "north"  # a category from a third to two thirds
    return base


def _flush_captures(ctx: Any) -> list[str]:
    # Lambda recycles execution environments; their SHUTDOWN flushes the capture buffers.
    return ctx.session.cloud.shutdown_functions("Inference")  # type: ignore[no-any-return]


def step_shifted_traffic(ctx: Any) -> None:
    rows = shifted_rows(SHIFTED_ROWS)
    results, failed = predict_all(ctx.target, MODEL, rows, 100, None)
    if failed is not None:
        raise DemoFailure(f"predict answered HTTP {failed.status}: {failed.body}")
    recycled = _flush_captures(ctx)
    ctx.say(
        f"{len(results)} shifted rows predicted (alcohol +1.5 std, color_intensity x1.6, proline x1.4, "
        f"half the rows from 'north'); {len(recycled)} inference environment(s) recycled, captures flushed"
    )


def _check(ctx: Any) -> tuple[DriftCheckAccepted, DriftReport]:
    # The wine training set has 133 rows, under the default minimum of 1,000 per feature.
    body = {"window_hours": 1, "retrain": True, "config": {"min_rows": 100}}
    reply = ctx.target.api("POST", f"/v1/models/{MODEL}/drift", body)
    if not reply.ok:
        raise DemoFailure(f"drift route answered HTTP {reply.status}: {reply.body}")
    accepted = DriftCheckAccepted.model_validate(reply.body)
    s3 = ctx.target.client("s3")
    bucket, _, key = accepted.report_json.removeprefix("s3://").partition("/")
    deadline = time.monotonic() + REPORT_WAIT_SECONDS
    while True:
        try:
            data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            break
        except s3.exceptions.NoSuchKey:
            if time.monotonic() > deadline:
                raise DemoFailure(f"no drift report at {accepted.report_json}") from None
            time.sleep(0.5)
    return accepted, DriftReport.model_validate_json(data)


def _decisions(ctx: Any) -> list[RetrainingDecision]:
    table = ctx.target.outputs["MetadataTableName"]
    items = ctx.target.client("dynamodb").query(
        TableName=table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :sk)",
        ExpressionAttributeValues={":pk": {"S": f"MONITOR#{MODEL}"}, ":sk": {"S": "RETRAIN#"}},
    )["Items"]
    return [RetrainingDecision.model_validate_json(i["doc"]["S"]) for i in items]


def step_drift_check(ctx: Any) -> None:
    accepted, report = _check(ctx)
    ctx.say(f"POST /v1/models/{MODEL}/drift -> check {accepted.check_id}: {report.verdict.value} ({report.reason})")
    ctx.say(f"{report.row_count} rows checked; drifted: {', '.join(report.drifted_features) or 'none'}")
    html = ctx.target.client("s3")
    bucket, _, key = accepted.report_html.removeprefix("s3://").partition("/")
    out = Path(ctx.state.get("workdir", ".")) / f"drift-{MODEL}-{accepted.check_id}.html"
    out.write_bytes(html.get_object(Bucket=bucket, Key=key)["Body"].read())
    ctx.say(f"reports: {accepted.report_json}\n         {accepted.report_html}\n  opened locally: {out}")
    if report.verdict.value != "drift":
        raise DemoFailure(f"shifted traffic should drift the model; the check says {report.verdict.value}")
    decisions = _decisions(ctx)
    if not decisions:
        raise DemoFailure("no retraining decision was recorded")
    d = decisions[-1]
    ctx.say(f"retraining decision: {d.action} - {d.reason}")
    if not d.started:
        raise DemoFailure("the drift verdict should have started a retraining run")
    ctx.say(f"  started {d.execution_arn.rsplit(':', 1)[-1]} on {d.dataset}@{d.dataset_version}")


def step_retrained(ctx: Any) -> None:
    deadline = time.monotonic() + REPORT_WAIT_SECONDS * 3
    while True:
        reply = ctx.target.api("GET", f"/v1/models/{MODEL}/versions")
        versions = reply.body.get("versions", []) if reply.ok and isinstance(reply.body, dict) else []
        fresh = [v for v in versions if v["version"] > ctx.state["lifecycle_version"]]
        if fresh:
            break
        if time.monotonic() > deadline:
            raise DemoFailure("the retraining run registered no version")
        time.sleep(1.0)
    v = fresh[-1]
    ctx.say(f"{MODEL} v{v['version']} is {v['status']}: a retrained model still passes gates and waits for a person")
    if v["status"] != "PENDING_APPROVAL":
        raise DemoFailure(f"expected the retrained version to wait for approval, it is {v['status']}")


def step_cooldown(ctx: Any) -> None:
    before = len(_decisions(ctx))
    accepted, report = _check(ctx)
    decisions = _decisions(ctx)
    if len(decisions) <= before:
        raise DemoFailure("the second check recorded no retraining decision")
    d = decisions[-1]
    ctx.say(f"second check {accepted.check_id}: {report.verdict.value}; decision: {d.action} - {d.reason}")
    if d.action != "skip":
        detail = json.dumps(d.model_dump(mode="json"))
        raise DemoFailure(f"a second trigger inside the cooldown should be skipped: {detail}")


def drift_steps() -> list[tuple[str, Any]]:
    return [
        (f"send {SHIFTED_ROWS} shifted rows to {MODEL}", step_shifted_traffic),
        ("run the drift check: reports (JSON + HTML), verdict, retraining decision", step_drift_check),
        ("the retraining run trains, evaluates and registers a new version", step_retrained),
        ("trigger again inside the cooldown: recorded as skipped", step_cooldown),
    ]
