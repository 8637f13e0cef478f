"""The batch workflow's steps on moto (functions/logic/batch_run.py), driven in order as the workflow
drives them (plan -> every chunk -> finish): a multi-chunk CSV scored with the predictions the
predict path answers, a manifest whose sha256s are the parts'; a chunk that failed transiently
converges when retried, with identical bytes; production changing mid-job does not change the
job's version; 2% malformed rows fail the job with the reject report, 0.5% finish with it; a job
with a failed chunk resumes scoring that chunk only."""

from __future__ import annotations

import hashlib
import io
import json
import time
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from functions.dal import audit as audit_dal
from functions.dal import registry as registry_dal
from functions.logic import batch_jobs, batch_run
from functions.logic.serving import ModelCache, Serving
from functions.models.audit import Actor, model_target
from functions.models.batch import BatchRequest, ChunkTask, JobStatus, manifest_key
from functions.models.errors import NotFound, StoreUnavailable
from functions.models.registry import VersionStatus
from functions.models.settings import get_settings
from tests import faults
from tests.integration import test_batch_api as api_tests
from tests.integration.conftest import Stores
from tests.integration.test_predict_support import NAME, breast_cancer_classifier, put_model, put_version

machine = api_tests.machine  # the stand-in workflow and the production version, as the route tests have them
served = api_tests.served
_table, _upload = api_tests._table, api_tests._upload
ALICE = Actor(identity="arn:aws:iam::123456789012:user/alice", correlation_id="c-1")
CHUNK_BYTES = 20_000


def _csv(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pcsv.write_csv(table, sink)
    return sink.getvalue()


def _models() -> ModelCache:
    s = get_settings()
    return ModelCache(
        table=s.registry_table,
        artifacts_bucket=s.artifacts_bucket,
        capacity=4,
        max_instances=1_000,
        retry_after=1.0,
        clock=time.monotonic,
    )


def _start(stores: Stores, data: bytes, **body: Any) -> tuple[str, list[ChunkTask]]:
    uri = _upload(stores, "raw/scoring/customers.csv", data)
    request = BatchRequest.model_validate({"input": {"uri": uri}, "passthrough": ["customer"]} | body)
    job = batch_jobs.request_batch(get_settings(), NAME, request, ALICE)
    return job.job_id, batch_run.plan_job(get_settings(), NAME, job.job_id, chunk_bytes=CHUNK_BYTES)


def _run_all(job_id: str, tasks: list[ChunkTask]) -> None:
    models = _models()
    for task in tasks:
        batch_run.run_chunk(get_settings(), task, models)


def _get(stores: Stores, key: str) -> bytes:
    return bytes(boto3.client("s3").get_object(Bucket=stores.data_bucket, Key=key)["Body"].read())


def _parts(stores: Stores, manifest: dict[str, Any]) -> pa.Table:
    return pa.concat_tables(pq.read_table(io.BytesIO(_get(stores, p["key"]))) for p in manifest["parts"])


def test_a_multi_chunk_job_scores_every_row_as_predict_does_and_its_manifest_matches(served: Stores) -> None:
    # Given 300 rows as CSV and a job over them, planned in several chunks
    table = _table(300)
    job_id, tasks = _start(served, _csv(table))
    assert len(tasks) >= 3
    # When every chunk runs and the job finishes
    _run_all(job_id, tasks)
    done = batch_run.finish_job(get_settings(), NAME, job_id)
    # Then every row was scored once, with the predict path's answers
    assert done.status is JobStatus.SUCCEEDED and (done.rows, done.scored, done.rejected) == (300, 300, 0)
    manifest = json.loads(_get(served, manifest_key(NAME, job_id)))
    scored = _parts(served, manifest)
    assert scored.column("customer").to_pylist() == table.column("customer").to_pylist()
    features = [f.name for f in breast_cancer_classifier().features]
    instances = [{k: row[k] for k in features} for row in table.to_pylist()]
    reply = Serving(get_settings()).predict(NAME, {"instances": instances}).reply
    assert scored.column("prediction").to_pylist() == reply.predictions
    assert scored.column("probabilities").to_pylist() == reply.probabilities
    # And the manifest names the version, the artifact, the input version and each part's sha256
    assert manifest["version"] == 1 and manifest["artifact_sha256"] == done.artifact_sha256
    assert manifest["input"]["version_id"] and manifest["requested_by"] == ALICE.identity
    assert manifest["rows"] == 300 and len(manifest["parts"]) == len(tasks)
    for part in manifest["parts"]:
        assert hashlib.sha256(_get(served, part["key"])).hexdigest() == part["sha256"]
    # And a repeated finish (the workflow's retry) changes nothing; the start and the finish are audited once
    assert batch_run.finish_job(get_settings(), NAME, job_id) == done
    assert json.loads(_get(served, manifest_key(NAME, job_id))) == manifest
    events = audit_dal.list_events(served.metadata_table, target=model_target(NAME))
    assert sorted(e.action for e in events if e.action.startswith("batch.")) == ["batch.finish", "batch.start"]
    # And the version's jobs name this one, and a row is explained by its pass-through id
    assert [j.job_id for j in batch_run.jobs_of(get_settings(), NAME, 1)] == [job_id]
    assert batch_run.jobs_of(get_settings(), NAME, 2) == []
    explained = batch_run.explain_row(get_settings(), NAME, job_id, "c7", "customer")
    (row,) = explained.rows
    assert explained.version == 1 and explained.artifact_sha256 == done.artifact_sha256
    assert row.prediction == reply.predictions[7] and row.probabilities == reply.probabilities[7]
    with pytest.raises(NotFound):
        batch_run.explain_row(get_settings(), NAME, job_id, "nobody", "customer")


def test_a_chunk_that_fails_transiently_is_retried_with_identical_bytes(served: Stores) -> None:
    job_id, tasks = _start(served, _csv(_table(200)))
    models = _models()
    first = batch_run.run_chunk(get_settings(), tasks[0], models)
    # When the next chunk's part write times out, the step fails with a retryable error
    with faults.inject("s3.PutObject", faults.TIMEOUT), pytest.raises(StoreUnavailable):
        batch_run.run_chunk(get_settings(), tasks[1], models)
    # Then the retry converges, and a retried chunk rewrites the very same bytes
    for task in tasks[1:]:
        batch_run.run_chunk(get_settings(), task, models)
    again = batch_run.run_chunk(get_settings(), tasks[0], _models())
    assert again.part.sha256 == first.part.sha256
    done = batch_run.finish_job(get_settings(), NAME, job_id)
    assert done.status is JobStatus.SUCCEEDED and done.scored == 200


def test_production_changing_mid_job_does_not_change_the_jobs_version(served: Stores) -> None:
    job_id, tasks = _start(served, _csv(_table(200)))
    # When v2 is released to production after the job was planned
    put_version(served, NAME, 2, breast_cancer_classifier(n_estimators=10, seed=1))
    put_model(served, NAME, production=2)
    _run_all(job_id, tasks)
    done = batch_run.finish_job(get_settings(), NAME, job_id)
    # Then every chunk scored with v1, the version the job resolved
    manifest = json.loads(_get(served, manifest_key(NAME, job_id)))
    assert done.version == 1 and set(_parts(served, manifest).column("model_version").to_pylist()) == {1}


@pytest.mark.parametrize(("malformed", "status"), [(20, JobStatus.FAILED), (5, JobStatus.SUCCEEDED)])
def test_the_reject_share_decides_whether_the_job_fails(served: Stores, malformed: int, status: JobStatus) -> None:
    # Given 1,000 rows of which `malformed` have a value that is not a number
    lines = _csv(_table(1000)).decode().splitlines()
    for i in range(malformed):
        row = 1 + i * 37
        cells = lines[row].split(",")
        cells[3] = "high"
        lines[row] = ",".join(cells)
    job_id, tasks = _start(served, ("\n".join(lines) + "\n").encode())
    _run_all(job_id, tasks)
    done = batch_run.finish_job(get_settings(), NAME, job_id)
    # Then the rejects are counted and kept with their reasons; above 1% the job fails saying why
    assert done.status is status and done.rejected == malformed and done.scored == 1000 - malformed
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=served.data_bucket)["Contents"]]
    rejects = [k for k in keys if "/rejects/" in k]
    assert sum(pq.read_table(io.BytesIO(_get(served, k))).num_rows for k in rejects) == malformed
    has_manifest = manifest_key(NAME, job_id) in keys
    if status is JobStatus.FAILED:
        assert done.error == "RejectShareExceeded" and "2.00%" in done.message and "rejects/" in done.message
        assert not has_manifest
    else:
        manifest = json.loads(_get(served, manifest_key(NAME, job_id)))
        assert manifest["rejected"] == malformed and manifest["reasons"] == {"unparseable": malformed}


def test_a_failed_chunk_is_resumed_alone(served: Stores) -> None:
    job_id, tasks = _start(served, _csv(_table(200)))
    models = _models()
    for task in tasks[:-1]:
        batch_run.run_chunk(get_settings(), task, models)
    failed = batch_run.finish_job(get_settings(), NAME, job_id)
    assert failed.status is JobStatus.FAILED and failed.error == "ChunksFailed"
    assert batch_run.failed_chunks(get_settings(), NAME, job_id) == [tasks[-1].index]
    batch_run.run_chunk(get_settings(), tasks[-1], models)
    done = batch_run.finish_job(get_settings(), NAME, job_id)
    assert done.status is JobStatus.SUCCEEDED and done.scored == 200


def test_a_version_retired_mid_job_keeps_scoring_the_job_with_that_version(served: Stores) -> None:
    # Given a planned job over v1, then v2 released and v1 retired before the chunks run
    job_id, tasks = _start(served, _csv(_table(200)))
    put_version(served, NAME, 2, breast_cancer_classifier(n_estimators=10, seed=1))
    put_model(served, NAME, production=2)
    retired = registry_dal.get_version(served.registry_table, NAME, 1)
    assert retired is not None
    retired = retired.model_copy(update={"status": VersionStatus.RETIRED})
    boto3.client("dynamodb").put_item(TableName=served.registry_table, Item=registry_dal.version_item(retired))
    # When the chunks run and the job finishes
    _run_all(job_id, tasks)
    done = batch_run.finish_job(get_settings(), NAME, job_id)
    # Then the job scored every row with v1, the version (and artifact) it resolved
    manifest = json.loads(_get(served, manifest_key(NAME, job_id)))
    assert done.status is JobStatus.SUCCEEDED and done.version == 1 and manifest["version"] == 1
    assert set(_parts(served, manifest).column("model_version").to_pylist()) == {1}
