"""An import run's start and VerifyImport steps on moto: the uploaded ONNX graph becomes the run's
candidate (copied under models/, profiled, TrainResult-shaped), or the step fails with every reason
the verification found recorded on the run."""

from __future__ import annotations

import hashlib
import uuid

import boto3
import pytest
from onnx import TensorProto, helper

from functions.dal import runs as runs_dal
from functions.logic import lifecycle
from functions.logic.import_run import verify_imported
from functions.logic.imports import request_import
from functions.models.audit import Actor
from functions.models.errors import ImportRefused
from functions.models.imports import ImportRequest, import_key
from functions.models.runs import LifecycleState, RunRecordRequest, StepName
from functions.models.settings import get_settings
from tests.integration.conftest import Stores
from tests.integration.lifecycle_support import seed_dataset
from tests.unit.lifecycle_data import regression_table

MODEL = "imp-model"


def _graph(inputs: list[tuple[str, int]], opset: int = 17) -> bytes:
    """y = sum of the inputs, each a [N, 1] tensor of the given element type."""
    values = [helper.make_tensor_value_info(name, kind, [None, 1]) for name, kind in inputs]
    names = [name for name, _ in inputs]
    nodes = [helper.make_node("Sum", names, ["y"])]
    graph = helper.make_graph(nodes, "imported", values, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def _imported(stores: Stores, content: bytes) -> LifecycleState:
    """The dataset version, the uploaded artifact, its import request, and the started run."""
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


def test_verify_import_makes_the_uploaded_graph_the_runs_candidate(stores: Stores) -> None:
    # Given an import of a graph over two contract columns, and its run started
    content = _graph([("a", TensorProto.FLOAT), ("b", TensorProto.FLOAT)])
    state = _imported(stores, content)
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
    assert result.parameters["source"] == "imported" and result.holdout_rows == 60
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
    stores: Stores, inputs: list[tuple[str, int]], opset: int, reasons: list[str]
) -> None:
    state = _imported(stores, _graph(inputs, opset))
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
