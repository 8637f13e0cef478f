"""Serving test support (no tests here): small scikit-learn models exported with skl2onnx, written
to the moto stores the way the lifecycle registers them, and API Gateway events for the
inference handler. Also used by benchmarks/predict.py.

    artifact  s3://<artifacts>/models/<name>/<version>/model.onnx
    registry  pk=MODEL#<name> sk=MODEL (ModelRecord), sk=VERSION#<%08d> (ModelVersion)
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import Any

import boto3
import numpy as np
from boto3.dynamodb.types import TypeSerializer

from functions.models.registry import (
    MODEL_SK,
    MODELS_INDEX_PK,
    Artifact,
    Feature,
    ModelRecord,
    ModelVersion,
    VersionStatus,
    model_pk,
    version_sk,
)
from tests.conftest import load_event
from tests.lambda_context import FakeContext

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
_SERIALIZER = TypeSerializer()


class Context(FakeContext):
    """The inference function's context."""

    function = "predict"


@dataclass(frozen=True)
class TrainedModel:
    onnx: bytes
    features: list[Feature]
    task: str
    class_labels: list[str] | None
    x: np.ndarray  # rows the tests send
    expected: list[Any]  # scikit-learn's predictions for x

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def instances(self, start: int = 0, count: int = 1) -> list[dict[str, Any]]:
        rows = self.x[start : start + count]
        return [{n: float(v) for n, v in zip(self.names, row, strict=True)} for row in rows]


@cache
def breast_cancer_classifier(kind: str = "rf", n_estimators: int = 100, seed: int = 0) -> TrainedModel:
    """A classifier on load_breast_cancer, like the demo's; ONNX with a [N, 30] float input."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

    data = load_breast_cancer()
    x, y = data.data, data.target
    if kind == "hgb":
        model: Any = HistGradientBoostingClassifier(max_iter=n_estimators, random_state=seed)
    else:
        model = RandomForestClassifier(n_estimators=n_estimators, max_depth=8, random_state=seed)
    model.fit(x, y)
    onx = to_onnx(
        model,
        initial_types=[("input", FloatTensorType([None, x.shape[1]]))],
        options={id(model): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    x32 = x.astype(np.float32).astype(np.float64)  # the values float32 carries, so sklearn agrees
    return TrainedModel(
        onnx=onx.SerializeToString(),
        features=[Feature(name=str(n), type="float") for n in data.feature_names],
        task="classification",
        class_labels=[str(c) for c in model.classes_],
        x=x32,
        expected=model.predict(x32).tolist(),
    )


def item(record: ModelRecord | ModelVersion) -> dict[str, Any]:
    plain = json.loads(record.model_dump_json(), parse_float=Decimal)
    return {k: _SERIALIZER.serialize(v) for k, v in plain.items()}


def put_version(
    stores: Any, name: str, version: int, trained: TrainedModel, *, content: bytes | None = None
) -> ModelVersion:
    """Upload the ONNX artifact and register the version (sha256 of the trained bytes)."""
    key = f"models/{name}/{version}/model.onnx"
    boto3.client("s3").put_object(Bucket=stores.artifacts_bucket, Key=key, Body=content or trained.onnx)
    record = ModelVersion(
        model=name,
        version=version,
        status=VersionStatus.APPROVED,
        created_at=NOW,
        updated_at=NOW,
        task=trained.task,  # type: ignore[arg-type]
        features=trained.features,
        target="target",
        class_labels=trained.class_labels,
        artifacts={
            "onnx": Artifact(
                uri=f"s3://{stores.artifacts_bucket}/{key}",
                sha256=hashlib.sha256(trained.onnx).hexdigest(),
                size_bytes=len(trained.onnx),
            )
        },
    )
    boto3.client("dynamodb").put_item(
        TableName=stores.registry_table,
        Item={"pk": {"S": model_pk(name)}, "sk": {"S": version_sk(version)}, **item(record)},
    )
    return record


def put_model(
    stores: Any,
    name: str,
    *,
    production: int | None,
    candidate: int | None = None,
    weight: float = 0.0,
    shadow: bool = False,
    revision: int = 0,
) -> ModelRecord:
    """Write the ModelRecord (the aliases), as a release would."""
    record = ModelRecord(
        name=name,
        latest_version=max(v for v in (production, candidate, 1) if v is not None),
        production_version=production,
        candidate_version=candidate,
        candidate_weight=weight,
        shadow=shadow,
        revision=revision,
        created_at=NOW,
        updated_at=NOW,
    )
    boto3.client("dynamodb").put_item(
        TableName=stores.registry_table,
        Item={
            "pk": {"S": model_pk(name)},
            "sk": {"S": MODEL_SK},
            "gsi1pk": {"S": MODELS_INDEX_PK},
            "gsi1sk": {"S": name},
            **item(record),
        },
    )
    return record


def predict_event(name: str, body: Any, *, raw: str | None = None) -> dict[str, Any]:
    event = copy.deepcopy(_event("apigw/predict.json"))
    event["path"] = f"/v1/models/{name}/predict"
    event["pathParameters"] = {"name": name}
    event["requestContext"]["path"] = f"/prod/v1/models/{name}/predict"
    event["body"] = raw if raw is not None else json.dumps(body)
    return event


def feedback_event(name: str, body: Any) -> dict[str, Any]:
    event = copy.deepcopy(_event("apigw/predict_feedback.json"))
    event["path"] = f"/v1/models/{name}/feedback"
    event["pathParameters"] = {"name": name}
    event["body"] = json.dumps(body)
    return event


@cache
def _event(relative: str) -> dict[str, Any]:
    return load_event(relative)


@cache
def churn_pipeline() -> TrainedModel:
    """Like the lifecycle's export: one ONNX input per feature ([N, 1] float for int/float/bool,
    string for category), string class labels, nullable numeric feature (NaN when null)."""
    import pandas as pd
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, n).astype(np.float32),
            "charges": rng.normal(60, 20, n).astype(np.float32),
            "plan": rng.choice(["free", "pro", "team"], n).astype(object),
            "active": rng.integers(0, 2, n).astype(np.float32),
        }
    )
    y = np.where((frame["tenure"] < 12) & (frame["plan"] == "free"), "yes", "no").astype(object)
    numeric = ["tenure", "charges", "active"]
    pipe = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("num", SimpleImputer(strategy="median"), numeric),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
                    ]
                ),
            ),
            ("model", RandomForestClassifier(n_estimators=20, random_state=0)),
        ]
    ).fit(frame, y)
    features = [
        Feature(name="tenure", type="int"),
        Feature(name="charges", type="float", nullable=True),
        Feature(name="plan", type="category", categories=["free", "pro", "team"]),
        Feature(name="active", type="bool"),
    ]
    initial = [
        (f.name, StringTensorType([None, 1]) if f.type == "category" else FloatTensorType([None, 1])) for f in features
    ]
    onx = to_onnx(pipe, initial_types=initial, options={id(pipe.steps[-1][1]): {"zipmap": False}})
    return TrainedModel(
        onnx=onx.SerializeToString(),
        features=features,
        task="classification",
        class_labels=[str(c) for c in pipe.classes_],
        x=frame.to_numpy(),
        expected=pipe.predict(frame).tolist(),
    )


def churn_instances(trained: TrainedModel, count: int) -> list[dict[str, Any]]:
    return [
        {"tenure": int(t), "charges": float(c), "plan": str(p), "active": bool(a)} for t, c, p, a in trained.x[:count]
    ]


@cache
def diabetes_regressor() -> TrainedModel:
    """A regressor (10 float features, ONNX output [N, 1])."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import RandomForestRegressor

    data = load_diabetes()
    x = data.data.astype(np.float32).astype(np.float64)
    model = RandomForestRegressor(n_estimators=20, max_depth=6, random_state=0).fit(x, data.target)
    onx = to_onnx(model, initial_types=[("input", FloatTensorType([None, x.shape[1]]))])
    return TrainedModel(
        onnx=onx.SerializeToString(),
        features=[Feature(name=str(n), type="float") for n in data.feature_names],
        task="regression",
        class_labels=None,
        x=x,
        expected=model.predict(x).tolist(),
    )


def failing_at_run_time(base: TrainedModel) -> TrainedModel:
    """An export with `base`'s input and outputs that ONNX Runtime loads but cannot run: its
    probabilities gather columns the input does not have (a run-time error on every request)."""
    from onnx import TensorProto, helper

    width = len(base.features)
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["input", "columns"], ["probabilities"], axis=1),
            helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
        ],
        "fails-at-run-time",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, width])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2]),
        ],
        initializer=[helper.make_tensor("columns", TensorProto.INT64, [2], [width + 100, width + 101])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return TrainedModel(
        onnx=model.SerializeToString(),
        features=base.features,
        task=base.task,
        class_labels=base.class_labels,
        x=base.x,
        expected=[],
    )


# -- a served model: breast-cancer v1 in production in a fresh execution environment ------------
NAME = "breast-cancer"
TTL = 5.0  # the alias cache TTL the served environment uses


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Served:
    stores: Any  # tests.integration.conftest.Stores
    model: TrainedModel
    clock: Clock
    state: Any  # functions.logic.serving.Serving

    def call(self, body: Any, *, name: str = NAME, raw: str | None = None) -> tuple[int, dict[str, Any]]:
        from functions.handlers import predict

        reply = predict.lambda_handler(predict_event(name, body, raw=raw), Context())
        return reply["statusCode"], json.loads(reply["body"])


def fresh_state(clock: Clock, **overrides: Any) -> Any:
    """A new Serving (the inference handler's per-environment state) on `clock`, installed."""
    from functions.handlers import predict
    from functions.logic.serving import Serving
    from functions.models.settings import get_settings

    settings = get_settings().model_copy(update={"alias_cache_ttl_seconds": TTL, **overrides})
    state = Serving(settings, clock=clock)
    predict.reset(state)
    return state


def serve_breast_cancer(stores: Any) -> Served:
    """breast-cancer v1 (random forest) in production, served by a fresh environment."""
    model = breast_cancer_classifier()
    put_version(stores, NAME, 1, model)
    put_model(stores, NAME, production=1)
    clock = Clock()
    return Served(stores, model, clock, fresh_state(clock))
