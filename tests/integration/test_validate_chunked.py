"""Chunked validation as AWS runs it: the validation Lambda hands a big file to the state machine,
whose steps (plan -> check each chunk -> finish) give the same verdict and report as validating it
in one function. The steps are called here in the order the Distributed Map calls them."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from functions.dal import datasets
from functions.handlers import validate
from functions.models.datasets import report_key
from functions.models.errors import ChunkCheckFailed
from functions.models.settings import get_settings
from tests import faults
from tests.integration.conftest import Stores
from tests.integration.test_validate_handler import Context, invoke, keys, report, upload

ROWS = b"id,alcohol,color,code,label\n" + b"".join(f"{i},12.5,red,AB{i},{i % 3}\n".encode() for i in range(1, 61))
BAD = ROWS + b"7,12.5,blue,AB7,0\n"


def run_state_machine(execution_input: dict[str, Any]) -> dict[str, Any]:
    """The definition's flow: Plan, Map(Check) over $.chunks with the ItemSelector, Finish."""
    plan = validate.chunk_step_handler({"step": "plan", **execution_input}, Context())
    results = [
        validate.chunk_step_handler(
            {
                "step": "check",
                "upload": plan["upload"],
                "contract_version": plan["contract_version"],
                "format": plan.get("format"),
                "chunk": chunk,
            },
            Context(),
        )
        for chunk in plan["chunks"]
    ]
    return validate.chunk_step_handler({**plan, "step": "finish", "results": results}, Context())


@pytest.fixture
def chunked(wine: Stores, monkeypatch: pytest.MonkeyPatch) -> Stores:
    sfn = boto3.client("stepfunctions")
    role = "arn:aws:iam::123456789012:role/sfn"
    definition = json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Pass", "End": True}}})
    arn = sfn.create_state_machine(name="validate-chunks", definition=definition, roleArn=role)["stateMachineArn"]
    monkeypatch.setenv("STEPWISE_VALIDATE_CHUNK_BYTES", "200")
    monkeypatch.setenv("STEPWISE_VALIDATE_SM_ARN", arn)
    get_settings.cache_clear()
    return wine


def _execution_input(arn: str) -> dict[str, Any]:
    sfn = boto3.client("stepfunctions")
    executions = sfn.list_executions(stateMachineArn=arn)["executions"]
    assert len(executions) == 1
    return json.loads(sfn.describe_execution(executionArn=executions[0]["executionArn"])["input"])  # type: ignore[no-any-return]


@pytest.mark.parametrize(("body", "verdict"), [(ROWS, "passed"), (BAD, "failed")])
def test_validate_big_file_is_delegated_and_the_steps_conclude_it(chunked: Stores, body: bytes, verdict: str) -> None:
    # Given a file over the chunk size; When its event is handled, twice
    event = upload(chunked, "raw/wine/big.csv", body)
    first, second = invoke(event), invoke(event)
    # Then it is handed to the state machine once, nothing is concluded yet
    assert first["verdict"] == second["verdict"] == "delegated"
    assert datasets.list_versions(chunked.metadata_table, "wine") == []
    # When the state machine runs its steps
    outcome = run_state_machine(_execution_input(get_settings().validate_state_machine_arn))
    # Then the verdict and report are those of validating the file in one piece
    assert outcome["verdict"] == verdict
    rep = report(chunked, outcome)
    assert rep["chunks"] > 5 and rep["rows"] == body.count(b"\n") - 1
    if verdict == "passed":
        version = datasets.get_version(chunked.metadata_table, "wine", 1)
        assert version.sha256 == __import__("hashlib").sha256(body).hexdigest() and version.rows == 60
    else:
        assert sorted(r["rule"] for r in rep["rules"] if not r["passed"]) == ["categories:color", "unique:id"]
        unique = next(r for r in rep["rules"] if r["rule"] == "unique:id")
        assert [e["row"] for e in unique["examples"]] == [6, 60]
        assert datasets.list_versions(chunked.metadata_table, "wine") == []


def test_validate_chunked_unreadable_parquet_is_quarantined_with_reason(chunked: Stores) -> None:
    event = upload(chunked, "raw/wine/broken.parquet", b"PAR1" + b"x" * 500)
    assert invoke(event)["verdict"] == "delegated"
    outcome = run_state_machine(_execution_input(get_settings().validate_state_machine_arn))
    assert outcome["verdict"] == "unreadable" and "cannot read parquet" in outcome["reason"]


def test_validate_chunked_failed_chunk_is_recorded_as_an_error_and_the_upload_is_left_unjudged(
    chunked: Stores,
) -> None:
    # Given a big upload handed to the state machine, and its plan
    event = upload(chunked, "raw/wine/big.csv", ROWS)
    assert invoke(event)["verdict"] == "delegated"
    plan = validate.chunk_step_handler(
        {"step": "plan", **_execution_input(get_settings().validate_state_machine_arn)}, Context()
    )
    # When chunk 2's check keeps failing (S3 throttles it past its retries), the Map's Catch
    # turning it into {"index", "failure"} as the definition does
    results = []
    for chunk in plan["chunks"]:
        item = {k: plan[k] for k in ("upload", "contract_version", "format")} | {"step": "check", "chunk": chunk}
        try:
            with faults.inject("s3.GetObject", faults.THROTTLING, times=1 if chunk["index"] == 2 else 0):
                results.append(validate.chunk_step_handler(item, Context()))
        except Exception as exc:
            results.append({"index": chunk["index"], "failure": {"Error": type(exc).__name__, "Cause": str(exc)}})
    # Then Finish does not judge the file on a partial check: it fails naming the chunk and its error
    with pytest.raises(ChunkCheckFailed) as failed:
        validate.chunk_step_handler({**plan, "step": "finish", "results": results}, Context())
    assert "chunk 2: Throttled" in str(failed.value)
    # And Finish's Catch records it: the upload's report says "error" with the step, error and cause
    error = {"Error": "ChunkCheckFailed", "Cause": str(failed.value)}
    recorded = validate.chunk_step_handler(
        {"step": "fail", "failed_step": "finish", "upload": plan["upload"], "contract_version": 1, "error": error},
        Context(),
    )
    rep = report(chunked, recorded)
    ref = plan["upload"]
    assert recorded["report_uri"].endswith(report_key("wine", ref["version_id"]))
    assert rep["verdict"] == "error" and rep["dataset"] == "wine" and rep["rules"] == []
    assert rep["reason"].startswith("chunked validation step 'finish' failed: ChunkCheckFailed: ")
    assert "chunk 2: Throttled" in rep["reason"]
    # And nothing was moved, quarantined or versioned: the upload waits under raw/ as it came
    assert keys(chunked.data_bucket, "raw/wine/") == ["raw/wine/big.csv"]
    assert keys(chunked.data_bucket, "quarantine/") == keys(chunked.data_bucket, "validated/") == []
    assert datasets.list_versions(chunked.metadata_table, "wine") == []
