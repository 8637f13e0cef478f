"""Feature views through the real API handler on moto: versions, refusals, the audit trail."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pytest

from functions.dal.audit import list_events
from functions.handlers import api
from functions.models.settings import get_settings
from stepwise.cli import main
from tests.integration.approval_support import Context, api_event
from tests.integration.conftest import Stores
from tests.integration.test_validate_cli import InProcessTarget
from tests.integration.test_validate_handler import invoke, parquet_bytes, upload

CONTRACT = {
    "columns": [
        {"name": "customer", "type": "string", "nullable": False},
        {"name": "at", "type": "timestamp", "nullable": False},
        {"name": "day", "type": "int"},
        {"name": "spend", "type": "float"},
        {"name": "orders", "type": "int"},
        {"name": "segment", "type": "category", "categories": ["a", "b"]},
    ],
    "unique": [["customer", "at"]],
}
VIEW = {
    "entity_keys": ["customer"],
    "source": "orders",
    "timestamp_column": "at",
    "ttl_seconds": 7 * 86_400,
    "features": [{"name": "spend", "type": "float"}, {"name": "orders", "type": "int"}],
    "description": "spend per customer",
}


def call(method: str, path: str, body: Any = None, query: dict[str, str] | None = None) -> tuple[int, Any]:
    event = api_event(method, path, body, who="alice")
    event["queryStringParameters"] = query
    reply = api.lambda_handler(event, Context())
    return reply["statusCode"], json.loads(reply["body"])


def view_items(stores: Stores) -> list[dict[str, Any]]:
    items = boto3.client("dynamodb").scan(TableName=stores.metadata_table)["Items"]
    return [i for i in items if i["pk"]["S"].startswith("FEATUREVIEW#")]


def upload_orders(stores: Stores, rows: int = 4) -> dict[str, Any]:
    """A file that passes the orders contract, through the real validation handler."""
    start = datetime(2026, 1, 1)
    columns: dict[str, Any] = {
        "customer": [f"c{i % 2}" for i in range(rows)],
        "at": pa.array([start + timedelta(days=i) for i in range(rows)], pa.timestamp("us")),
        "day": list(range(rows)),
        "spend": [float(i) for i in range(rows)],
        "orders": list(range(rows)),
        "segment": ["a", "b"] * (rows // 2),
    }
    outcome = invoke(upload(stores, f"raw/orders/orders-{rows}.parquet", parquet_bytes(columns)))
    assert outcome["verdict"] == "passed", outcome
    return outcome


@pytest.fixture
def orders(stores: Stores) -> Stores:
    status, body = call("PUT", "/v1/datasets/orders/contract", CONTRACT)
    assert status in (200, 201), body
    upload_orders(stores)
    return stores


def test_feature_views_put_stores_versions_and_never_changes_an_old_one(orders: Stores) -> None:
    # Given a source whose contract declares (customer, at) unique
    # When a view is stored twice, the second time with one more feature
    status, first = call("PUT", "/v1/feature-views/spend", VIEW)
    assert status == 201, first
    second_view = VIEW | {"name": "spend", "features": [*VIEW["features"], {"name": "segment", "type": "category"}]}
    status, second = call("PUT", "/v1/feature-views/spend", second_view)
    # Then they are versions 1 and 2, and version 1 reads back as it was stored
    assert status == 201, second
    assert (first["version"], second["version"]) == (1, 2)
    assert first["created_by"].endswith(":user/alice") and first["view"]["name"] == "spend"
    status, latest = call("GET", "/v1/feature-views/spend")
    assert status == 200 and latest == second
    status, old = call("GET", "/v1/feature-views/spend", query={"version": "1"})
    assert status == 200 and old == first
    assert [f["name"] for f in old["view"]["features"]] == ["spend", "orders"]
    # and the list holds the latest version of each view
    call("PUT", "/v1/feature-views/orders-count", VIEW | {"features": [{"name": "orders", "type": "int"}]})
    status, listed = call("GET", "/v1/feature-views")
    assert status == 200
    assert [(v["name"], v["version"]) for v in listed["views"]] == [("orders-count", 1), ("spend", 2)]
    # and each version has its audit event
    events = list_events(get_settings().metadata_table, target="feature-view/spend")
    assert [(e.action, e.version) for e in events] == [("feature_view.put", 1), ("feature_view.put", 2)]
    assert all(e.who == first["created_by"] for e in events)
    assert events[0].after == {"source": "orders", "entity_keys": ["customer"], "features": 2, "source_version": 1}


def test_feature_views_get_answers_404_for_unknown_views_and_versions(orders: Stores) -> None:
    assert call("GET", "/v1/feature-views/nope")[0] == 404
    call("PUT", "/v1/feature-views/spend", VIEW)
    status, body = call("GET", "/v1/feature-views/spend", query={"version": "2"})
    assert status == 404 and body["error"] == "NotFound"
    assert call("GET", "/v1/feature-views", None)[1] == {
        "views": [call("GET", "/v1/feature-views/spend")[1]],
        "next_token": None,
    }


def _with(**changes: Any) -> dict[str, Any]:
    view = copy.deepcopy(VIEW)
    view.update(changes)
    return view


REFUSALS = {
    "missing dataset": (_with(source="nowhere"), "source", "'nowhere' does not exist or has no data contract"),
    "missing key column": (_with(entity_keys=["client"]), "entity_keys.0", "column 'client' is not declared"),
    "missing timestamp column": (_with(timestamp_column="when"), "timestamp_column", "'when' is not declared"),
    "missing feature": (
        _with(features=[{"name": "refunds", "type": "float"}]),
        "features.0.name",
        "column 'refunds' is not declared in the contract of dataset 'orders'",
    ),
    "wrong feature type": (
        _with(features=[{"name": "spend", "type": "int"}]),
        "features.0.type",
        "feature 'spend' is declared int here but float",
    ),
    "timestamp column not a timestamp": (
        _with(timestamp_column="day"),
        "timestamp_column",
        "'day' is a int column in the contract of dataset 'orders' that validated orders@1, not a timestamp",
    ),
    "float key": (_with(entity_keys=["spend"], features=[{"name": "orders", "type": "int"}]), "entity_keys.0", "float"),
    "key not unique per timestamp": (
        _with(entity_keys=["segment"]),
        "entity_keys",
        'does not declare the entity key unique per timestamp: declare "unique": [["segment", "at"]]',
    ),
    "zero ttl": (_with(ttl_seconds=0), "ttl_seconds", "greater than 0"),
    "ttl beyond ten years": (_with(ttl_seconds=10**10), "ttl_seconds", "less than or equal to"),
    "duplicate feature names": (
        _with(features=[{"name": "spend", "type": "float"}, {"name": "spend", "type": "float"}]),
        "",
        "feature names must be unique; repeated: ['spend']",
    ),
    "other name in the body": (_with(name="other"), "name", "the view is named 'other', the route 'spend'"),
    "no features": (_with(features=[]), "features", "at least 1 item"),
    "five entity keys": (_with(entity_keys=["a", "b", "c", "d", "e"]), "entity_keys", "at most 4 items"),
    "unknown field": (_with(owner="x"), "owner", "Extra inputs are not permitted"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_feature_views_put_refuses_a_bad_view_naming_the_problem_and_stores_nothing(orders: Stores, case: str) -> None:
    view, field, reason = REFUSALS[case]
    status, body = call("PUT", "/v1/feature-views/spend", view)
    assert status == 400, body
    assert body["error"] == "InvalidInput"
    text = str(body)
    assert reason in text, text
    assert field in text
    assert view_items(orders) == []
    assert list_events(get_settings().metadata_table, target="feature-view/spend") == []


def test_feature_views_put_refuses_a_source_without_a_validated_version(stores: Stores) -> None:
    # Given a source with a contract but no upload that passed it
    status, body = call("PUT", "/v1/datasets/orders/contract", CONTRACT)
    assert status in (200, 201), body
    # When a view over it is stored
    status, body = call("PUT", "/v1/feature-views/spend", VIEW)
    # Then it is refused naming the dataset, and nothing is stored
    assert status == 400, body
    assert body["error"] == "InvalidInput"
    assert body["details"] == [
        {
            "field": "source",
            "reason": "source dataset 'orders' has no validated version: a view is defined over validated data, "
            "so upload a file that passes its contract first",
        }
    ]
    assert view_items(stores) == []
    assert list_events(get_settings().metadata_table, target="feature-view/spend") == []


def test_feature_views_put_pins_the_latest_validated_source_version(orders: Stores) -> None:
    # Given orders@1 validated
    status, first = call("PUT", "/v1/feature-views/spend", VIEW)
    assert status == 201, first
    v1 = call("GET", "/v1/datasets/orders/versions/1")[1]
    # Then the view records that version, its sha256 and the contract version that validated it
    assert first["source_version"] == {"dataset": "orders", "version": 1, "sha256": v1["sha256"]}
    assert first["source_contract_version"] == v1["contract_version"] == 1
    # When orders@2 is validated and the view is stored again
    upload_orders(orders, rows=6)
    status, second = call("PUT", "/v1/feature-views/spend", VIEW)
    assert status == 201, second
    # Then the new view version pins orders@2; the old one still pins orders@1
    assert second["source_version"]["version"] == 2
    assert second["source_version"]["sha256"] == call("GET", "/v1/datasets/orders/versions/2")[1]["sha256"]
    assert call("GET", "/v1/feature-views/spend", query={"version": "1"})[1]["source_version"]["version"] == 1
    events = list_events(get_settings().metadata_table, target="feature-view/spend")
    assert [e.after["source_version"] for e in events] == [1, 2]


def test_feature_views_put_checks_the_contract_that_validated_the_pinned_version(orders: Stores) -> None:
    # Given a newer contract declaring a column no validated file has yet
    newer = copy.deepcopy(CONTRACT)
    newer["columns"].append({"name": "refunds", "type": "float"})
    status, body = call("PUT", "/v1/datasets/orders/contract", newer)
    assert status in (200, 201), body
    # When a view offers that column
    status, body = call("PUT", "/v1/feature-views/spend", _with(features=[{"name": "refunds", "type": "float"}]))
    # Then it is refused: orders@1 was validated with contract version 1, which has no such column
    assert status == 400, body
    assert body["details"][0] == {
        "field": "features.0.name",
        "reason": "column 'refunds' is not declared in the contract of dataset 'orders' that validated orders@1",
    }
    assert view_items(orders) == []


@pytest.fixture
def cli(orders: Stores, monkeypatch: pytest.MonkeyPatch) -> Any:
    target = InProcessTarget(api_url="http://in-process", outputs={})
    monkeypatch.setattr("stepwise.cli.resolve", lambda *a, **k: target)
    return lambda *argv: main(list(argv))


def test_cli_feature_view_put_show_and_list(cli: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a view file
    path = tmp_path / "spend.json"
    path.write_text(json.dumps(VIEW | {"name": "spend"}))
    # When it is put twice and shown
    assert cli("feature-view", "put", str(path)) == 0
    assert cli("feature-view", "put", str(path)) == 0
    assert capsys.readouterr().out.splitlines() == [
        "feature view spend version 1 stored (source orders)",
        "feature view spend version 2 stored (source orders)",
    ]
    assert cli("feature-view", "show", "spend", "--version", "1") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["version"] == 1 and shown["view"]["ttl_seconds"] == VIEW["ttl_seconds"]
    # Then the list shows the latest version
    assert cli("feature-views") == 0
    listing = capsys.readouterr().out
    assert "spend" in listing and "orders" in listing and "customer" in listing and "604800" in listing
    assert cli("feature-view", "show", "nosuch") == 1


def test_cli_feature_view_put_names_the_refusal(cli: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(VIEW | {"features": [{"name": "refunds", "type": "float"}]}))
    assert cli("feature-view", "put", str(path), "--name", "spend") == 1
    out = capsys.readouterr().out
    assert "HTTP 400 InvalidInput" in out and "features.0.name: column 'refunds' is not declared" in out
    path.write_text(json.dumps(VIEW | {"ttl_seconds": 0}))
    assert cli("feature-view", "put", str(path), "--name", "spend") == 2
    assert "ttl_seconds" in capsys.readouterr().out
    assert cli("feature-views") == 0 and capsys.readouterr().out.strip() == "no feature views"
