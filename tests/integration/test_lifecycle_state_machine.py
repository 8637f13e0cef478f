"""The lifecycle construct's real state machine definition, executed by moto's Step Functions
interpreter, with its Lambda invokes routed to the real handlers in-process.

(The local cloud does the same from the whole synthesized template; this test needs only the
construct, so it stays small.)"""

from __future__ import annotations

import io
import json
import time
import traceback
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import aws_cdk as cdk
import boto3
import pytest
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from moto.awslambda.models import LambdaBackend
from moto.awslambda_simple.models import LambdaSimpleBackend

from functions.dal import registry as registry_dal
from functions.dal import runs as runs_dal
from functions.handlers import evaluate, register, run_record, train
from infra.constructs.lifecycle import Lifecycle
from tests.integration.conftest import Stores
from tests.integration.lifecycle_support import Context, seed_dataset, seed_spec, start_state
from tests.integration.test_lifecycle_handlers import toy_spec
from tests.unit.lifecycle_data import classification_table

ACCOUNT, REGION = "123456789012", "us-east-1"
HANDLERS: dict[str, Callable[[dict[str, Any], Any], Any]] = {
    "run-record": run_record.lambda_handler,
    "train": train.lambda_handler,
    "evaluate": evaluate.lambda_handler,
    "register": register.lambda_handler,
}


def fn_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


def definition() -> str:
    """The construct's definition with the four functions at fixed ARNs (tokens resolved)."""
    app = cdk.App()
    stack = cdk.Stack(app, "LifecycleOnly", env=cdk.Environment(account=ACCOUNT, region=REGION))
    fns = {n: lambda_.Function.from_function_arn(stack, n, fn_arn(n)) for n in HANDLERS}
    machine = Lifecycle(
        stack,
        "Lifecycle",
        run_record_fn=fns["run-record"],
        train_fn=fns["train"],
        evaluate_fn=fns["evaluate"],
        register_fn=fns["register"],
        log_retention=logs.RetentionDays.ONE_DAY,
    )
    resolved = stack.resolve(machine.state_machine.node.default_child.definition_string)  # type: ignore[union-attr]
    return _join(resolved)


def _join(value: Any) -> str:
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return sep.join(_join(p) for p in parts)
    if value.get("Ref") == "AWS::Partition":
        return "aws"
    if value.get("Ref") == "AWS::Region":
        return REGION
    if value.get("Ref") == "AWS::AccountId":
        return ACCOUNT
    raise AssertionError(f"unresolved token in definition: {value}")


@pytest.fixture
def routed(stores: Stores) -> Iterator[dict[str, int]]:
    """moto's Lambda invokes go to our handlers (both backends' doors); counts per function."""
    calls: dict[str, int] = {}
    originals = (LambdaBackend.__dict__["invoke"], LambdaSimpleBackend.__dict__["invoke"])

    def invoke(backend: Any, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: Any):  # type: ignore[no-untyped-def]
        name = function_name.rsplit(":", 1)[-1]
        calls[name] = calls.get(name, 0) + 1
        try:
            result = HANDLERS[name](json.loads(body) if body else {}, Context())
        except Exception as exc:
            response_headers["x-amz-function-error"] = "Unhandled"
            result = {
                "errorType": type(exc).__name__,
                "errorMessage": str(exc),
                "stackTrace": traceback.format_tb(exc.__traceback__),
            }
        return json.dumps(result).encode()

    LambdaBackend.invoke = invoke  # type: ignore[method-assign,assignment]
    LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign,assignment]
    try:
        zipped = io.BytesIO()
        with zipfile.ZipFile(zipped, "w") as z:
            z.writestr("handler.py", "def lambda_handler(event, context):\n    return event\n")
        role = boto3.client("iam").create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        for name in HANDLERS:
            boto3.client("lambda").create_function(
                FunctionName=name, Runtime="python3.12", Role=role, Handler="handler.lambda_handler",
                Code={"ZipFile": zipped.getvalue()},
            )  # fmt: skip
        yield calls
    finally:
        LambdaBackend.invoke, LambdaSimpleBackend.invoke = originals  # type: ignore[method-assign]


def run(payload: dict[str, Any], name: str) -> dict[str, Any]:
    sfn = boto3.client("stepfunctions")
    arn = sfn.create_state_machine(
        name="lifecycle", definition=definition(), roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn"
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps(payload))["executionArn"]
    for _ in range(600):
        described = sfn.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING":
            return described  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError("the execution did not finish")


def test_lifecycle_state_machine_registers_a_pending_version(stores: Stores, routed: dict[str, int]) -> None:
    # Given a validated dataset version and a spec
    dataset = seed_dataset(stores, "toy", classification_table(), "label")
    spec = seed_spec(stores, toy_spec())
    # When the real definition runs
    result = run(start_state(spec, dataset), "toy-model-1-1")
    # Then it succeeds with version 1 waiting for approval, and the run shows every step
    assert result["status"] == "SUCCEEDED", result
    output = json.loads(result["output"])
    assert output["registered"] == {"model": "toy-model", "version": 1, "status": "PENDING_APPROVAL", "reasons": []}
    assert routed == {"run-record": 2, "train": 1, "evaluate": 1, "register": 1}
    run_record_ = runs_dal.get_run(stores.metadata_table, "toy-model", "toy-model-1-1")
    assert run_record_.status == "REGISTERED" and run_record_.version == 1
    assert [(s.name, s.outcome) for s in run_record_.steps] == [
        ("start", "succeeded"),
        ("train", "succeeded"),
        ("evaluate", "succeeded"),
        ("register", "succeeded"),
    ]
    assert run_record_.execution_arn.endswith(":toy-model-1-1")


def test_lifecycle_state_machine_fails_with_gate_failed_and_a_rejected_version(
    stores: Stores, routed: dict[str, int]
) -> None:
    dataset = seed_dataset(stores, "toy", classification_table(), "label")
    spec = seed_spec(stores, toy_spec(gates={"min_primary": 0.999}))
    result = run(start_state(spec, dataset), "toy-model-1-1")
    assert result["status"] == "FAILED"
    assert result.get("error") == "GateFailed"
    version = registry_dal.get_version(stores.registry_table, "toy-model", 1)
    assert version is not None and version.status == "REJECTED"
    assert version.reasons[0].startswith("gate primary_metric failed")
    assert runs_dal.get_run(stores.metadata_table, "toy-model", "toy-model-1-1").status == "REJECTED"


def test_lifecycle_state_machine_train_error_fails_the_run_naming_step_and_error(
    stores: Stores, routed: dict[str, int]
) -> None:
    dataset = seed_dataset(stores, "toy", classification_table(), "label")
    spec = seed_spec(stores, toy_spec(features=["a", "nope"]))
    result = run(start_state(spec, dataset), "toy-model-1-1")
    assert result["status"] == "FAILED" and result.get("error") == "TrainingFailed"
    record = runs_dal.get_run(stores.metadata_table, "toy-model", "toy-model-1-1")
    assert record.status == "FAILED" and record.error == "TrainingFailed"
    assert (record.steps[-1].name, record.steps[-1].outcome, record.steps[-1].error) == (
        "train",
        "failed",
        "TrainingFailed",
    )
    # not retried (not transient), and nothing half-written in the registry
    assert routed["train"] == 1
    assert registry_dal.get_model(stores.registry_table, "toy-model") is None


def test_lifecycle_state_machine_unknown_dataset_version_fails_at_start(stores: Stores, routed: dict[str, int]) -> None:
    dataset = seed_dataset(stores, "toy", classification_table(), "label")
    spec = seed_spec(stores, toy_spec())
    payload = start_state(spec, dataset) | {"dataset_version": 9}
    result = run(payload, "toy-model-9-1")
    assert result["status"] == "FAILED" and result.get("error") == "NotFound"
    assert "train" not in routed
