"""Imported artifacts refused by the workflow's VerifyImport step, each with its reason, nothing
registered and a `model.import.refused` audit event: a graph with a custom operator domain, one with
external data, one over the size cap (the object replaced by a larger one after the import was
accepted), inputs that do not match the contract, a truncated file and a file that is not ONNX.

All six at function level (the step on moto); through the real lifecycle state machine a fixed
sample of two by default and all six with --full (as the other fault matrices do)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import boto3
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from functions.dal import audit as audit_store
from functions.dal import registry as registry_dal
from functions.dal import runs as runs_dal
from functions.dal.workflow import execution_arn
from functions.logic.import_run import verify_imported
from functions.models.audit import model_target
from functions.models.errors import ImportRefused
from functions.models.imports import import_key
from functions.models.settings import get_settings
from tests.integration import test_lifecycle_state_machine as machine
from tests.integration.conftest import Stores
from tests.integration.lifecycle_support import seed_dataset
from tests.integration.test_import_run import MODEL, _finished, _graph, _imported, _request_through_the_api
from tests.unit.lifecycle_data import regression_table

lifecycle_handlers = machine.routed  # the `routed` fixture: moto's Lambda invokes go to our handlers
SIZE_CAP = 4096  # bytes: the import limit these tests run with


def _custom_domain() -> bytes:
    amount = helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])
    node = helper.make_node("Scale", ["a"], ["y"], domain="com.example")
    graph = helper.make_graph([node], "custom", [amount], [y])
    ops = [helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    return bytes(helper.make_model(graph, opset_imports=ops, ir_version=9).SerializeToString())


def _external_data() -> bytes:
    weights = numpy_helper.from_array(np.ones((1, 1), dtype=np.float32), name="w")
    weights.ClearField("raw_data")
    weights.data_location = TensorProto.EXTERNAL
    entry = weights.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    amount = helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])
    graph = helper.make_graph([helper.make_node("Add", ["a", "w"], ["y"])], "ext", [amount], [y], initializer=[weights])
    return bytes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9).SerializeToString()
    )


@dataclass(frozen=True)
class Case:
    name: str
    content: Callable[[], bytes]
    reasons: tuple[str, ...]  # each in the refusal's message
    replaced_by: bytes = b""  # bytes that overwrite the accepted upload before the step reads it


GOOD = [("a", TensorProto.FLOAT), ("b", TensorProto.FLOAT)]
CASES = [
    Case("custom-op-domain", _custom_domain, ("'com.example'", "com.example:Scale", "custom operators")),
    Case("external-data", _external_data, ("external_data: tensors refer to data outside the file: ['w']",)),
    Case(
        "over-size-cap",
        lambda: _graph(GOOD),
        (f"size: the stored object is over the import size limit of {SIZE_CAP} bytes",),
        replaced_by=_graph(GOOD) + b"\0" * SIZE_CAP,
    ),
    Case(
        "inputs-not-in-contract",
        lambda: _graph([("a", TensorProto.FLOAT), ("colour", TensorProto.FLOAT), ("b", TensorProto.STRING)]),
        ("input 'colour': is not a column", "input 'b': has type string"),
    ),
    Case("truncated", lambda: _graph(GOOD)[: len(_graph(GOOD)) // 2], ("not a readable ONNX model",)),
    Case("not-onnx", lambda: b"PAR1 a parquet file, not a model PAR1", ("file: not a",)),
]
SAMPLE = {"custom-op-domain", "over-size-cap"}  # through the state machine without --full


def _refused_events(stores: Stores) -> list[str]:
    events = audit_store.list_events(stores.metadata_table, target=model_target(MODEL))
    return [e.reason for e in events if e.action == "model.import.refused"]


def _replace(stores: Stores, import_id: str, content: bytes) -> None:
    """The uploader PUTs other bytes to the still-valid presigned URL after the import was accepted."""
    boto3.client("s3").put_object(Bucket=stores.artifacts_bucket, Key=import_key(MODEL, import_id), Body=content)


@pytest.fixture
def capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEPWISE_IMPORT_MAX_BYTES", str(SIZE_CAP))
    get_settings.cache_clear()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_verify_import_step_refuses_with_the_reason_audits_and_registers_nothing(
    stores: Stores, parked_workflow: str, capped: None, case: Case
) -> None:
    # Given an accepted import of the case's artifact (replaced after acceptance where the case says)
    state = _imported(stores, case.content())
    if case.replaced_by:
        assert state.import_id is not None
        _replace(stores, state.import_id, case.replaced_by)
    # When the VerifyImport step runs
    with pytest.raises(ImportRefused) as caught:
        verify_imported(get_settings(), state)
    # Then it is refused naming the reason, the run's step failed with it, an audit event records it
    for reason in case.reasons:
        assert reason in caught.value.message, caught.value.message
    run = runs_dal.get_run(stores.metadata_table, MODEL, f"{MODEL}-import")
    assert (run.steps[-1].name, run.steps[-1].outcome, run.steps[-1].error) == (
        "verify_import",
        "failed",
        "ImportRefused",
    )
    assert _refused_events(stores) == [caught.value.message]
    # and nothing was copied under models/ nor registered
    listed = boto3.client("s3").list_objects_v2(Bucket=stores.artifacts_bucket, Prefix=f"models/{MODEL}/")
    assert listed.get("KeyCount", 0) == 0
    assert registry_dal.get_model(stores.registry_table, MODEL) is None


@pytest.mark.parametrize(
    "case",
    [pytest.param(case, id=case.name, marks=[] if case.name in SAMPLE else [pytest.mark.full]) for case in CASES],
)
def test_import_refused_through_the_state_machine_fails_the_run_audits_and_registers_nothing(
    stores: Stores,
    parked_workflow: str,
    capped: None,
    lifecycle_handlers: dict[str, int],
    case: Case,
) -> None:
    # Given an import accepted through the API (its execution parked until the artifact is as the case says)
    seed_dataset(stores, "reg", regression_table(rows=60), "y")
    record = _request_through_the_api(case.content())
    if case.replaced_by:
        _replace(stores, record["import_id"], case.replaced_by)
    sfn = boto3.client("stepfunctions")
    parked = sfn.describe_execution(executionArn=execution_arn(parked_workflow, record["execution_name"]))
    # When the real lifecycle state machine runs it
    arn = boto3.client("stepfunctions").create_state_machine(
        name="lifecycle-run", definition=machine.definition(), roleArn=f"arn:aws:iam::{machine.ACCOUNT}:role/sfn"
    )["stateMachineArn"]
    sfn.start_execution(stateMachineArn=arn, name=record["execution_name"], input=parked["input"])
    result = _finished(arn, record["execution_name"])
    # Then the run failed at VerifyImport with the reason, never evaluated, audited, nothing registered
    assert result["status"] == "FAILED" and result.get("error") == "ImportRefused", result
    run = runs_dal.get_run(stores.metadata_table, MODEL, record["execution_name"])
    assert run.status == "FAILED" and run.error == "ImportRefused"
    assert (run.steps[-1].name, run.steps[-1].outcome) == ("verify_import", "failed")
    for reason in case.reasons:
        assert reason in run.steps[-1].cause, run.steps[-1].cause
    assert lifecycle_handlers["evaluate"] == 1  # refused: not retried, never evaluated
    (audited,) = _refused_events(stores)
    assert all(reason in audited for reason in case.reasons) and json.loads(parked["input"])["import_id"]
    assert registry_dal.get_model(stores.registry_table, MODEL) is None
