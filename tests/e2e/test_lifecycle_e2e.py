"""The lifecycle on the local cloud: upload -> validation -> train -> evaluate -> register, from the
real template (state machine re-created in moto's executing backend, handlers from their assets)."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from stepwise.local.session import LocalSession
from stepwise.target import Target
from tests.unit.lifecycle_data import classification_table

pytestmark = pytest.mark.slow

SPEC: dict[str, Any] = {
    "name": "toy",
    "model": "toy-model",
    "dataset": "toy",
    "target": "label",
    "features": ["a", "b", "c"],
    "task": "classification",
    "estimator": {"name": "HistGradientBoostingClassifier", "params": {"max_iter": 30}},
    "split": {"holdout_fraction": 0.25, "seed": 1},
    "gates": {"min_primary": 0.6, "max_p99_latency_ms": 250.0, "max_artifact_bytes": 20_000_000},
    "latency_calls": 200,
}
CONTRACT: dict[str, Any] = {
    "columns": [
        {"name": "a", "type": "float", "nullable": True},
        {"name": "b", "type": "int", "nullable": False},
        {"name": "c", "type": "category", "nullable": False, "categories": ["red", "green", "blue"]},
        {"name": "label", "type": "category", "nullable": False, "categories": ["yes", "no"]},
    ],
    "target": "label",
    "training_spec": "toy",
}


def wait_for(fetch: Any, timeout: float = 240.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fetch()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError("timed out")


def test_lifecycle_upload_to_pending_approval_with_lineage(
    local: Target, local_session: LocalSession, tmp_path: Path
) -> None:
    # Given a spec and a contract that names it
    assert local.api("PUT", "/v1/specs/toy", SPEC).status == 201
    reply = local.api("PUT", "/v1/datasets/toy/contract", CONTRACT)
    assert reply.ok, reply.body
    # When a good file is uploaded under raw/toy/ (any S3 client; here the cloud's own)
    buf = io.BytesIO()
    pq.write_table(classification_table(600), buf)
    key = "raw/toy/toy.parquet"
    put = local_session.cloud.client("s3").put_object(Bucket=local.data_bucket, Key=key, Body=buf.getvalue())
    dataset = wait_for(lambda: (local.api("GET", "/v1/datasets/toy/versions").body or {}).get("versions"))[0]
    # Then the workflow trains, evaluates and registers version 1, waiting for approval
    versions = wait_for(lambda: local.api("GET", "/v1/models/toy-model/versions").body.get("versions"))
    assert versions[0]["status"] == "PENDING_APPROVAL", versions
    version = local.api("GET", "/v1/models/toy-model/versions/1").body
    # whose lineage leads back to the exact uploaded object and the contract version
    assert (version["data_key"], version["data_version_id"], version["data_sha256"]) == (
        dataset["key"],
        dataset["version_id"],
        dataset["sha256"],
    )
    assert (dataset["source_key"], dataset["source_version_id"]) == (key, put.get("VersionId", ""))
    assert version["data_version_id"] and put.get("VersionId"), "the local cloud's buckets are versioned"
    assert version["contract_version"] == dataset["contract_version"] == 1
    assert all(g["passed"] for g in version["gates"])
    assert set(version["artifacts"]) == {"skops", "onnx", "profile"}
    runs = local.api("GET", "/v1/models/toy-model/runs").body["runs"]
    assert runs[0]["run_id"] == "toy-model-1-1"
    assert [s["name"] for s in runs[0]["steps"]][:4] == ["start", "train", "evaluate", "register"]
