"""Prediction with feature lookups, through the real inference handler against moto: a version
trained through a feature view takes its entity key in each instance, and the function reads the
view's values from the online store (seeded in the fixed item layout by
tests/integration/lookup_support.py, so each case sets exact values and times; materialization is
tested in test_materialize.py and end to end in the feature-view e2e).

Checked: fresh, expired, missing (unknown entity, or a row stamped after the request) values are
exactly what the point-in-time join gives a label stamped at the request time (expired and missing
-> null, imputed by the pipeline); the reply and the capture name each view's status, source
version and event time; a looked-up feature sent by the caller is refused (400 naming it) unless
the version allows overrides; a missing entity key is a 400 naming it; a throttled or failing
online store answers 429/503 with Retry-After, never a prediction; one BatchGetItem per 100 keys.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import numpy as np
import pyarrow as pa
import pytest

from functions.handlers import predict
from functions.logic.pit_join import JoinView, pit_join
from functions.logic.serving import Serving
from functions.models.settings import get_settings
from tests import faults
from tests.integration.conftest import Stores
from tests.integration.lookup_support import (
    CUSTOMER,
    ONLINE_TABLE,
    LookupModel,
    ViewSpec,
    create_online_table,
    lookup_regressor,
    put_lookup_version,
    seed,
)
from tests.integration.test_predict_support import Context, predict_event

NAME = "purchases-model"
T = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)  # the request time
DAY = timedelta(days=1)

# the source's history: (customer, at, spend_30d, orders_30d); the online store holds each latest row
HISTORY = [
    ("c-1", T - 20 * DAY, 100.0, 2.0),
    ("c-1", T - 3 * DAY, 140.0, 5.0),  # fresh
    ("c-2", T - 30 * DAY, 90.0, 1.0),
    ("c-2", T - 20 * DAY, 80.0, 3.0),  # expired: 20 days old, the TTL is 14
    ("c-3", T - 2 * DAY, None, 4.0),  # fresh, with a null inside the row
    ("c-4", T - 14 * DAY, 60.0, 2.0),  # exactly the TTL old: fresh (age <= ttl)
    ("c-5", T + 1 * DAY, 70.0, 6.0),  # stamped after the request: training would not use it
]


@pytest.fixture
def model(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> Iterator[LookupModel]:
    """purchases-model v1 (trained through `customer`) in production, the online table seeded with
    each customer's latest row, and a fresh serving environment whose wall clock is T."""
    monkeypatch.setenv("STEPWISE_ONLINE_TABLE", create_online_table())
    get_settings.cache_clear()
    trained = lookup_regressor()
    put_lookup_version(stores, NAME, 1, trained)
    latest: dict[str, tuple[str, datetime, float | None, float]] = {}
    for row in HISTORY:
        latest[row[0]] = row
    for customer, at, spend, orders in latest.values():
        seed(CUSTOMER.name, {CUSTOMER.key: customer}, {"spend_30d": spend, "orders_30d": orders}, at, source_version=3)
    fresh()
    yield trained
    predict.reset(None)


def fresh(**settings: Any) -> Serving:
    state = Serving(
        get_settings().model_copy(update={"capture_sample_rate": 1.0, **settings}),
        wall_ms=lambda: int(T.timestamp() * 1000),
    )
    predict.reset(state)
    return state


def send(body: Any) -> tuple[int, dict[str, Any], dict[str, Any]]:
    reply = predict.lambda_handler(predict_event(NAME, body), Context())
    return reply["statusCode"], json.loads(reply["body"]), reply


def joined_rows(customers: list[str], amounts: list[float]) -> tuple[list[list[float | None]], list[Any]]:
    """What training sees for labels (customer, T): the point-in-time join over the history."""
    from functions.logic.offline_store import build_layout, load_layout
    from functions.models.features_offline import SourceVersionRef

    history = pa.table(
        {
            "customer_id": [r[0] for r in HISTORY],
            "at": pa.array([r[1] for r in HISTORY], pa.timestamp("us", tz="UTC")),
            "spend_30d": pa.array([r[2] for r in HISTORY], pa.float64()),
            "orders_30d": pa.array([r[3] for r in HISTORY], pa.float64()),
        }
    )
    source = SourceVersionRef(dataset="customer-stats", version=3, sha256="0" * 64)
    layout = build_layout(history, source=source, entity_keys=["customer_id"], timestamp_column="at")
    index = load_layout(layout.data, layout.manifest)
    labels = pa.table(
        {
            "customer_id": customers,
            "event_at": pa.array([T] * len(customers), pa.timestamp("us", tz="UTC")),
            "amount": amounts,
        }
    )
    view = JoinView(name="customer", layout=index, ttl=timedelta(seconds=CUSTOMER.ttl_seconds))
    result = pit_join(labels, [view], time_column="event_at")
    rows = result.table.select(["amount", "customer:spend_30d", "customer:orders_30d"]).to_pylist()
    return [list(r.values()) for r in rows], result.counts


def test_predict_lookups_serve_exactly_what_the_point_in_time_join_gives_training(
    stores: Stores, model: LookupModel
) -> None:
    # Given customers fresh, expired, with a null inside, exactly TTL old, stamped later, and unknown
    customers = ["c-1", "c-2", "c-3", "c-4", "c-5", "c-9"]
    amounts = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
    instances = [{"customer_id": c, "amount": a} for c, a in zip(customers, amounts, strict=True)]
    # When they are sent with only the entity key and the request field
    status, body, _ = send({"instances": instances, "request_id": "lookup-1"})
    # Then each prediction is the pipeline's on the point-in-time joined row for (customer, T)
    assert status == 200, body
    rows, (counts,) = joined_rows(customers, amounts)
    assert rows[1][1:] == [None, None] and rows[4][1:] == [None, None] and rows[5][1:] == [None, None]
    assert rows[2][1] is None and rows[2][2] == 4.0
    assert np.allclose(body["predictions"], model.predict(rows), rtol=1e-5)
    # And the reply names, per row, the view's status and where its values came from
    statuses = [r["customer"]["status"] for r in body["lookups"]]
    assert statuses == ["fresh", "expired", "fresh", "fresh", "missing", "missing"]
    assert (counts.matched, counts.expired, counts.missing) == (3, 1, 2)
    assert body["lookups"][0]["customer"] == {
        "status": "fresh",
        "source_version": 3,
        "event_time": (T - 3 * DAY).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    assert body["lookups"][5]["customer"] == {"status": "missing", "source_version": None, "event_time": None}
    # And the capture records the looked-up values as served, and the same provenance
    predict.reset(None)  # flush
    s3 = boto3.client("s3")
    (key,) = [o["Key"] for o in s3.list_objects_v2(Bucket=stores.data_bucket, Prefix="captures/")["Contents"]]
    lines = gzip.decompress(s3.get_object(Bucket=stores.data_bucket, Key=key)["Body"].read()).decode().splitlines()
    captured = [json.loads(line) for line in lines]
    assert [c["lookups"] for c in captured] == body["lookups"]
    assert [c["features"]["customer:spend_30d"] for c in captured] == [r[1] for r in rows]


def test_predict_lookups_explain_shows_where_the_values_came_from(stores: Stores, model: LookupModel) -> None:
    from functions.logic.lineage import find_captures

    # Given a captured prediction with lookups
    status, body, _ = send({"instances": [{"customer_id": "c-1", "amount": 1.0}], "request_id": "explain-me"})
    assert status == 200, body
    predict.reset(None)
    # When its captures are searched by request id (what `stepwise explain` reads)
    matches, _ = find_captures(get_settings(), "explain-me", model=NAME)
    # Then the match carries each row's lookup provenance
    assert matches[0].lookups == body["lookups"]


def test_predict_lookups_sending_a_looked_up_feature_is_refused_naming_it(stores: Stores, model: LookupModel) -> None:
    # Given a version that does not allow request overrides
    instances = [{"customer_id": "c-1", "amount": 1.0, "customer:spend_30d": 999.0}]
    # When a caller sends a looked-up feature
    status, body, _ = send({"instances": instances})
    # Then 400 naming it, nothing predicted
    assert status == 400, body
    assert "customer:spend_30d" in body["message"]
    assert body["details"][0]["field"] == "instances.0.customer:spend_30d"


def test_predict_lookups_overrides_replace_the_store_value_when_the_version_allows_it(
    stores: Stores, model: LookupModel
) -> None:
    # Given v2 of the model trained with allow_request_overrides
    put_lookup_version(stores, NAME, 2, model, overrides=True)
    fresh()
    # When one row sends spend_30d and another does not
    instances = [
        {"customer_id": "c-1", "amount": 1.0, "customer:spend_30d": 999.0},
        {"customer_id": "c-1", "amount": 1.0},
    ]
    status, body, _ = send({"instances": instances})
    # Then the sent value is used for that row, the store's for the other
    assert status == 200, body
    assert np.allclose(body["predictions"], model.predict([[1.0, 999.0, 5.0], [1.0, 140.0, 5.0]]), rtol=1e-5)


def test_predict_lookups_an_instance_without_its_entity_key_is_a_400_naming_it(
    stores: Stores, model: LookupModel
) -> None:
    status, body, _ = send({"instances": [{"amount": 1.0}]})
    assert status == 400, body
    assert any(d["field"] == "instances.0.customer_id" for d in body["details"]), body


@pytest.mark.parametrize(
    ("fault", "expected"),
    [(faults.DYNAMODB_THROTTLING, 429), (faults.THROTTLING, 429), (faults.ACCESS_DENIED, 503), (faults.TIMEOUT, 503)],
    ids=lambda v: getattr(v, "name", str(v)),
)
def test_predict_lookups_a_throttled_or_failing_store_answers_with_retry_after_never_a_prediction(
    stores: Stores, model: LookupModel, fault: faults.Fault, expected: int
) -> None:
    # Given the online store's BatchGetItem fails (every attempt botocore makes)
    body_in = {"instances": [{"customer_id": "c-1", "amount": 1.0}]}
    assert send(body_in)[0] == 200  # the model is loaded: only the lookup can fail now
    with faults.inject("dynamodb.BatchGetItem", fault, times=10):
        status, body, reply = send(body_in)
    # Then 429/503 with Retry-After, and no predictions
    assert status == expected, body
    assert "predictions" not in body
    assert faults.reply_header(reply, "Retry-After") == str(body["retry_after_seconds"])
    assert ONLINE_TABLE not in reply["body"] and "arn:" not in reply["body"]
    # And the retry succeeds
    assert send(body_in)[0] == 200


def test_predict_lookups_one_batch_get_per_100_entities_across_views(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a model reading two views over the same entity (customer) and a third over another
    # (merchant), with both customer views' entries seeded for customer c-0
    monkeypatch.setenv("STEPWISE_ONLINE_TABLE", create_online_table())
    get_settings.cache_clear()
    risk = ViewSpec("risk", CUSTOMER.key, 7 * 86_400, ("score",))
    merchant = ViewSpec("merchant", "merchant_id", 7 * 86_400, ("rate",))
    at = T - timedelta(hours=1)
    seed(CUSTOMER.name, {CUSTOMER.key: "c-0"}, {"spend_30d": 5.0, "orders_30d": 1.0}, at, source_version=2)
    seed(risk.name, {risk.key: "c-0"}, {"score": 0.5}, at, source_version=4)
    two = lookup_regressor((CUSTOMER, risk))
    put_lookup_version(stores, NAME, 1, two)
    state = fresh()
    customers = [{"customer_id": f"c-{i}", "amount": 1.0} for i in range(100)]
    # When 100 rows are predicted by the model reading the two views over customers
    with faults.recording() as calls:
        status, body, _ = send({"instances": customers})
    # Then one BatchGetItem reads both views of every row (one item per customer)
    assert status == 200, body
    assert calls.count("dynamodb.BatchGetItem") == 1
    assert body["lookups"][0]["customer"] == {"status": "fresh", "source_version": 2, "event_time": _iso(at)}
    assert body["lookups"][0]["risk"] == {"status": "fresh", "source_version": 4, "event_time": _iso(at)}
    assert {r["risk"]["status"] for r in body["lookups"][1:]} == {"missing"}
    predict.reset(None)
    del state
    # And a model over two entities reads 150 rows' 300 distinct entities in three requests
    put_lookup_version(stores, NAME, 2, lookup_regressor((CUSTOMER, merchant)))
    state = fresh()
    instances = [{"customer_id": f"c-{i}", "merchant_id": i, "amount": 1.0} for i in range(150)]
    with faults.recording() as calls:
        status, body, _ = send({"instances": instances})
    assert status == 200, body
    assert calls.count("dynamodb.BatchGetItem") == 3
    assert body["lookups"][0]["customer"]["status"] == "fresh"
    assert {r["merchant"]["status"] for r in body["lookups"]} == {"missing"}
    predict.reset(None)
    del state


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_predict_lookups_drift_check_reports_the_missing_and_expired_share_from_captures(
    stores: Stores, model: LookupModel
) -> None:
    from functions.logic.compaction import compact_objects
    from functions.logic.drift_sections import check_window
    from functions.logic.profile import build_reference_profile

    # Given served rows: 3 fresh, 1 expired, 2 missing (an unknown entity, a later row), captured
    customers = ["c-1", "c-2", "c-3", "c-4", "c-5", "c-9"]
    assert send({"instances": [{"customer_id": c, "amount": 1.0} for c in customers]})[0] == 200
    predict.reset(None)  # flush
    s3 = boto3.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=stores.data_bucket, Prefix="captures/")["Contents"]]
    objects = [s3.get_object(Bucket=stores.data_bucket, Key=k)["Body"].read() for k in keys]
    # When the drift check's compaction and window check read them
    compacted = compact_objects(objects, model.features, "regression", lookup_views=["customer"])
    reference = pa.table({f.name: pa.array(np.linspace(0, 100, 200)) for f in model.features})
    profile = build_reference_profile(reference, model.features)
    report = check_window(profile, [compacted.table], model=NAME, version=1, lookup_views=["customer"])
    # Then the data-quality section reports the view's missing and expired share
    assert report.data_quality is not None
    (lookups,) = report.data_quality.lookups
    assert (lookups.view, lookups.lookups, lookups.missing, lookups.expired) == ("customer", 6, 2, 1)
    assert lookups.missing_share == pytest.approx(2 / 6) and lookups.expired_share == pytest.approx(1 / 6)
