"""Training through feature views on moto: a spec naming `view:feature` is checked and pinned when
stored (PUT /v1/specs), the real train step builds its training set by the point-in-time join over
the view source's offline layout (built once per source version, stored in S3 with its sha256),
writes the joined set next to the run's artifacts, and the registered ONNX graph takes the raw
request fields and the view's features, which serving looks up by entity key in the online store
(the same values, and the same nulls, as the join gave training); lineage records the view and
source versions, and reproduce rebuilds the identical training set."""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from functions.dal import feature_views as views_dal
from functions.dal import registry as registry_dal
from functions.dal import runs as runs_dal
from functions.dal import specs as specs_dal
from functions.handlers import api, predict
from functions.logic import offline_paths
from functions.logic import training as tr
from functions.logic.feature_training import FeatureJoinFailed
from functions.logic.model_card import card_key
from functions.logic.reproduce import reproduce
from functions.logic.serving import Serving
from functions.models.errors import NotFound
from functions.models.features import FeatureView
from functions.models.online import online_key
from functions.models.registry import ModelVersion
from functions.models.settings import get_settings
from tests.conftest import load_event
from tests.integration.conftest import Stores, object_bytes
from tests.integration.lifecycle_support import Context, run_steps, seed_dataset, start_state
from tests.integration.lookup_support import create_online_table, seed
from tests.integration.test_predict_support import Context as PredictContext
from tests.integration.test_predict_support import predict_event, put_model

MODEL = "churn-events"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
VIEW = {
    "name": "cust",
    "entity_keys": ["customer"],
    "source": "customer-stats",
    "timestamp_column": "at",
    "ttl_seconds": 10 * 86_400,
    "features": [{"name": "spend_30d", "type": "float"}, {"name": "orders_30d", "type": "int"}],
}
DERIVED = [
    {"name": "amount_share", "expression": "safe_div(amount, cust:spend_30d, 0)", "type": "float"},
    {"name": "log_orders", "expression": "log1p(cust:orders_30d)", "type": "float"},
]
FEATURES = ["amount", "cust:spend_30d", "amount_share", "log_orders"]


def stats_table(customers: int = 40, days: int = 60) -> pa.Table:
    """One aggregate row per customer every 5 days: spend and orders over the last 30 days."""
    rng = np.random.default_rng(3)
    cust, at, spend, orders = [], [], [], []
    for c in range(customers):
        level = rng.gamma(2.0, 50.0)
        for d in range(0, days, 5):
            cust.append(c)
            at.append(T0 + timedelta(days=d, hours=int(rng.integers(0, 24))))
            spend.append(float(level * rng.uniform(0.5, 1.5)))
            orders.append(int(rng.integers(0, 12)))
    return pa.table(
        {
            "customer": pa.array(cust, pa.int64()),
            "at": pa.array(at, pa.timestamp("us", tz="UTC")),
            "spend_30d": pa.array(spend, pa.float64()),
            "orders_30d": pa.array(orders, pa.int64()),
        }
    )


def events_table(n: int = 400, customers: int = 44) -> pa.Table:
    """Labelled events (customers 40-43 have no aggregates: their view values are missing)."""
    rng = np.random.default_rng(4)
    customer = rng.integers(0, customers, n)
    when = [T0 + timedelta(days=float(d)) for d in rng.uniform(-5, 70, n)]
    amount = rng.gamma(2.0, 20.0, n)
    label = ((amount > 40) ^ (rng.random(n) < 0.1)).astype(np.int64)
    return pa.table(
        {
            "customer": pa.array(customer.astype(np.int64)),
            "event_at": pa.array(when, pa.timestamp("us", tz="UTC")),
            "amount": pa.array(amount),
            "churned": pa.array(label),
        }
    )


def spec_body(**changes: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "dataset": "events",
        "target": "churned",
        "event_time": "event_at",
        "features": FEATURES,
        "derived": DERIVED,
        "task": "classification",
        "estimator": {"name": "RandomForestClassifier", "params": {"n_estimators": 15, "max_depth": 5}},
        "split": {"holdout_fraction": 0.25, "seed": 2},
        "latency_calls": 50,
    } | changes


def api_call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
    event = copy.deepcopy(load_event("apigw/health.json"))
    event.update(httpMethod=method, path=path, resource=path, queryStringParameters=None)
    event["body"] = None if body is None else json.dumps(body)
    reply = api.lambda_handler(event, Context())
    return reply["statusCode"], json.loads(reply["body"])


def put_view(stores: Stores, **changes: Any) -> None:
    views_dal.put_view(stores.metadata_table, FeatureView.model_validate(VIEW | changes), "tester", T0)


@pytest.fixture
def seeded(stores: Stores) -> Stores:
    seed_dataset(stores, "customer-stats", stats_table(), "spend_30d")
    seed_dataset(stores, "events", events_table(), "churned")
    put_view(stores)
    return stores


@pytest.fixture
def serving() -> Iterator[None]:
    predict.reset(Serving(get_settings()))
    yield
    predict.reset(None)


def _bytes(uri: str) -> bytes:
    bucket, key = uri[5:].split("/", 1)
    return bytes(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def _offline_keys(stores: Stores) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=stores.artifacts_bucket, Prefix="offline/")
    return sorted(o["Key"] for o in listed.get("Contents", []))


def test_features_spec_pins_the_view_and_trains_registers_serves_and_reproduces(seeded: Stores, serving: None) -> None:
    stores = seeded
    # Given a spec reading a feature view (directly and through two derived features), stored via the API
    status, stored = api_call("PUT", "/v1/specs/churn-events", spec_body())
    assert status == 201, stored
    spec = specs_dal.get_spec(stores.metadata_table, "churn-events")
    assert spec.spec.views == {"cust": 1}  # pinned when stored
    # When the workflow's steps run through the real handlers
    state = run_steps(start_state(spec, specs_dal_dataset(stores)))
    # Then the version passed the gates (ONNX parity on the whole graph over the joined raw rows)
    assert state["registered"]["status"] == "PENDING_APPROVAL", state["registered"]
    version = registry_dal.get_version(stores.registry_table, MODEL, 1)
    assert version is not None
    # the offline layout of customer-stats@1 was built once and stored with its manifest
    keys = _offline_keys(stores)
    assert [k.rsplit("/", 1)[1] for k in keys] == ["_manifest.json", "layout.parquet"]
    assert keys[0].startswith("offline/customer-stats/v00000001/")
    assert "layout_seconds" in state["train"]["timings"]
    # lineage: the view version, its source dataset version, the layout's sha256 and the join's counts
    (use,) = version.feature_views
    assert (use.view, use.version, use.source, use.source_version) == ("cust", 1, "customer-stats", 1)
    assert use.layout.sha256 == json.loads(object_bytes(stores.artifacts_bucket, keys[0]) or b"{}")["sha256"]
    assert use.matched + use.missing + use.expired == 400
    assert use.missing > 0 and use.matched > 0
    run = runs_dal.get_run(stores.metadata_table, MODEL, version.run_id.rsplit(":", 1)[-1])
    assert [(u.view, u.matched, u.missing, u.expired) for u in run.feature_views] == [
        (use.view, use.matched, use.missing, use.expired)
    ]
    assert version.event_time == "event_at"
    card = (object_bytes(stores.artifacts_bucket, card_key(MODEL, 1, "md")) or b"").decode()
    assert "### Feature views" in card and "| cust | 1 | `spend_30d`, `orders_30d` | customer-stats@1 |" in card
    # the training set is next to the run's artifacts, with its sha256, holding the joined columns
    data = _bytes(version.artifacts["training_set"].uri)
    assert version.artifacts["training_set"].uri.endswith("/training-set.parquet")
    joined = pq.read_table(io.BytesIO(data))
    assert joined.column_names == ["customer", "event_at", "amount", "churned", "cust:spend_30d", "cust:orders_30d"]
    assert joined.column("cust:spend_30d").null_count == use.missing + use.expired
    # the served graph takes the raw request fields and the view's features
    assert sorted(f.name for f in version.features) == ["amount", "cust:orders_30d", "cust:spend_30d"]
    status, lineage = api_call("GET", f"/v1/models/{MODEL}/versions/1/lineage")
    assert status == 200, lineage
    assert [(v["view"], v["version"], v["source_version"]) for v in lineage["feature_views"]] == [("cust", 1, 1)]

    # When it serves requests carrying only the entity key and the raw field, each at its label's
    # time, the online store holding what materialization would have stored by then (the source's
    # latest row at or before that time; the test helper writes each label time's row exactly)
    put_model(stores, MODEL, production=1)
    table, now_ms = create_online_table(), [0]
    state = Serving(get_settings().model_copy(update={"online_table": table}), wall_ms=lambda: now_ms[0])
    predict.reset(state)
    null = joined.column("cust:spend_30d").is_null().to_numpy(zero_copy_only=False)
    unknown = joined.column("customer").to_numpy() >= 40  # customers without aggregates
    expired = np.flatnonzero(null & ~unknown)[:2].tolist()
    rows = joined.take([*range(8), *expired, *np.flatnonzero(null & unknown)[:2].tolist()])
    stats = stats_table().to_pylist()
    served: list[dict[str, Any]] = []
    for r in rows.to_pylist():
        pk = {"pk": {"S": online_key(["customer"], [r["customer"]])}}
        boto3.client("dynamodb").delete_item(TableName=table, Key=pk)
        known = [s for s in stats if s["customer"] == r["customer"] and s["at"] <= r["event_at"]]
        if known:
            s = max(known, key=lambda s: s["at"])
            values = {"spend_30d": s["spend_30d"], "orders_30d": s["orders_30d"]}
            seed("cust", {"customer": r["customer"]}, values, s["at"], 1, table=table)
        now_ms[0] = int(r["event_at"].timestamp() * 1000)
        instance = {"customer": r["customer"], "amount": r["amount"]}
        reply = predict.lambda_handler(predict_event(MODEL, {"instances": [instance]}), PredictContext())
        assert reply["statusCode"] == 200, reply["body"]
        served.append(json.loads(reply["body"]))
    # Then it answers what the training pipeline predicts on the point-in-time joined rows: values
    # where the join found a fresh row, null (imputed) where it found none or an expired one
    frame = tr.to_frame(tr.production_table(rows, version), version.pipeline_features)
    skops = tr.load_skops(_bytes(version.artifacts["skops"].uri))
    assert [b["predictions"][0] for b in served] == skops.predict(frame).astype(str).tolist()
    assert np.allclose([b["probabilities"][0] for b in served], skops.predict_proba(frame), atol=1e-5)
    fresh = [b["lookups"][0]["cust"]["status"] == "fresh" for b in served]
    assert fresh == [v is not None for v in rows.column("cust:spend_30d").to_pylist()]
    assert {b["lookups"][0]["cust"]["status"] for b in served} == {"fresh", "missing", "expired"}
    assert all(b["lookups"][0]["cust"]["source_version"] in (1, None) for b in served)
    predict.reset(Serving(get_settings()))

    # When the version is reproduced from its records
    result = reproduce(get_settings(), MODEL, 1)
    # Then the point-in-time training set is rebuilt byte for byte, and the predictions agree
    assert result.training_set_sha256 == version.artifacts["training_set"].sha256
    assert result.training_set_identical is True and result.identical

    # When the view gets a new version (a shorter TTL) and the stored spec trains again
    put_view(stores, ttl_seconds=60)
    second = run_steps(start_state(spec, specs_dal_dataset(stores)), until="train")
    # Then the spec still reads the version it pinned: the same training set, the layout reused
    assert second["train"]["artifacts"]["training_set"]["sha256"] == version.artifacts["training_set"].sha256
    assert "layout_seconds" not in second["train"]["timings"]


def specs_dal_dataset(stores: Stores) -> Any:
    from functions.dal import datasets as datasets_dal

    return datasets_dal.get_version(stores.metadata_table, "events", 1)


def _training_set(state: dict[str, Any]) -> pa.Table:
    return pq.read_table(io.BytesIO(_bytes(state["train"]["artifacts"]["training_set"]["uri"])))


def test_features_pit_join_in_the_train_step_never_leaks_future_values_and_expires_by_ttl(stores: Stores) -> None:
    # Given one customer's aggregates on day 10 (value 1.0) and day 20 (value 2.0), a 3-day TTL,
    # and labels before, at, between, inside and past the TTL of those rows (and an unknown customer)
    day = timedelta(days=1)
    stats = pa.table(
        {
            "customer": pa.array([7, 7], pa.int64()),
            "at": pa.array([T0 + 10 * day, T0 + 20 * day], pa.timestamp("us", tz="UTC")),
            "spend_30d": pa.array([1.0, 2.0]),
            "orders_30d": pa.array([1, 2], pa.int64()),
        }
    )
    offsets = [5, 10, 11, 13, 13.5, 19.9, 20, 22, 30, 12]
    customers = [7] * 9 + [8]
    labels = pa.table(
        {
            "customer": pa.array(customers * 3, pa.int64()),
            "event_at": pa.array([T0 + o * day for o in offsets] * 3, pa.timestamp("us", tz="UTC")),
            "amount": pa.array(np.arange(30, dtype=np.float64)),
            "churned": pa.array([0, 1] * 15, pa.int64()),
        }
    )
    seed_dataset(stores, "customer-stats", stats, "spend_30d")
    dataset = seed_dataset(stores, "events", labels, "churned")
    put_view(stores, ttl_seconds=3 * 86_400)
    body = spec_body(derived=[], features=["amount", "cust:spend_30d"])
    status, stored = api_call("PUT", "/v1/specs/churn-events", body)
    assert status == 201, stored
    spec = specs_dal.get_spec(stores.metadata_table, "churn-events")
    # When the real train step runs
    state = run_steps(start_state(spec, dataset), until="train")
    # Then each label sees only the latest row at or before its time, within the TTL, else null
    joined = _training_set(state)
    expected = [None, 1.0, 1.0, 1.0, None, None, 2.0, 2.0, None, None]
    assert joined.column("cust:spend_30d").to_pylist() == expected * 3
    # and the run record counts them: matched, missing (nothing at or before), expired (too old)
    (use,) = state["train"]["feature_views"]
    assert (use["matched"], use["missing"], use["expired"]) == (15, 6, 9)
    run = runs_dal.get_run(stores.metadata_table, MODEL, state["run"]["run_id"])
    assert [(u.matched, u.missing, u.expired) for u in run.feature_views] == [(15, 6, 9)]


def _stored_specs(stores: Stores) -> list[str]:
    items = boto3.client("dynamodb").scan(TableName=stores.metadata_table)["Items"]
    return [i["pk"]["S"] for i in items if i["pk"]["S"].startswith("SPEC#")]


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"features": ["amount", "nope:spend_30d"]}, "feature view 'nope' does not exist"),
        ({"features": ["amount", "cust:spend_7d"]}, "offers no feature cust:spend_7d"),
        ({"features": ["amount", "cust:spend_30d"], "views": {"cust": 9}}, "'cust' version 9 does not exist"),
        (
            {"features": ["amount", "r"], "derived": [{"name": "r", "expression": "log1p(other:x)", "type": "float"}]},
            "feature view 'other' does not exist",
        ),
        ({"features": ["amount", "cust:spend_30d"], "event_time": "amount"}, "'amount' is a float column"),
        ({"features": ["amount", "cust:spend_30d"], "event_time": "when"}, "'when' is not declared"),
        ({"features": ["amount", "cust:spend_30d"], "event_time": None}, "set event_time"),
        ({"features": ["amount", "cust:spend_30d"], "dataset": "no-key"}, "keyed by 'customer'"),
        ({"features": ["amount", "Cust View:spend_30d"]}, "a view feature is named view:feature"),
    ],
    ids=[
        "unknown view",
        "unknown feature",
        "unknown version",
        "unknown view in expression",
        "time not timestamp",
        "time missing",
        "no event_time",
        "labels without key",
        "malformed view name",
    ],
)
def test_features_spec_naming_a_bad_view_or_feature_is_refused_with_400_and_nothing_stored(
    seeded: Stores, changes: dict[str, Any], named: str
) -> None:
    # Given a label dataset without the view's entity key column too
    seed_dataset(seeded, "no-key", events_table().drop_columns(["customer"]), "churned")
    # When a spec names a view, view version or feature that does not exist, or labels that cannot be joined
    status, body = api_call("PUT", "/v1/specs/churn-events", spec_body(derived=[]) | changes)
    # Then it is a 400 naming the problem, and no spec is stored
    assert status == 400, body
    assert named in json.dumps(body), body
    assert _stored_specs(seeded) == []
    with pytest.raises(NotFound):
        specs_dal.get_spec(seeded.metadata_table, "churn-events")


def test_features_version_lineage_survives_the_registry_round_trip() -> None:
    # Given a version record with a feature view use, When it is serialized and read back, Then nothing is lost
    use = {
        "view": "cust",
        "version": 2,
        "entity_keys": ["customer"],
        "timestamp_column": "at",
        "ttl_seconds": 60,
        "features": [{"name": "spend_30d", "type": "float", "nullable": True}],
        "source": "customer-stats",
        "source_version": 3,
        "source_sha256": "a" * 64,
        "layout": {"uri": "s3://b/offline/x/layout.parquet", "sha256": "b" * 64, "size_bytes": 10},
        "matched": 1,
        "missing": 2,
        "expired": 3,
    }
    raw = {"name": "cust:spend_30d", "type": "float", "nullable": True}
    record = {"model": MODEL, "version": 1, "status": "REJECTED", "created_at": T0, "updated_at": T0}
    record |= {"task": "regression", "features": [raw], "target": "y", "feature_views": [use], "event_time": "t"}
    version = ModelVersion.model_validate(record)
    assert ModelVersion.model_validate_json(version.model_dump_json()) == version
    assert version.feature_views[0].columns()[0].name == "cust:spend_30d"


def test_features_train_step_names_a_view_source_without_a_validated_version(stores: Stores) -> None:
    # Given a view whose source dataset has a contract but no validated version yet
    seed_dataset(stores, "events", events_table(), "churned")
    seed_dataset(stores, "customer-stats", stats_table(), "spend_30d")
    put_view(stores, source="no-data-yet")
    body = spec_body(derived=[], features=["amount", "cust:spend_30d"])
    status, stored = api_call("PUT", "/v1/specs/churn-events", body)
    assert status == 201, stored
    spec = specs_dal.get_spec(stores.metadata_table, "churn-events")
    # When the train step runs, Then it fails naming the view and its source, and records the failure
    with pytest.raises(FeatureJoinFailed, match="source dataset 'no-data-yet' has no validated version"):
        run_steps(start_state(spec, specs_dal_dataset(stores)), until="train")
    run = runs_dal.list_runs(stores.metadata_table, MODEL)[0]
    assert [(s.name, s.outcome, s.error) for s in run.steps][-1] == ("train", "failed", "FeatureJoinFailed")
    assert _offline_keys(stores) == []


def test_features_offline_prefix_is_the_one_the_stack_grants() -> None:
    from infra import constants as c

    assert offline_paths.OFFLINE_PREFIX == c.PREFIX_OFFLINE
