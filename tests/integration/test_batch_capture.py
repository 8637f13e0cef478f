"""Capture of batch-scored rows on moto: a job with `"capture": true` writes a bounded sample of
each chunk's scored rows into the capture store in serving's format, and a drift check over the
model counts them; a retried chunk rewrites its capture object with the same bytes."""

from __future__ import annotations

import gzip
import json
from datetime import timedelta
from pathlib import Path

import boto3
import pytest

from functions.dal import artifacts
from functions.dal import registry as registry_dal
from functions.logic import batch_run, drift_check
from functions.logic.profile import build_reference_profile
from functions.models.batch import JobStatus, manifest_key
from functions.models.drift import DriftCheckRequest
from functions.models.settings import get_settings
from tests.integration import test_batch_run as run_tests
from tests.integration.conftest import Stores
from tests.integration.test_predict_support import NAME, breast_cancer_classifier

machine = run_tests.machine
served = run_tests.served
CAP = 10  # captured rows per chunk in these tests


@pytest.fixture
def capped(served: Stores, monkeypatch: pytest.MonkeyPatch) -> Stores:
    monkeypatch.setenv("STEPWISE_BATCH_CAPTURE_ROWS", str(CAP))
    get_settings.cache_clear()
    return served


def _captures(stores: Stores) -> dict[str, bytes]:
    listed = boto3.client("s3").list_objects_v2(Bucket=stores.data_bucket, Prefix="captures/")
    return {o["Key"]: run_tests._get(stores, o["Key"]) for o in listed.get("Contents", [])}


def _with_profile(stores: Stores) -> None:
    """Give v1 the reference profile a drift check compares with (its training rows' profile)."""
    trained = breast_cancer_classifier()
    version = registry_dal.get_version(stores.registry_table, NAME, 1)
    assert version is not None
    table = run_tests._table(569).drop_columns(["customer"])
    profile = build_reference_profile(table, trained.features).to_bytes()
    ref = artifacts.put_artifact(stores.artifacts_bucket, f"models/{NAME}/1/profile.json", profile)
    updated = version.model_copy(update={"artifacts": version.artifacts | {"profile": ref}})
    boto3.client("dynamodb").put_item(TableName=stores.registry_table, Item=registry_dal.version_item(updated))


def test_a_captured_batch_job_feeds_the_drift_check_a_bounded_sample(capped: Stores, tmp_path: Path) -> None:
    # Given 300 rows scored in several chunks by a job that captures
    table = run_tests._table(300)
    job_id, tasks = run_tests._start(capped, run_tests._csv(table), capture=True)
    assert len(tasks) >= 3
    run_tests._run_all(job_id, tasks)
    done = batch_run.finish_job(get_settings(), NAME, job_id)
    assert done.status is JobStatus.SUCCEEDED and done.scored == 300
    # Then each chunk wrote one capture object of at most CAP rows, in serving's capture line format
    manifest = json.loads(run_tests._get(capped, manifest_key(NAME, job_id)))
    captures = _captures(capped)
    assert sorted(captures) == sorted(manifest["captures"]) and len(captures) == len(tasks)
    lines = [json.loads(line) for body in captures.values() for line in gzip.decompress(body).splitlines()]
    assert len(lines) == manifest["captured"] == sum(min(CAP, p["rows"]) for p in manifest["parts"])
    assert manifest["captured"] < 300
    # And a captured row is the input row with the prediction the part holds, named by job, chunk and row
    parts = run_tests._parts(capped, manifest)
    predictions = dict(zip(parts.column("customer").to_pylist(), parts.column("prediction").to_pylist(), strict=True))
    names = [f.name for f in breast_cancer_classifier().features]
    by_features = {tuple(r[n] for n in names): r["customer"] for r in table.to_pylist()}
    for line in lines:
        assert line["request_id"].startswith(f"batch:{job_id}:") and line["version"] == 1
        customer = by_features[tuple(line["features"].values())]
        assert line["prediction"] == predictions[customer] and len(line["probabilities"]) == 2
    # When a drift check over the model's window runs
    _with_profile(capped)
    req = DriftCheckRequest(model=NAME, window_hours=2, end=done.requested_at + timedelta(minutes=30))
    _, report = drift_check.run_drift_check(req, get_settings(), workdir=tmp_path, now=req.end)
    # Then it counts the batch-scored rows
    assert report.row_count == manifest["captured"]


def test_a_retried_chunk_rewrites_its_capture_with_the_same_bytes(capped: Stores) -> None:
    _, tasks = run_tests._start(capped, run_tests._csv(run_tests._table(200)), capture=True)
    batch_run.run_chunk(get_settings(), tasks[0], run_tests._models())
    first = _captures(capped)
    batch_run.run_chunk(get_settings(), tasks[0], run_tests._models())
    assert _captures(capped) == first and len(first) == 1


def test_a_job_that_does_not_capture_writes_no_capture(capped: Stores) -> None:
    job_id, tasks = run_tests._start(capped, run_tests._csv(run_tests._table(200)))
    run_tests._run_all(job_id, tasks)
    assert batch_run.finish_job(get_settings(), NAME, job_id).status is JobStatus.SUCCEEDED
    assert _captures(capped) == {}
