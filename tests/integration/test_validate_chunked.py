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
from functions.models.settings import get_settings
from tests.integration.conftest import Stores
from tests.integration.test_validate_handler import Context, invoke, report, upload

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
