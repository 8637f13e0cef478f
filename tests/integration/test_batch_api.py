"""The batch routes on moto, through a Powertools resolver built as the API's (functions/handlers/api.py:
validation, JSON body parsing, the same error handlers) with the batch router included (the API
function includes it once the batch workflow is deployed): POST /v1/models/{name}/batch resolves the
version once, pins the input, records the job with its audit event and starts the batch workflow
(named after the job); a client token makes a repeat the same job; every bad input is a clear 4xx
with nothing recorded, started or written under predictions/."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from functions.dal import audit as audit_dal
from functions.handlers.errors import install_error_handlers, parse_json_object
from functions.handlers.routes import batch as batch_routes
from functions.logic import batch_run
from functions.models.audit import model_target
from functions.models.settings import get_settings
from tests.integration.approval_support import Context, api_event
from tests.integration.conftest import Stores
from tests.integration.lifecycle_support import seed_dataset
from tests.integration.test_predict_support import NAME, breast_cancer_classifier, put_model, put_version

PATH = f"/v1/models/{NAME}/batch"
app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=parse_json_object)
app.include_router(batch_routes.router)
install_error_handlers(app)


def call(method: str, path: str, body: Any = None, *, who: str | None = "alice") -> tuple[int, Any]:
    reply = app.resolve(api_event(method, path, body, who=who), Context())
    return reply["statusCode"], json.loads(reply["body"]) if reply.get("body") else None


@pytest.fixture
def machine(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A stand-in batch workflow in moto (the route only starts it) and the setting naming it."""
    sfn = boto3.client("stepfunctions")
    arn = sfn.create_state_machine(
        name="stepwise-batch",
        definition='{"StartAt": "Plan", "States": {"Plan": {"Type": "Pass", "End": true}}}',
        roleArn="arn:aws:iam::123456789012:role/stepwise-batch",
    )["stateMachineArn"]
    monkeypatch.setenv("STEPWISE_BATCH_SM_ARN", arn)
    get_settings.cache_clear()
    yield arn


def _table(rows: int = 120) -> pa.Table:
    trained = breast_cancer_classifier()
    x = np.resize(trained.x, (rows, trained.x.shape[1]))  # the 569 rows, repeated as needed
    columns = {f.name: pa.array(x[:, i]) for i, f in enumerate(trained.features)}
    return pa.table(columns | {"customer": pa.array([f"c{i}" for i in range(rows)])})


def _upload(stores: Stores, key: str, data: bytes) -> str:
    boto3.client("s3").put_object(Bucket=stores.data_bucket, Key=key, Body=data)
    return f"s3://{stores.data_bucket}/{key}"


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


@pytest.fixture
def served(stores: Stores, machine: str) -> Stores:
    put_version(stores, NAME, 1, breast_cancer_classifier())
    put_model(stores, NAME, production=1)
    return stores


def _predictions(stores: Stores) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=stores.data_bucket, Prefix="predictions/")
    return [o["Key"] for o in listed.get("Contents", [])]


def _executions(machine: str) -> list[dict[str, Any]]:
    return boto3.client("stepfunctions").list_executions(stateMachineArn=machine)["executions"]  # type: ignore[no-any-return]


def _batch_events(stores: Stores) -> list[Any]:
    events = audit_dal.list_events(stores.metadata_table, target=model_target(NAME))
    return [e for e in events if e.action.startswith("batch.")]


def test_a_batch_request_records_the_job_and_starts_its_workflow(served: Stores, machine: str) -> None:
    # Given the production version and an uploaded Parquet file
    uri = _upload(served, "raw/scoring/customers.parquet", _parquet(_table()))
    # When alice asks for it to be scored, passing the customer id through
    status, job = call("POST", PATH, {"input": {"uri": uri}, "passthrough": ["customer"]})
    # Then the job is accepted with the version and artifact it scores with, pinned now
    assert status == 202, job
    version = boto3.client("s3").head_object(Bucket=served.data_bucket, Key="raw/scoring/customers.parquet")
    assert job["version"] == 1 and len(job["artifact_sha256"]) == 64
    assert job["input"]["version_id"] == version["VersionId"] and job["input"]["format"] == "parquet"
    assert job["requested_by"].endswith("user/alice") and job["passthrough"] == ["customer"]
    assert job["output_prefix"] == f"s3://{served.data_bucket}/predictions/{NAME}/{job['job_id']}/"
    # And its workflow runs, named after the job; GET reads the job; the start is audited
    (execution,) = _executions(machine)
    assert execution["name"] == job["job_id"] and job["execution_arn"] == execution["executionArn"]
    status, read = call("GET", f"{PATH}/{job['job_id']}")
    assert status == 200 and read["job_id"] == job["job_id"] and read["version"] == 1
    (event,) = _batch_events(served)
    assert event.action == "batch.start" and event.version == 1 and event.after["job_id"] == job["job_id"]


def test_a_dataset_version_is_scored_from_its_validated_object(served: Stores) -> None:
    dataset = seed_dataset(served, "patients", _table(), "customer")
    status, job = call("POST", PATH, {"input": {"dataset": "patients", "version": 1}})
    assert status == 202, job
    assert (job["input"]["dataset"], job["input"]["dataset_version"]) == ("patients", 1)
    assert job["input"]["key"] == dataset.key and job["input"]["sha256"] == dataset.sha256


def test_the_same_client_token_is_one_job_and_another_body_with_it_is_refused(served: Stores, machine: str) -> None:
    uri = _upload(served, "raw/scoring/customers.parquet", _parquet(_table()))
    body = {"input": {"uri": uri}, "client_token": "nightly-2026-12-06"}
    first = call("POST", PATH, body)
    second = call("POST", PATH, body)
    assert first[0] == second[0] == 202
    assert second[1]["job_id"] == first[1]["job_id"] and second[1]["joined"] and not first[1]["joined"]
    assert len(_executions(machine)) == 1 and len(_batch_events(served)) == 1
    status, refused = call("POST", PATH, body | {"passthrough": ["customer"]})
    assert status == 409 and "client token" in refused["message"]


@pytest.mark.parametrize(
    ("case", "status", "needle"),
    [
        ("unknown model", 404, "no model named"),
        ("no production version", 409, "no production version"),
        ("other bucket", 403, "outside what batch scoring may read"),
        ("captures prefix", 403, "outside what batch scoring may read"),
        ("predictions prefix", 403, "outside what batch scoring may read"),
        ("unknown dataset version", 404, "has no version 7"),
        ("missing object", 404, "does not exist"),
        ("unreadable file", 400, "cannot read"),
        ("unsupported format", 400, "unsupported format"),
        ("missing feature column", 400, "mean radius"),
        ("missing passthrough column", 400, "'account'"),
        ("version and alias", 400, "model_version or alias"),
    ],
)
def test_a_bad_batch_request_is_a_clear_4xx_and_nothing_is_written(
    served: Stores, machine: str, case: str, status: int, needle: str
) -> None:
    good = _parquet(_table())
    path = PATH
    body: dict[str, Any] = {"input": {"uri": _upload(served, "raw/ok.parquet", good)}}
    if case == "unknown model":
        path = "/v1/models/no-such-model/batch"
    elif case == "no production version":
        put_model(served, NAME, production=None)
    elif case == "other bucket":
        body = {"input": {"uri": f"s3://{served.artifacts_bucket}/raw/ok.parquet"}}
    elif case == "captures prefix":
        body = {"input": {"uri": _upload(served, "captures/ok.parquet", good)}}
    elif case == "predictions prefix":
        body = {"input": {"uri": f"s3://{served.data_bucket}/predictions/../raw/ok.parquet"}}
    elif case == "unknown dataset version":
        seed_dataset(served, "patients", _table(), "customer")
        body = {"input": {"dataset": "patients", "version": 7}}
    elif case == "missing object":
        body = {"input": {"uri": f"s3://{served.data_bucket}/raw/nothing-here.parquet"}}
    elif case == "unreadable file":
        body = {"input": {"uri": _upload(served, "raw/broken.parquet", b"PAR1" + bytes(range(200)))}}
    elif case == "unsupported format":
        body = {"input": {"uri": _upload(served, "raw/notes.txt", b"hello\n")}}
    elif case == "missing feature column":
        body = {"input": {"uri": _upload(served, "raw/few.parquet", _parquet(_table().drop_columns(["mean radius"])))}}
    elif case == "missing passthrough column":
        body["passthrough"] = ["account"]
    elif case == "version and alias":
        body |= {"model_version": 1, "alias": "production"}
    answer, reply = call("POST", path, body)
    assert answer == status, reply
    assert needle in reply["message"] or needle in str(reply.get("details")), reply
    assert _predictions(served) == [] and _executions(machine) == [] and _batch_events(served) == []


def test_an_unknown_job_is_404(served: Stores) -> None:
    status, reply = call("GET", f"{PATH}/{'0' * 20}")
    assert status == 404 and "no batch job" in reply["message"]
    assert call("GET", f"{PATH}/not-a-job")[0] == 400


def test_batch_ids_are_derived_only_with_a_token() -> None:
    from functions.logic.batch_jobs import job_id_for

    assert job_id_for("m", "alice", "t") == job_id_for("m", "alice", "t") != job_id_for("m", "bob", "t")
    assert job_id_for("m", "alice", None) != job_id_for("m", "alice", None)
    assert np.all([len(job_id_for("m", "a", None)) == 20 for _ in range(3)])


def test_the_same_client_token_on_a_failed_job_resumes_it_in_a_new_execution(served: Stores, machine: str) -> None:
    # Given a job whose workflow failed (recorded on the job by the workflow's catch)
    uri = _upload(served, "raw/scoring/customers.parquet", _parquet(_table()))
    body = {"input": {"uri": uri}, "client_token": "nightly-2026-12-07"}
    status, first = call("POST", PATH, body)
    assert status == 202, first
    batch_run.record_failure(get_settings(), NAME, first["job_id"], "ChunksFailed", "chunk(s) [0] were not scored")
    # When the same request is made again
    status, resumed = call("POST", PATH, body)
    # Then the job is resumed in its own execution (the first one's name is taken), and the resume is audited
    assert status == 202, resumed
    assert resumed["job_id"] == first["job_id"] and resumed["resumes"] == 1 and resumed["status"] == "PENDING"
    names = sorted(e["name"] for e in _executions(machine))
    assert names == [first["job_id"], f"{first['job_id']}-r1"]
    assert resumed["execution_arn"].endswith(f"{first['job_id']}-r1") and not resumed["error"]
    starts = [e.after for e in _batch_events(served) if e.action == "batch.start"]
    assert len(starts) == 2 and any(a.get("resume") == 1 and a.get("after_error") == "ChunksFailed" for a in starts)
    # And a job that has not failed is joined, never restarted
    status, joined = call("POST", PATH, body)
    assert status == 202 and joined["joined"] and len(_executions(machine)) == 2
