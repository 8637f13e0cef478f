"""Derived features through the real lifecycle on moto: a spec with derived features is checked
when stored (PUT /v1/specs), trains on columns the compiled transformation graph computes,
passes the ONNX parity gate with the whole graph on raw holdout rows, registers one graph
(transformations + pipeline) with its derived definitions, and serves from raw request fields."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import numpy as np
import onnx
import pyarrow as pa
import pytest

from functions.dal import registry as registry_dal
from functions.dal import specs as specs_dal
from functions.handlers import api, predict
from functions.logic import training as tr
from functions.logic.model_card import card_key
from functions.logic.serving import Serving
from functions.models.errors import NotFound
from functions.models.registry import ModelVersion
from functions.models.settings import get_settings
from tests.conftest import load_event
from tests.integration.conftest import Stores, object_bytes
from tests.integration.lifecycle_support import Context, run_steps, seed_dataset, start_state
from tests.integration.test_predict_support import Context as PredictContext
from tests.integration.test_predict_support import predict_event, put_model

MODEL = "spend-model"
DERIVED = [
    {"name": "per_visit", "expression": "safe_div(amount, visits, 0)", "type": "float"},
    {"name": "log_amount", "expression": "log1p(amount)", "type": "float"},
    {"name": "amount_band", "expression": "bucketize(amount, [10, 50, 100])", "type": "int"},
    {"name": "signup_hour", "expression": "hour(signup)", "type": "int"},
]
FEATURES = ["per_visit", "log_amount", "amount_band", "signup_hour", "visits", "segment"]


def spend_table(n: int = 400) -> pa.Table:
    """Raw columns: amount (float, some null), visits (int, some 0), segment (string), signup
    (timestamp); the label depends on spend per visit and the signup hour."""
    rng = np.random.default_rng(7)
    amount = rng.gamma(2.0, 30.0, n)
    visits = rng.integers(0, 8, n)
    hours = rng.integers(0, 24, n)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    signup = [start + timedelta(days=int(d), hours=int(h), seconds=int(s))
              for d, h, s in zip(rng.integers(0, 300, n), hours, rng.integers(0, 3600, n), strict=True)]  # fmt: skip
    per_visit = np.where(visits > 0, amount / np.maximum(visits, 1), 0.0)
    label = ((per_visit > 20) ^ (hours >= 18) ^ (rng.random(n) < 0.1)).astype(np.int64)
    missing = rng.random(n) < 0.05
    return pa.table(
        {
            "amount": pa.array(np.where(missing, np.nan, amount), mask=missing),
            "visits": pa.array(visits.astype(np.int64)),
            "segment": pa.array(rng.choice(["retail", "pro", "Edu"], n)),
            "signup": pa.array(signup, type=pa.timestamp("us", tz="UTC")),
            "churned": pa.array(label),
        }
    )


def spend_spec(**changes: Any) -> dict[str, Any]:
    return {
        "name": "spend",
        "model": MODEL,
        "dataset": "spend",
        "target": "churned",
        "features": FEATURES,
        "derived": DERIVED,
        "task": "classification",
        "estimator": {"name": "RandomForestClassifier", "params": {"n_estimators": 20, "max_depth": 6}},
        "split": {"holdout_fraction": 0.25, "seed": 5},
        "latency_calls": 50,
    } | changes


def api_call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
    event = copy.deepcopy(load_event("apigw/health.json"))
    event.update(httpMethod=method, path=path, resource=path, queryStringParameters=None)
    event["body"] = None if body is None else json.dumps(body)
    reply = api.lambda_handler(event, Context())
    return reply["statusCode"], json.loads(reply["body"])


@pytest.fixture
def serving() -> Iterator[None]:
    predict.reset(Serving(get_settings()))
    yield
    predict.reset(None)


def _artifact(version: ModelVersion, name: str) -> bytes:
    bucket, key = version.artifacts[name].uri[5:].split("/", 1)
    return bytes(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def _instances(rows: pa.Table) -> list[dict[str, Any]]:
    out = []
    for row in rows.drop_columns(["churned"]).to_pylist():
        row["signup"] = row["signup"].isoformat()
        out.append(row)
    return out


def test_derived_features_train_evaluate_register_and_serve_from_raw_fields(stores: Stores, serving: None) -> None:
    # Given a dataset with raw columns and a spec, stored through the API, deriving four features
    table = spend_table()
    dataset = seed_dataset(stores, "spend", table, "churned")
    status, stored = api_call("PUT", "/v1/specs/spend", spend_spec())
    assert status == 201, stored
    spec = specs_dal.get_spec(stores.metadata_table, "spend")
    # When train, evaluate and register run through the real handlers
    state = run_steps(start_state(spec, dataset))
    # Then the version waits for approval: ONNX parity passed on the whole graph over raw rows
    assert state["registered"]["status"] == "PENDING_APPROVAL", state["registered"]
    gates = {g["gate"]: g for g in state["evaluation"]["gates"]}
    assert gates["onnx_parity"]["passed"], gates["onnx_parity"]
    version = registry_dal.get_version(stores.registry_table, MODEL, 1)
    assert version is not None
    # the version takes the raw fields the derived and raw features read, each mapped to its input
    assert sorted(f.name for f in version.features) == ["amount", "segment", "signup", "visits"]
    assert {f.name: f.type for f in version.features}["signup"] == "timestamp"
    graph = onnx.load_from_string(_artifact(version, "onnx"))
    assert sorted(i.name for i in graph.graph.input) == sorted(version.graph_inputs.values())
    assert set(version.graph_inputs) == {f.name for f in version.features}
    # the pipeline's features and the derived definitions are recorded, in the lineage and the card
    assert [f.name for f in version.pipeline_features] == FEATURES
    assert [d.model_dump(exclude={"description"}) for d in version.derived] == DERIVED
    card = object_bytes(stores.artifacts_bucket, card_key(MODEL, 1, "md"))
    assert card is not None
    assert "| per_visit | float | `safe_div(amount, visits, 0)` |" in card.decode()
    status, lineage = api_call("GET", f"/v1/models/{MODEL}/versions/1/lineage")
    assert status == 200, lineage
    assert [d["expression"] for d in lineage["derived"]] == [d["expression"] for d in DERIVED]

    # When released and asked for predictions with raw fields (timestamps as ISO strings, a null)
    put_model(stores, MODEL, production=1)
    rows = table.slice(0, 12)
    instances = _instances(rows)
    instances[0]["amount"] = None
    instances[1]["visits"] = 0
    status, reply = predict_call({"instances": instances})
    # Then it answers what the scikit-learn pipeline predicts on the training-path derived columns
    assert status == 200, reply
    raw = pa.Table.from_pylist(
        [dict(i, signup=datetime.fromisoformat(i["signup"])) for i in instances],
        schema=table.drop_columns(["churned"]).schema,
    )
    frame = tr.to_frame(tr.production_table(raw, version), version.pipeline_features)
    skops = tr.load_skops(_artifact(version, "skops"))
    assert reply["version"] == 1
    assert reply["predictions"] == skops.predict(frame).astype(str).tolist()
    assert np.allclose(reply["probabilities"], skops.predict_proba(frame), atol=1e-5)
    # and a request missing a raw field's type is refused naming the field
    status, reply = predict_call({"instances": [dict(instances[2], signup="yesterday")]})
    assert status == 400 and "signup" in json.dumps(reply)

    # When a later spec version redefines a derived feature under the same name and trains again
    redefined = [dict(d, expression="log1p(visits)") if d["name"] == "log_amount" else d for d in DERIVED]
    status, stored = api_call("PUT", "/v1/specs/spend", spend_spec(derived=redefined))
    assert status == 201, stored
    spec2 = specs_dal.get_spec(stores.metadata_table, "spend")
    second = run_steps(start_state(spec2, dataset), until="evaluate")
    # Then production v1 is compared on this holdout with its own recorded definitions
    evaluation = second["evaluation"]
    assert evaluation["production_version"] == 1
    holdout = table.take(tr.prepare(spec.spec, table, []).holdout_idx)
    v1_frame = tr.to_frame(tr.production_table(holdout, version), version.pipeline_features)
    accuracy = float(
        np.mean(skops.predict(v1_frame).astype(str) == np.array(holdout.column("churned").to_pylist()).astype(str))
    )
    assert evaluation["production_metrics"]["accuracy"] == pytest.approx(accuracy)
    assert second["train"]["derived"][1]["expression"] == "log1p(visits)"


def predict_call(body: Any) -> tuple[int, dict[str, Any]]:
    reply = predict.lambda_handler(predict_event(MODEL, body), PredictContext())
    return reply["statusCode"], json.loads(reply["body"])


@pytest.mark.parametrize(
    ("derived", "features", "named"),
    [
        ([{"name": "r", "expression": "amount + segment", "type": "float"}], ["r"], "'r'"),
        ([{"name": "r", "expression": "sqrt(amount)", "type": "float"}], ["r"], "sqrt"),
        ([{"name": "r", "expression": "log1p(amout)", "type": "float"}], ["r"], "amout"),
        ([{"name": "amount", "expression": "log1p(visits)", "type": "float"}], ["amount"], "amount"),
        ([{"name": "r", "expression": "log1p(churned)", "type": "float"}], ["r"], "churned"),
        (
            [
                {"name": "a", "expression": "b + 1", "type": "float"},
                {"name": "b", "expression": "a + visits", "type": "float"},
            ],
            ["a"],
            "cyclic",
        ),
        ([{"name": "r", "expression": "log1p(amount)", "type": "float"}], ["r", "nope"], "nope"),
    ],
    ids=[
        "type-error",
        "unknown-function",
        "unknown-field",
        "clash-with-column",
        "reads-target",
        "cycle",
        "unknown-feature",
    ],
)
def test_put_spec_refuses_bad_derived_features_naming_them(
    stores: Stores, derived: list[dict[str, Any]], features: list[str], named: str
) -> None:
    # Given a dataset whose contract types its columns
    seed_dataset(stores, "spend", spend_table(50), "churned")
    # When a spec with a bad derived feature is stored
    status, body = api_call("PUT", "/v1/specs/spend", spend_spec(derived=derived, features=features))
    # Then it is a 400 naming the problem, and nothing is stored
    assert status == 400, body
    assert named in body["message"], body
    with pytest.raises(NotFound):
        specs_dal.get_spec(stores.metadata_table, "spend")


def test_put_spec_with_derived_features_needs_the_datasets_contract(stores: Stores) -> None:
    status, body = api_call("PUT", "/v1/specs/spend", spend_spec())
    assert status == 400 and "no contract" in body["message"], body
    with pytest.raises(NotFound):
        specs_dal.get_spec(stores.metadata_table, "spend")


def test_spec_without_derived_features_is_stored_without_a_contract(stores: Stores) -> None:
    spec = spend_spec(features=["visits"])
    del spec["derived"]
    status, body = api_call("PUT", "/v1/specs/spend", spec)
    assert status == 201, body
    assert "derived" in body["spec"] and body["spec"]["derived"] == []
