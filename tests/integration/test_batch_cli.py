"""`stepwise score` and `stepwise jobs` against the real control API handler (in-process, on
moto, no batch workflow deployed: the steps run in-process as on the local cloud): a job over a
dataset version and over an S3 object, --wait printing chunks done / total, rows/s and the
manifest's location; a bad --dataset refused before any call; the API's refusal printed."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pyarrow.parquet as pq
import pytest

from functions.dal import audit as audit_dal
from functions.models.audit import model_target
from functions.models.settings import get_settings
from stepwise.cli import main
from tests import faults
from tests.integration import test_batch_api as api_tests
from tests.integration.conftest import Stores
from tests.integration.lifecycle_support import seed_dataset
from tests.integration.test_many_cli import HandlerTarget
from tests.integration.test_predict_support import NAME, breast_cancer_classifier, put_model, put_version


@pytest.fixture
def target(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> Iterator[HandlerTarget]:
    monkeypatch.delenv("STEPWISE_BATCH_SM_ARN", raising=False)
    monkeypatch.setenv("STEPWISE_BATCH_CHUNK_BYTES", "20000")
    get_settings.cache_clear()
    put_version(stores, NAME, 1, breast_cancer_classifier())
    put_model(stores, NAME, production=1)
    handler_target = HandlerTarget(api_url="http://local", outputs={})
    monkeypatch.setattr("stepwise.cli.resolve", lambda *a: handler_target)
    yield handler_target


def test_batch_cli_score_waits_with_progress_and_jobs_lists_them(
    stores: Stores, target: HandlerTarget, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a validated dataset version and an object under raw/
    seed_dataset(stores, "patients", api_tests._table(200), "customer")
    uri = api_tests._upload(stores, "raw/scoring/customers.parquet", api_tests._parquet(api_tests._table(50)))
    # When both are scored, the first waited for
    assert main(["score", NAME, "--dataset", "patients@1", "--passthrough", "customer", "--wait"]) == 0
    out = capsys.readouterr().out
    # Then the job's version, its output, its progress and the manifest are printed
    assert f"{NAME} v1" in out and "SUCCEEDED: chunks 1/1, 200 rows (0 rejected)" in out and "rows/s" in out
    assert f"output  s3://{stores.data_bucket}/predictions/{NAME}/" in out and "_manifest.json" in out
    assert main(["score", NAME, "--input", uri]) == 0
    capsys.readouterr()
    # And `jobs` lists both, newest first
    assert main(["jobs", NAME]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "SUCCEEDED" in line]
    assert len(rows) == 2 and " 50 " in rows[0] and " 200 " in rows[1]


def test_batch_cli_score_refuses_a_bad_dataset_and_prints_the_apis_refusal(
    stores: Stores, target: HandlerTarget, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["score", NAME, "--dataset", "patients"]) == 2
    assert "NAME@VERSION" in capsys.readouterr().out
    assert main(["score", NAME, "--input", f"s3://{stores.artifacts_bucket}/raw/x.parquet"]) == 1
    assert "HTTP 403 Forbidden" in capsys.readouterr().out
    assert main(["jobs", "no-such-model"]) == 1
    assert "HTTP 404" in capsys.readouterr().out


def test_lineage_lists_the_batch_jobs_that_scored_the_version(
    stores: Stores, target: HandlerTarget, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a job scored with version 1, and a version 2 that scored nothing
    put_version(stores, NAME, 2, breast_cancer_classifier())
    uri = api_tests._upload(stores, "raw/scoring/customers.parquet", api_tests._parquet(api_tests._table(50)))
    assert main(["score", NAME, "--input", uri, "--version", "1", "--json"]) == 0
    job_id = json.loads(capsys.readouterr().out)["job_id"]
    # When the lineage of each version is read, over the API and through the CLI
    reply = target.api("GET", f"/v1/models/{NAME}/versions/1/lineage")
    status, body = reply.status, reply.body
    # Then version 1's names the job, its outcome and its output; version 2's names none
    assert status == 200, body
    assert body["batch_jobs_total"] == 1
    assert [(j["job_id"], j["status"], j["scored"]) for j in body["batch_jobs"]] == [(job_id, "SUCCEEDED", 50)]
    assert main(["lineage", NAME, "1"]) == 0
    out = capsys.readouterr().out
    assert "batch jobs:" in out and job_id in out and "50 scored, 0 rejected" in out
    reply = target.api("GET", f"/v1/models/{NAME}/versions/2/lineage")
    status, body = reply.status, reply.body
    assert status == 200 and body["batch_jobs"] == [] and body["batch_jobs_total"] == 0
    assert main(["lineage", NAME, "2"]) == 0
    assert "batch jobs: none scored with this version" in capsys.readouterr().out


def test_a_failed_job_repeated_with_its_client_token_resumes_its_failed_chunks_only(
    stores: Stores, target: HandlerTarget, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a job over several chunks whose last chunk's part could not be written
    sink = io.BytesIO()
    pq.write_table(api_tests._table(400), sink, row_group_size=100)
    data = sink.getvalue()
    uri = api_tests._upload(stores, "raw/scoring/customers.parquet", data)
    argv = ["score", NAME, "--input", uri, "--passthrough", "customer", "--client-token", "t1", "--json"]
    last = "part-00001.parquet"
    with faults.inject("s3.PutObject", faults.TIMEOUT, times=100, where=lambda r: r["url_path"].endswith(last)):
        assert main(argv) == 1
    failed = json.loads(capsys.readouterr().out)
    assert failed["status"] == "FAILED" and failed["error"] == "ChunksFailed" and failed["chunks_total"] >= 2
    # When the same request (same client token) is made again
    with faults.recording() as calls_seen:
        assert main(argv) == 0
    resumed = json.loads(capsys.readouterr().out)
    # Then the same job succeeds, scoring only the chunk that failed (one part written), with every row
    assert resumed["job_id"] == failed["job_id"] and resumed["status"] == "SUCCEEDED" and resumed["resumes"] == 1
    assert (resumed["rows"], resumed["scored"], resumed["chunks_done"]) == (400, 400, failed["chunks_total"])
    assert calls_seen.count("s3.PutObject") == 3  # the part, its report, the manifest
    # And the resume is audited alongside the start and both finishes
    events = audit_dal.list_events(stores.metadata_table, target=model_target(NAME))
    starts = [e.after for e in events if e.action == "batch.start"]
    assert len(starts) == 2 and any(a.get("resume") == 1 for a in starts)
