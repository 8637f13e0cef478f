"""An import run's start and VerifyImport steps on moto: the uploaded ONNX graph becomes the run's
candidate (copied under models/, profiled, TrainResult-shaped), or the step fails with every reason
the verification found recorded on the run."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests  # type: ignore[import-untyped]
from onnx import TensorProto, helper

from functions.dal import registry as registry_dal
from functions.dal import runs as runs_dal
from functions.dal.workflow import execution_arn
from functions.logic import lifecycle
from functions.logic.import_run import verify_imported
from functions.logic.imports import request_import
from functions.models.audit import Actor
from functions.models.errors import ImportRefused
from functions.models.imports import ImportRequest, import_key
from functions.models.runs import LifecycleState, RunRecordRequest, StepName
from functions.models.settings import get_settings
from infra import constants as c
from stepwise.cli import main
from tests.integration import test_lifecycle_state_machine as machine
from tests.integration.conftest import Stores
from tests.integration.lifecycle_support import seed_dataset
from tests.integration.test_lifecycle_api import call
from tests.integration.test_many_cli import HandlerTarget
from tests.unit.lifecycle_data import regression_table

MODEL = "imp-model"
lifecycle_handlers = machine.routed  # the `routed` fixture: moto's Lambda invokes go to our handlers


def _graph(inputs: list[tuple[str, int]], opset: int = 17) -> bytes:
    """y = sum of the inputs (each cast to float), each a [N, 1] tensor of the given element type."""
    values = [helper.make_tensor_value_info(name, kind, [None, 1]) for name, kind in inputs]
    nodes = [helper.make_node("Cast", [name], [f"{name}_f"], to=TensorProto.FLOAT) for name, _ in inputs]
    nodes.append(helper.make_node("Sum", [f"{name}_f" for name, _ in inputs], ["y"]))
    graph = helper.make_graph(nodes, "imported", values, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


@pytest.fixture
def imported(stores: Stores, parked_workflow: str) -> Callable[[bytes], LifecycleState]:
    return lambda content: _imported(stores, content)


def _imported(stores: Stores, content: bytes) -> LifecycleState:
    """The dataset version, the uploaded artifact, its import request (starting a parked
    execution), and the run started as the workflow's StartRun would."""
    seed_dataset(stores, "reg", regression_table(rows=60), "y")
    upload_id = uuid.uuid4().hex
    boto3.client("s3").put_object(Bucket=stores.artifacts_bucket, Key=import_key(MODEL, upload_id), Body=content)
    request = ImportRequest(
        upload_id=upload_id,
        sha256=hashlib.sha256(content).hexdigest(),
        dataset="reg",
        dataset_version=1,
        task="regression",
    )
    request_import(get_settings(), MODEL, request, Actor(identity="alice", correlation_id=""))
    state = LifecycleState(spec=MODEL, spec_version=1, dataset="reg", dataset_version=1, import_id=upload_id)
    started = lifecycle.start_run(
        get_settings(), RunRecordRequest(action="start", state=state, execution_name=f"{MODEL}-import")
    )
    return state.model_copy(update={"run": started})


def test_verify_import_makes_the_uploaded_graph_the_runs_candidate(
    stores: Stores, imported: Callable[[bytes], LifecycleState]
) -> None:
    # Given an import of a graph over two contract columns, and its run started
    content = _graph([("a", TensorProto.FLOAT), ("b", TensorProto.FLOAT)])
    state = imported(content)
    assert state.run is not None and state.run.model == MODEL
    # When VerifyImport runs
    result = verify_imported(get_settings(), state)
    # Then the verified bytes are the candidate, under the run's models/ prefix, with a profile
    assert set(result.artifacts) == {"onnx", "profile"}
    onnx = result.artifacts["onnx"]
    assert onnx.uri == f"s3://{stores.artifacts_bucket}/models/{MODEL}/runs/{MODEL}-import/model.onnx"
    assert onnx.sha256 == hashlib.sha256(content).hexdigest()
    key = onnx.uri.split("/", 3)[3]
    assert boto3.client("s3").get_object(Bucket=stores.artifacts_bucket, Key=key)["Body"].read() == content
    # and the TrainResult names the graph's features, each fed by its own input
    assert [f.name for f in result.features] == ["a", "b"]
    assert result.graph_inputs == {"a": "a", "b": "b"}
    assert result.target == "y" and result.task == "regression" and result.class_labels is None
    assert result.parameters["source"] == "imported" and result.holdout_rows == 12  # the default 20% split
    assert result.imported is not None and result.imported.sha256 == onnx.sha256
    assert result.imported.requested_by == "alice" and (result.spec_name, result.spec_version) == ("", 0)
    # and the run records the step as succeeded
    run = runs_dal.get_run(stores.metadata_table, MODEL, f"{MODEL}-import")
    assert [(s.name, s.outcome) for s in run.steps] == [("start", "succeeded"), (StepName.VERIFY_IMPORT, "succeeded")]


@pytest.mark.parametrize(
    ("inputs", "opset", "reasons"),
    [
        # inputs against the contract: every mismatch listed in the one refusal
        (
            [("a", TensorProto.FLOAT), ("colour", TensorProto.FLOAT), ("c", TensorProto.FLOAT)],
            17,
            ["'colour'", "'c'"],
        ),
        # an opset above what the inference layer's ONNX Runtime loads
        ([("a", TensorProto.FLOAT)], 99, ["opset"]),
    ],
)
def test_verify_import_refusal_fails_the_step_with_every_reason_on_the_run(
    stores: Stores,
    imported: Callable[[bytes], LifecycleState],
    inputs: list[tuple[str, int]],
    opset: int,
    reasons: list[str],
) -> None:
    state = imported(_graph(inputs, opset))
    with pytest.raises(ImportRefused) as caught:
        verify_imported(get_settings(), state)
    run = runs_dal.get_run(stores.metadata_table, MODEL, f"{MODEL}-import")
    step = run.steps[-1]
    assert (step.name, step.outcome, step.error) == (StepName.VERIFY_IMPORT, "failed", "ImportRefused")
    for reason in reasons:
        assert reason in step.cause, step.cause
    assert step.cause == caught.value.message[: len(step.cause)]
    # nothing was copied to the run's models/ prefix
    listed = boto3.client("s3").list_objects_v2(Bucket=stores.artifacts_bucket, Prefix=f"models/{MODEL}/")
    assert listed.get("KeyCount", 0) == 0


# -- the real state machine: import request -> VerifyImport -> Evaluate -> Register ----------------
def _deployed(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> str:
    """The lifecycle construct's definition in moto, its ARN where the API function reads it."""
    arn = boto3.client("stepfunctions").create_state_machine(
        name="lifecycle", definition=machine.definition(), roleArn=f"arn:aws:iam::{machine.ACCOUNT}:role/sfn"
    )["stateMachineArn"]
    monkeypatch.setenv(c.ENV_LIFECYCLE_SM_ARN, arn)
    get_settings.cache_clear()
    return str(arn)


def _request_through_the_api(content: bytes, task: str = "regression") -> dict[str, Any]:
    status, ticket = call("POST", f"/v1/models/{MODEL}/imports/upload", {"size_bytes": len(content)})
    assert status == 201, ticket
    put = requests.put(ticket["url"], data=content, headers=ticket["headers"], timeout=10)
    assert put.status_code == 200, put.text
    body = {
        "upload_id": ticket["upload_id"],
        "sha256": hashlib.sha256(content).hexdigest(),
        "dataset": "reg",
        "dataset_version": 1,
        "task": task,
        "source_url": "https://github.com/example/notebooks",
        "source_commit": "0123abc",
    }
    status, record = call("POST", f"/v1/models/{MODEL}/imports", body)
    assert status == 202, record
    return record


def _finished(arn: str, name: str) -> dict[str, Any]:
    sfn = boto3.client("stepfunctions")
    execution = execution_arn(arn, name)
    for _ in range(600):
        described = sfn.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING":
            return described  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError("the execution did not finish")


def test_import_request_runs_the_lifecycle_to_a_version_with_imported_lineage(
    stores: Stores, lifecycle_handlers: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a dataset version and the deployed lifecycle
    seed_dataset(stores, "reg", regression_table(rows=200), "y")
    arn = _deployed(stores, monkeypatch)
    # When a graph over two contract columns (one fed as double) is uploaded and imported
    content = _graph([("a", TensorProto.DOUBLE), ("b", TensorProto.FLOAT)])
    record = _request_through_the_api(content)
    # Then the import's run verifies it instead of training, evaluates and registers it
    result = _finished(arn, record["execution_name"])
    assert result["status"] == "SUCCEEDED", result
    assert "train" not in lifecycle_handlers and lifecycle_handlers["evaluate"] == 2  # VerifyImport and Evaluate
    version = registry_dal.get_version(stores.registry_table, MODEL, 1)
    assert version is not None and version.status == "PENDING_APPROVAL", version
    assert version.source == "imported" and version.imported is not None
    assert version.imported.import_id == record["import_id"]
    assert version.imported.sha256 == hashlib.sha256(content).hexdigest()
    assert version.imported.source_url == "https://github.com/example/notebooks"
    assert version.imported.source_commit == "0123abc"
    assert version.imported.requested_by == "arn:aws:iam::123456789012:user/operator"
    assert version.started_by == "arn:aws:iam::123456789012:user/operator"
    assert set(version.artifacts) >= {"onnx", "profile"} and "skops" not in version.artifacts
    assert version.artifacts["onnx"].uri.startswith(f"s3://{stores.artifacts_bucket}/models/{MODEL}/runs/")
    assert {"rmse", "mae", "r2"} <= set(version.metrics)
    parity = next(g for g in version.gates if g.gate == "onnx_parity")
    assert parity.passed and parity.reason.startswith("not applicable")
    # and the lineage says so
    status, lineage = call("GET", f"/v1/models/{MODEL}/versions/1/lineage")
    assert status == 200 and lineage["run"]["source"] == "imported", lineage
    assert lineage["run"]["imported"]["source_commit"] == "0123abc"
    run = runs_dal.get_run(stores.metadata_table, MODEL, record["execution_name"])
    assert [(s.name, s.outcome) for s in run.steps] == [
        ("start", "succeeded"),
        ("verify_import", "succeeded"),
        ("evaluate", "succeeded"),
        ("register", "succeeded"),
    ]


def test_import_refused_by_verification_fails_the_run_with_its_reasons_and_registers_nothing(
    stores: Stores, lifecycle_handlers: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_dataset(stores, "reg", regression_table(rows=60), "y")
    arn = _deployed(stores, monkeypatch)
    content = _graph([("a", TensorProto.FLOAT), ("colour", TensorProto.FLOAT)])
    record = _request_through_the_api(content)
    result = _finished(arn, record["execution_name"])
    assert result["status"] == "FAILED" and result.get("error") == "ImportRefused", result
    run = runs_dal.get_run(stores.metadata_table, MODEL, record["execution_name"])
    assert run.status == "FAILED" and run.error == "ImportRefused"
    assert (run.steps[-1].name, run.steps[-1].outcome) == ("verify_import", "failed")
    assert "'colour'" in run.steps[-1].cause
    assert lifecycle_handlers["evaluate"] == 1  # refused: not retried, never evaluated
    assert registry_dal.get_model(stores.registry_table, MODEL) is None


def test_import_is_compared_with_an_imported_production_version_through_its_onnx_graph(
    stores: Stores, lifecycle_handlers: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an imported version in production (y ~ a + b)
    seed_dataset(stores, "reg", regression_table(rows=200), "y")
    arn = _deployed(stores, monkeypatch)
    first = _request_through_the_api(_graph([("a", TensorProto.FLOAT), ("b", TensorProto.FLOAT)]))
    assert _finished(arn, first["execution_name"])["status"] == "SUCCEEDED"
    record = registry_dal.get_model(stores.registry_table, MODEL)
    assert record is not None
    promoted = record.model_copy(update={"production_version": 1})
    boto3.client("dynamodb").put_item(TableName=stores.registry_table, Item=registry_dal.model_item(promoted))
    # When a worse graph (y ~ a) is imported
    second = _request_through_the_api(_graph([("a", TensorProto.FLOAT)]))
    result = _finished(arn, second["execution_name"])
    # Then production's ONNX graph was scored on the same holdout and the candidate is rejected
    assert result["status"] == "FAILED" and result.get("error") == "GateFailed", result
    version = registry_dal.get_version(stores.registry_table, MODEL, 2)
    assert version is not None and version.status == "REJECTED"
    gate = next(g for g in version.gates if g.gate == "max_regression")
    assert not gate.passed and "vs production" in gate.reason, gate


# -- the CLI: stepwise import ------------------------------------------------------------------------
def test_cli_import_uploads_posts_and_waits_for_the_registered_version(
    stores: Stores,
    lifecycle_handlers: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seed_dataset(stores, "reg", regression_table(rows=200), "y")
    _deployed(stores, monkeypatch)
    handler_target = HandlerTarget(api_url="http://local", outputs={})
    monkeypatch.setattr("stepwise.cli.resolve", lambda *a: handler_target)
    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(_graph([("a", TensorProto.FLOAT), ("b", TensorProto.FLOAT)]))
    argv = ["import", MODEL, "--onnx", str(onnx_file), "--dataset", "reg@1", "--task", "regression"]
    assert main([*argv, "--source-commit", "0123abc", "--wait", "--timeout", "60"]) == 0
    out = capsys.readouterr().out
    assert "accepted; lifecycle run" in out and "version 1 registered, waiting for approval" in out, out
    version = registry_dal.get_version(stores.registry_table, MODEL, 1)
    assert version is not None and version.source == "imported" and version.imported is not None
    assert version.imported.source_commit == "0123abc" and version.imported.requested_by.endswith("carol")
    # a malformed dataset reference is refused before anything is sent
    assert main([*argv[:5], "wine", "--task", "regression"]) == 2
    assert "is not NAME@VERSION" in capsys.readouterr().out
