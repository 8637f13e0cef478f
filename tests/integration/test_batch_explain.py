"""Explaining a batch row on moto: GET /v1/models/{name}/batch/{job}/rows/{row}, served by the batch
function's real handler (it reads Parquet), and `stepwise explain --job JOB --row ID` against it:
the row's pass-through columns, the inputs it was scored on (read again from the pinned input),
prediction and probabilities, version and artifact sha256, the part and its sha256 from the
manifest; a row the job did not score 404, a column it did not pass through 400."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest

from functions.handlers import batch as batch_handler
from functions.logic import batch_run
from functions.models.batch import manifest_key
from functions.models.settings import get_settings
from stepwise.cli import main
from stepwise.target import ApiReply
from tests.integration import test_batch_run as run_tests
from tests.integration.approval_support import Context, api_event
from tests.integration.conftest import Stores
from tests.integration.test_many_cli import HandlerTarget
from tests.integration.test_predict_support import NAME, breast_cancer_classifier

machine = run_tests.machine
served = run_tests.served
FEATURES = [f.name for f in breast_cancer_classifier().features]


def call(path: str, *, who: str = "alice") -> tuple[int, Any]:
    path, _, query = path.partition("?")
    event = api_event("GET", path, who=who)
    event["resource"] = "/v1/models/{name}/batch/{job}/rows/{row}"
    params = dict(urllib.parse.parse_qsl(query))
    event["queryStringParameters"] = params or None
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in params.items()} or None
    reply = batch_handler.lambda_handler(event, Context())
    return reply["statusCode"], json.loads(reply["body"])


def _scored_job(stores: Stores, rows: int = 300, **body: Any) -> str:
    job_id, tasks = run_tests._start(stores, run_tests._csv(run_tests._table(rows)), **body)
    run_tests._run_all(job_id, tasks)
    batch_run.finish_job(get_settings(), NAME, job_id)
    return job_id


def test_a_batch_row_is_explained_with_its_inputs_prediction_and_part(served: Stores) -> None:
    # Given a multi-chunk job that passed the customer id through
    job_id = _scored_job(served)
    manifest = json.loads(run_tests._get(served, manifest_key(NAME, job_id)))
    table = run_tests._table(300)
    # When a row in a later chunk is asked for by its id
    status, body = call(f"/v1/models/{NAME}/batch/{job_id}/rows/c250")
    # Then its pass-through value, inputs, prediction, version, artifact and part are named
    assert status == 200, body
    (row,) = body["rows"]
    assert (
        body["column"] == "customer" and body["version"] == 1 and body["artifact_sha256"] == manifest["artifact_sha256"]
    )
    assert body["input"]["version_id"] == manifest["input"]["version_id"]
    assert row["passthrough"] == {"customer": "c250"} and row["model_version"] == 1
    assert row["inputs"] == {n: table.column(n)[250].as_py() for n in FEATURES}
    (part,) = [p for p in manifest["parts"] if p["key"] == row["part"]]
    assert row["part_sha256"] == part["sha256"] and row["chunk"] > 0
    scored = run_tests._parts(served, manifest).to_pylist()[250]
    assert row["prediction"] == scored["prediction"] and row["probabilities"] == scored["probabilities"]
    # And the column may be named; an id no row has is 404, a column not passed through 400
    assert call(f"/v1/models/{NAME}/batch/{job_id}/rows/c250?column=customer")[1] == body
    status, missing = call(f"/v1/models/{NAME}/batch/{job_id}/rows/nobody")
    assert status == 404 and "no row whose 'customer' is 'nobody'" in missing["message"]
    status, wrong = call(f"/v1/models/{NAME}/batch/{job_id}/rows/c1?column=account")
    assert status == 400 and "not 'account'" in wrong["message"]
    assert call(f"/v1/models/{NAME}/batch/not-a-job/rows/c1")[0] == 400
    assert call(f"/v1/models/{NAME}/batch/{'0' * 20}/rows/c1")[0] == 404


def test_a_job_without_pass_through_columns_has_no_row_to_name(served: Stores) -> None:
    job_id = _scored_job(served, 50, passthrough=[])
    status, body = call(f"/v1/models/{NAME}/batch/{job_id}/rows/c1")
    assert status == 400 and "passed no column through" in body["message"]


class RowsTarget(HandlerTarget):
    """The CLI's calls: the batch row route to the batch function's handler, the others to the API's."""

    def api(self, method: str, path: str, body: Any = None, *, identity: str | None = None) -> ApiReply:
        if "/rows/" not in path:
            return super().api(method, path, body, identity=identity)
        status, reply = call(path, who="carol")
        return ApiReply(status=status, body=reply)


def test_stepwise_explain_job_row_prints_the_row(
    served: Stores, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    job_id = _scored_job(served, 100)
    monkeypatch.setattr("stepwise.cli.resolve", lambda *a: RowsTarget(api_url="http://local", outputs={}))
    assert main(["explain", "--model", NAME, "--job", job_id, "--row", "c7"]) == 0
    out = capsys.readouterr().out
    assert f"batch job {job_id}: {NAME} v1" in out and "row customer=c7" in out
    assert "part sha256" in out and "mean radius" in out and "probabilities" in out
    assert main(["explain", "--model", NAME, "--job", job_id]) == 2
    assert main(["explain", "--model", NAME, "--job", job_id, "--row", "nobody"]) == 1
