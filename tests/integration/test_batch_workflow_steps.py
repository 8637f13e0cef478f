"""The batch workflow's task handler (functions/handlers/batch.py) on moto, driven step by step as
the batch state machine drives it (Plan -> one ScoreChunk per item -> Finish, and RecordFailure
when a step fails), and the API function's batch route end to end where no workflow is deployed
(the local cloud): the same steps run in-process before the reply."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import boto3
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from functions.handlers import api
from functions.handlers import batch as handler
from functions.models.batch import BatchJobFailed, manifest_key, report_key
from functions.models.settings import get_settings
from tests.integration import test_batch_api as api_tests
from tests.integration.approval_support import Context, api_event
from tests.integration.conftest import Stores
from tests.integration.test_predict_support import NAME, breast_cancer_classifier, put_model, put_version

machine, served = api_tests.machine, api_tests.served
PATH = api_tests.PATH


def _csv(rows: int) -> bytes:
    sink = io.BytesIO()
    pcsv.write_csv(api_tests._table(rows), sink)
    return sink.getvalue()


def _step(event: dict[str, Any]) -> Any:
    return handler.lambda_handler(json.loads(json.dumps(event)), Context())


def _job(job_id: str) -> dict[str, Any]:
    reply = api.lambda_handler(api_event("GET", f"{PATH}/{job_id}", None, who="alice"), Context())
    assert reply["statusCode"] == 200, reply
    return json.loads(reply["body"])  # type: ignore[no-any-return]


def _start(stores: Stores, rows: int, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("STEPWISE_BATCH_CHUNK_BYTES", "20000")  # several chunks
    get_settings.cache_clear()
    uri = api_tests._upload(stores, "raw/scoring/customers.csv", _csv(rows))
    body = {"input": {"uri": uri}, "passthrough": ["customer"]}
    reply = api.lambda_handler(api_event("POST", PATH, body, who="alice"), Context())
    assert reply["statusCode"] == 202, reply
    return str(json.loads(reply["body"])["job_id"])


def test_batch_steps_plan_score_each_item_and_finish_with_the_manifest(
    served: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a job accepted by the API function's route (its workflow started)
    job_id = _start(served, 300, monkeypatch)
    job = {"model": NAME, "job_id": job_id}
    # When the workflow's steps run: Plan, then each Map item as the Distributed Map hands it over
    planned = _step({"step": "plan", **job})
    assert len(planned["chunks"]) >= 3
    for item in planned["chunks"]:
        _step({"step": "chunk", "task": item})
    finished = _step({"step": "finish", **job})
    # Then the job succeeded, every row scored, and the manifest's sha256s are the parts'
    assert finished == {"job_id": job_id, "status": "SUCCEEDED", "rows": 300, "rejected": 0}
    record = _job(job_id)
    assert record["status"] == "SUCCEEDED" and record["chunks_done"] == record["chunks_total"] == len(planned["chunks"])
    s3 = boto3.client("s3")
    manifest = json.loads(s3.get_object(Bucket=served.data_bucket, Key=manifest_key(NAME, job_id))["Body"].read())
    for part in manifest["parts"]:
        data = s3.get_object(Bucket=served.data_bucket, Key=part["key"])["Body"].read()
        assert hashlib.sha256(data).hexdigest() == part["sha256"]


def test_batch_steps_a_job_with_an_unscored_chunk_fails_the_execution_named_on_its_record(
    served: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a planned job whose first chunk's task failed for good (its item ended as a failure)
    job_id = _start(served, 300, monkeypatch)
    job = {"model": NAME, "job_id": job_id}
    planned = _step({"step": "plan", **job})
    for item in planned["chunks"][1:]:
        _step({"step": "chunk", "task": item})
    # When Finish runs, Then it fails the execution, the job's record naming the chunk to resume
    with pytest.raises(BatchJobFailed, match="ChunksFailed"):
        _step({"step": "finish", **job})
    record = _job(job_id)
    assert record["status"] == "FAILED" and record["error"] == "ChunksFailed" and "[0]" in record["message"]
    # And RecordFailure, which the Catch then runs, keeps that reason
    error = {"Error": "BatchJobFailed", "Cause": "ChunksFailed: ..."}
    assert _step({"step": "fail", **job, "error": error})["status"] == "FAILED"
    assert _job(job_id)["error"] == "ChunksFailed"


def test_batch_steps_a_step_that_failed_after_its_retries_is_recorded_on_the_job(
    served: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a running job
    job_id = _start(served, 50, monkeypatch)
    _step({"step": "plan", "model": NAME, "job_id": job_id})
    # When the Map failed (a Catch hands RecordFailure the error and its cause)
    error = {"Error": "States.ExceedToleratedFailureThreshold", "Cause": "the map could not run"}
    _step({"step": "fail", "model": NAME, "job_id": job_id, "error": error})
    # Then the job is FAILED with that error and cause, and its finish is audited
    record = _job(job_id)
    assert (record["status"], record["error"], record["message"]) == ("FAILED", error["Error"], error["Cause"])
    assert [e.action for e in api_tests._batch_events(served)].count("batch.finish") == 1


def test_batch_route_without_a_deployed_workflow_runs_the_steps_in_process(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the production version and no batch workflow (STEPWISE_BATCH_SM_ARN unset, as the local
    # cloud leaves it: moto's interpreter cannot run a Distributed Map)
    monkeypatch.delenv("STEPWISE_BATCH_SM_ARN", raising=False)
    get_settings.cache_clear()
    put_version(stores, NAME, 1, breast_cancer_classifier())
    put_model(stores, NAME, production=1)
    # When a job is requested over a multi-chunk file
    job_id = _start(stores, 300, monkeypatch)
    # Then the reply already reports it done: every chunk scored, the manifest written
    record = _job(job_id)
    assert record["status"] == "SUCCEEDED" and record["rows"] == 300 and record["chunks_total"] >= 3
    assert not record["execution_arn"]
    s3 = boto3.client("s3")
    manifest = json.loads(s3.get_object(Bucket=stores.data_bucket, Key=manifest_key(NAME, job_id))["Body"].read())
    assert sum(p["rows"] for p in manifest["parts"]) == 300
    first = s3.get_object(Bucket=stores.data_bucket, Key=report_key(NAME, job_id, 0))["Body"].read()
    assert json.loads(first)["version"] == 1
    assert (
        pq.read_table(
            io.BytesIO(s3.get_object(Bucket=stores.data_bucket, Key=manifest["parts"][0]["key"])["Body"].read())
        ).num_rows
        > 0
    )
