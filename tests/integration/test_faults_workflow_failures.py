"""No silent workflow failure: the lifecycle's real definition (Lifecycle with the approvals chain
plugged in, as the stack builds it), executed by moto's Step Functions interpreter with every
Lambda invoke routed to its real handler in-process. A release step that still fails after its
retries is recorded on the run (step, error, cause) before the execution fails with that error.

moto's interpreter really sleeps between retries; its sleep is skipped here (the Retry fields are
the template's, asserted in tests/infra/test_workflow_failures.py), so the test runs in seconds."""

from __future__ import annotations

import json
import types
from collections.abc import Iterator
from typing import Any

import aws_cdk as cdk
import boto3
import pytest
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

from functions.dal import registry as registry_dal
from functions.dal import runs as runs_dal
from functions.handlers import approval, evaluate, register, release, run_record, train
from infra.constructs.approvals import Approvals
from infra.constructs.lifecycle import Lifecycle
from tests import faults
from tests.integration.approval_support import call, execution_done, lambdas_in_process, wait_for
from tests.integration.conftest import Stores
from tests.integration.lifecycle_support import seed_dataset, seed_spec, start_state
from tests.integration.test_lifecycle_handlers import toy_spec
from tests.integration.test_lifecycle_state_machine import ACCOUNT, REGION, _join, fn_arn
from tests.unit.lifecycle_data import classification_table

HANDLERS: dict[str, Any] = {
    "run-record": run_record.lambda_handler,
    "train": train.lambda_handler,
    "evaluate": evaluate.lambda_handler,
    "register": register.lambda_handler,
    "approval": approval.lambda_handler,
    "release": release.lambda_handler,
}


def definition() -> str:
    """Lifecycle + Approvals, wired as infra/stacks/core.py wires them, at fixed function ARNs."""
    app = cdk.App()
    stack = cdk.Stack(app, "LifecycleWithApprovals", env=cdk.Environment(account=ACCOUNT, region=REGION))
    fns = {n: lambda_.Function.from_function_arn(stack, n, fn_arn(n)) for n in HANDLERS}
    approvals = Approvals(stack, "Approvals", approval_fn=fns["approval"], release_fn=fns["release"])
    machine = Lifecycle(
        stack,
        "Lifecycle",
        run_record_fn=fns["run-record"],
        train_fn=fns["train"],
        evaluate_fn=fns["evaluate"],
        register_fn=fns["register"],
        log_retention=logs.RetentionDays.ONE_DAY,
        after_register=approvals,
    )
    return _join(stack.resolve(machine.state_machine.node.default_child.definition_string))  # type: ignore[union-attr]


@pytest.fixture
def routed(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    monkeypatch.setattr(retrier_decl, "time", types.SimpleNamespace(sleep=lambda _seconds: None))
    with lambdas_in_process(monkeypatch, HANDLERS) as calls:
        yield calls


def pending(approval_id: str) -> bool:
    status, body = call("GET", "/v1/approvals")
    assert status == 200
    return approval_id in [a["id"] for a in body["approvals"]]


def test_faults_promote_failing_after_its_retries_is_recorded_on_the_run(stores: Stores, routed: list[str]) -> None:
    # Given a run that trained, registered version 1 and waits for its approval
    dataset = seed_dataset(stores, "toy", classification_table(), "label")
    spec = seed_spec(stores, toy_spec())
    sfn = boto3.client("stepfunctions")
    arn = sfn.create_state_machine(
        name="lifecycle", definition=definition(), roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn"
    )["stateMachineArn"]
    execution = sfn.start_execution(
        stateMachineArn=arn, name="toy-model-1-1", input=json.dumps(start_state(spec, dataset))
    )["executionArn"]
    wait_for(lambda: pending("toy-model-1") or execution_done(execution), "the approval request", timeout=120)
    assert execution_done(execution) is None, execution_done(execution)
    # When bob approves and every read of the version's artifact by Promote throttles (S3 SlowDown)
    with faults.inject(
        "s3.GetObject", faults.THROTTLING, times=100, where=lambda r: r["url_path"].endswith(".onnx")
    ) as rule:
        status, _ = call("POST", "/v1/approvals/toy-model-1/approve", {"reason": "metrics fine"}, who="bob")
        assert status == 200
        done = wait_for(lambda: execution_done(execution), "the execution to finish", timeout=60)
    # Then Promote was tried once and retried three times, and the execution fails with its error
    assert routed.count("release:promote") == 4 and len(rule.fired) == 4
    assert done["status"] == "FAILED" and done.get("error") == "Throttled", done
    # And the run record shows the failed step, the error and its cause before the execution ended
    record = runs_dal.get_run(stores.metadata_table, "toy-model", "toy-model-1-1")
    assert record.status == "FAILED" and record.version == 1
    assert record.error == "Throttled" and "throttl" in record.cause.lower()
    step = record.steps[-1]
    assert (step.name, step.outcome, step.error) == ("promote", "failed", "Throttled")
    assert step.cause == done["cause"][: len(step.cause)] and step.cause
    assert routed[-2:] == ["release:promote", "run-record:fail"]
    # And nothing was released: the version is approved, not serving
    version = registry_dal.get_version(stores.registry_table, "toy-model", 1)
    assert version is not None and version.status == "APPROVED"
    assert registry_dal.get_model(stores.registry_table, "toy-model").production_version is None  # type: ignore[union-attr]
