"""Drift on the local cloud: captured (shifted) traffic -> the API's drift route and the hourly
schedule -> the real drift handler -> JSON + HTML reports in S3, a summary and a retraining decision
in the metadata table. (Slow: a local cloud of its own.)"""

from __future__ import annotations

import gzip
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from functions.dal import registry as registry_dal
from functions.logic.drift_outputs import output_profile
from functions.logic.profile import build_reference_profile
from functions.models.drift import DriftReport
from functions.models.registry import Artifact, Feature, ModelRecord, ModelVersion, VersionStatus
from infra import constants as c
from stepwise.local.session import LocalSession
from stepwise.target import Target

FEATURES = [Feature(name="x", type="float"), Feature(name="c", type="category")]


def _table(n: int, seed: int, shift: float) -> Any:
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    return pa.table({"x": rng.normal(size=n) + shift, "c": pa.array(np.array(["a", "b"])[rng.integers(0, 2, size=n)])})


def _seed_model(local: Target) -> None:
    import hashlib

    # the reference: training features, and a regressor's holdout outputs (prediction = 2 x)
    holdout = _table(2_000, 7, 0.0).column("x").to_numpy()
    outputs = output_profile("regression", None, values=2.0 * holdout)
    profile = (
        build_reference_profile(_table(5_000, 1, 0.0), FEATURES).model_copy(update={"outputs": outputs}).to_bytes()
    )
    key = "models/drifty/1/profile.json"
    local.client("s3").put_object(Bucket=local.artifacts_bucket, Key=key, Body=profile)
    now = datetime.now(UTC)
    version = ModelVersion(
        model="drifty",
        version=1,
        status=VersionStatus.PRODUCTION,
        created_at=now,
        updated_at=now,
        task="regression",
        features=FEATURES,
        target="y",
        dataset="drifty",  # trained under contract drifty v1 (live data quality checks its rules)
        contract_version=1,
        artifacts={
            "profile": Artifact(
                uri=f"s3://{local.artifacts_bucket}/{key}",
                sha256=hashlib.sha256(profile).hexdigest(),
                size_bytes=len(profile),
            )
        },
    )
    record = ModelRecord(
        name="drifty",
        latest_version=1,
        production_version=1,
        candidate_weight=0.0,
        revision=0,
        created_at=now,
        updated_at=now,
    )
    table = local.output(c.OUT_REGISTRY_TABLE)
    ddb = local.client("dynamodb")
    ddb.put_item(TableName=table, Item=registry_dal.version_item(version))
    ddb.put_item(TableName=table, Item=registry_dal.model_item(record))


CONTRACT = {
    "columns": [
        {"name": "x", "type": "float", "min": -5.0, "max": 5.0},
        {"name": "c", "type": "category", "categories": ["a", "b"]},
        {"name": "y", "type": "float", "nullable": False},
    ],
    "target": "y",
}
OUT_OF_RANGE = [f"r{i}" for i in range(0, 2_000, 40)]  # x = 50.0 in these 50 requests (2.5%)


def _capture(local: Target, shift: float) -> None:
    """Traffic as serving captures it (same key layout and line format): the model answers 2 x."""
    now = datetime.now(UTC)
    rows = _table(2_000, 2, shift).to_pylist()
    for i in range(0, len(rows), 40):
        rows[i]["x"] = 50.0
    lines = [
        json.dumps(
            {
                "request_id": f"r{i}",
                "model": "drifty",
                "version": 1,
                "variant": "production",
                "time": now.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "features": row,
                "prediction": 2.0 * row["x"],
                "probabilities": None,
            }
        )
        for i, row in enumerate(rows)
    ]
    key = f"captures/drifty/dt={now:%Y-%m-%d}/hour={now:%H}/{int(now.timestamp() * 1000)}-e2e.jsonl.gz"
    local.client("s3").put_object(Bucket=local.data_bucket, Key=key, Body=gzip.compress("\n".join(lines).encode()))


def _wait_for(local: Target, uri: str, seconds: float = 120.0) -> bytes:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    deadline = time.monotonic() + seconds
    while True:
        try:
            return local.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]
        except local.client("s3").exceptions.NoSuchKey:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def test_drift_e2e_route_and_schedule_write_reports_and_decisions(local_session: LocalSession, local: Target) -> None:
    # Given a production model with a reference profile (holdout outputs included), trained under a
    # contract, and shifted captured traffic with some x out of the contract's range
    assert local.api("PUT", "/v1/datasets/drifty/contract", CONTRACT).status == 201
    _seed_model(local)
    _capture(local, shift=1.0)
    # When the drift route is called
    reply = local.api("POST", "/v1/models/drifty/drift", {"window_hours": 2})
    # Then the check runs in the drift Lambda and writes both reports
    assert reply.status == 202, reply.body
    report = DriftReport.model_validate_json(_wait_for(local, reply.body["report_json"]))
    assert report.verdict.value == "drift" and report.drifted_features == ["x"] and report.row_count == 2_000
    html = _wait_for(local, reply.body["report_html"])
    assert b"<svg" in html and b"range:x" in html and b"Outputs (prediction drift)" in html
    # the output section shows the shift; the data-quality section names the rule and the requests
    assert report.outputs is not None and report.outputs.verdict == "drift" and report.outputs.drifted == ["prediction"]
    (prediction,) = report.outputs.outputs
    assert prediction.numeric is not None and prediction.numeric.current_mean > prediction.numeric.reference_mean + 1
    dq = report.data_quality
    assert dq is not None and dq.verdict == "fail" and dq.dataset == "drifty" and dq.contract_version == 1
    assert [(r.rule, r.violations, r.failed) for r in dq.rules] == [("range:x", 50, True)]
    assert dq.rules[0].request_ids == OUT_OF_RANGE[:20] and dq.rules[0].values[0] == "50.0"
    assert report.overall is not None and report.overall.verdict == "fail"
    # When the hourly schedule fires
    fired = local_session.fire_schedules(c.MONITORING_ID)
    assert fired
    # Then a second check and the retraining decisions are recorded (no spec or dataset here: skipped, with why)
    metadata = local.output(c.OUT_METADATA_TABLE)
    deadline = time.monotonic() + 120
    while True:
        items = local.client("dynamodb").query(
            TableName=metadata,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "MONITOR#drifty"}},
        )["Items"]
        checks = [i for i in items if i["sk"]["S"].startswith("CHECK#")]
        decisions = [json.loads(i["doc"]["S"]) for i in items if i["sk"]["S"].startswith("RETRAIN#")]
        if len(checks) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    assert len(checks) == 2
    assert len(decisions) == 2 and all(d["action"] == "skip" for d in decisions)
    assert all("no training target" in d["reason"] for d in decisions)
    assert datetime.fromisoformat(decisions[0]["decided_at"]) > datetime.now(UTC) - timedelta(minutes=10)
    # and the schedule's round (the drift-fleet workflow) recorded its summary: the model checked
    deadline = time.monotonic() + 60
    while True:
        rounds = local.api("GET", "/v1/drift/rounds").body["rounds"]
        if (rounds and rounds[0]["complete"]) or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    assert rounds[0]["complete"] and rounds[0]["checked"] == ["drifty"] and rounds[0]["failed"] == []
