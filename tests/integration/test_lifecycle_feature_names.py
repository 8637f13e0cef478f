"""Column names the data contract allows but ONNX input names do not (spaces, dots, names that
collide once sanitized) through train -> evaluate -> register -> serve, on moto with the real
handlers; and the typed error when a graph and its version's features disagree."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import numpy as np
import pyarrow as pa
import pytest

from functions.dal import registry as registry_dal
from functions.dal import runs as runs_dal
from functions.handlers import evaluate, predict
from functions.logic import training as tr
from functions.logic.model_card import card_key
from functions.logic.serving import Serving
from functions.models.registry import ModelVersion
from functions.models.serving import GraphInputMismatch
from functions.models.settings import get_settings
from tests.integration.conftest import Stores, object_bytes
from tests.integration.lifecycle_support import Context, run_steps, seed_dataset, seed_spec, start_state
from tests.integration.test_predict_support import Context as PredictContext
from tests.integration.test_predict_support import predict_event, put_model

MODEL = "cancer-model"


def breast_cancer_table() -> pa.Table:
    """scikit-learn's bundled breast-cancer data: 30 float columns whose names have spaces."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    columns = {str(name): pa.array(data.data[:, i]) for i, name in enumerate(data.feature_names)}
    return pa.table(columns | {"diagnosis": pa.array(data.target.astype(np.int64))})


def cancer_spec(features: list[str]) -> dict[str, Any]:
    return {
        "name": "cancer",
        "model": MODEL,
        "dataset": "cancer",
        "target": "diagnosis",
        "features": features,
        "task": "classification",
        "estimator": {"name": "LogisticRegression", "params": {"max_iter": 500}},
        "split": {"holdout_fraction": 0.25, "seed": 3},
        "latency_calls": 50,
    }


@pytest.fixture
def serving() -> Iterator[None]:
    predict.reset(Serving(get_settings()))
    yield
    predict.reset(None)


def call(body: Any) -> tuple[int, dict[str, Any]]:
    reply = predict.lambda_handler(predict_event(MODEL, body), PredictContext())
    return reply["statusCode"], json.loads(reply["body"])


def test_breast_cancer_csv_trains_evaluates_registers_and_serves(stores: Stores, serving: None) -> None:
    # Given the breast-cancer data as CSV, its 30 column names with spaces ("mean radius")
    table = breast_cancer_table()
    features = [n for n in table.column_names if n != "diagnosis"]
    assert "mean radius" in features
    dataset = seed_dataset(stores, "cancer", table, "diagnosis", file_format="csv")
    spec = seed_spec(stores, cancer_spec(features))
    # When train, evaluate and register run
    state = run_steps(start_state(spec, dataset))
    # Then the run registers a version waiting for approval, ONNX parity passed
    assert state["registered"]["status"] == "PENDING_APPROVAL", state["registered"]
    run = runs_dal.get_run(stores.metadata_table, MODEL, state["run"]["run_id"])
    assert [(s.name, s.outcome) for s in run.steps][-3:] == [
        ("train", "succeeded"),
        ("evaluate", "succeeded"),
        ("register", "succeeded"),
    ]
    version = registry_dal.get_version(stores.registry_table, MODEL, 1)
    assert version is not None
    # the version records which graph input each feature feeds: every feature, distinct inputs
    assert [f.name for f in version.features] == features
    assert list(version.graph_inputs) == features
    assert len(set(version.graph_inputs.values())) == len(features)
    # the model card shows the feature names beside the graph inputs they feed
    card = object_bytes(stores.artifacts_bucket, card_key(MODEL, 1, "md"))
    assert card is not None
    assert f"| mean radius | float | {version.graph_inputs['mean radius']} |" in card.decode()
    # When released and asked for predictions by feature name
    put_model(stores, MODEL, production=1)
    rows = table.slice(0, 5)
    instances = [{name: rows.column(name)[i].as_py() for name in features} for i in range(rows.num_rows)]
    status, reply = call({"instances": instances})
    # Then ONNX answers what the registered scikit-learn pipeline predicts for those rows
    assert status == 200, reply
    skops = tr.load_skops(_artifact(version, "skops"))
    expected = skops.predict(tr.to_frame(rows, version.features)).astype(str).tolist()
    assert reply["version"] == 1 and reply["predictions"] == expected
    assert np.allclose(reply["probabilities"], skops.predict_proba(tr.to_frame(rows, version.features)), atol=1e-5)


def test_evaluate_records_a_typed_error_when_graph_and_features_disagree(stores: Stores) -> None:
    # Given a trained candidate whose recorded mapping names a graph input the graph lacks
    table = breast_cancer_table()
    features = ["mean radius", "mean texture", "worst area"]
    dataset = seed_dataset(stores, "cancer", table.select([*features, "diagnosis"]), "diagnosis", file_format="csv")
    spec = seed_spec(stores, cancer_spec(features))
    state = run_steps(start_state(spec, dataset), until="train")
    state["train"]["graph_inputs"]["mean texture"] = "no_such_input"
    # When Evaluate runs
    with pytest.raises(GraphInputMismatch) as info:
        evaluate.lambda_handler(state, Context())
    # Then the error names the missing and the unexpected inputs, and the run record shows it
    message = info.value.message
    assert "'no_such_input' (feature 'mean texture')" in message
    assert f"unexpected: ['{_original_input(state, 'mean texture')}']" in message
    run = runs_dal.get_run(stores.metadata_table, MODEL, state["run"]["run_id"])
    step = run.steps[-1]
    assert (step.name, step.outcome, step.error) == ("evaluate", "failed", "GraphInputMismatch")
    assert "no_such_input" in step.cause and "Required inputs" not in step.cause


def test_serving_refuses_a_version_whose_graph_lacks_a_mapped_input(stores: Stores, serving: None) -> None:
    # Given a registered version whose mapping disagrees with its graph
    table = breast_cancer_table()
    features = ["mean radius", "mean texture"]
    dataset = seed_dataset(stores, "cancer", table.select([*features, "diagnosis"]), "diagnosis", file_format="csv")
    spec = seed_spec(stores, cancer_spec(features))
    run_steps(start_state(spec, dataset))
    version = registry_dal.get_version(stores.registry_table, MODEL, 1)
    assert version is not None
    broken = version.model_copy(update={"graph_inputs": {"mean radius": "f0", "mean texture": "f7"}})
    _put(stores, broken)
    put_model(stores, MODEL, production=1)
    # When a prediction is asked for
    status, reply = call({"instances": [{"mean radius": 14.0, "mean texture": 20.0}]})
    # Then the version is not served: 503 naming the inputs, never a raw ONNX Runtime error
    assert status == 503 and reply["error"] == "GraphInputMismatch", reply
    assert "'f7' (feature 'mean texture')" in reply["message"] and "'f1'" in reply["message"]


def _original_input(state: dict[str, Any], feature: str) -> str:
    index = state["train"]["features"].index(next(f for f in state["train"]["features"] if f["name"] == feature))
    return f"f{index}"


def _artifact(version: ModelVersion, name: str) -> bytes:
    bucket, key = version.artifacts[name].uri[5:].split("/", 1)
    return bytes(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def _put(stores: Stores, version: ModelVersion) -> None:
    boto3.client("dynamodb").put_item(TableName=stores.registry_table, Item=registry_dal.version_item(version))
