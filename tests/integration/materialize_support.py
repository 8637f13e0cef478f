"""Shared by the materialization tests: the online table in moto, a source dataset version written
in small row groups (so one version is several chunks), and reads of the view's online entries."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from functions.dal import datasets as datasets_dal
from functions.dal import feature_views as views_dal
from functions.models.audit import Actor
from functions.models.contracts import DataContract
from functions.models.datasets import DatasetVersion
from functions.models.features import FeatureView
from functions.models.online import online_key, view_attribute
from functions.models.settings import Settings, get_settings
from tests.integration.conftest import Stores

ONLINE_TABLE = "stepwise-online"
SOURCE = "customer-stats"
VIEW_NAME = "cust"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
VIEW = {
    "name": VIEW_NAME,
    "entity_keys": ["customer"],
    "source": SOURCE,
    "timestamp_column": "at",
    "ttl_seconds": 10 * 86_400,
    "features": [
        {"name": "spend_30d", "type": "float"},
        {"name": "orders_30d", "type": "int"},
        {"name": "segment", "type": "string"},
    ],
}
ACTOR = Actor(identity="alice", correlation_id="test")
ROW_GROUP = 16  # rows per Parquet row group of a seeded version


@pytest.fixture
def online(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The online table (as the template makes it: `pk` alone), the settings that name it, and a
    chunk size small enough that every row group is its own chunk."""
    boto3.client("dynamodb").create_table(
        TableName=ONLINE_TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
    monkeypatch.setenv("STEPWISE_ONLINE_TABLE", ONLINE_TABLE)
    monkeypatch.setenv("STEPWISE_MATERIALIZE_CHUNK_BYTES", "1")
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def stats(customers: int, *, day: int, spend: float, rows_per_customer: int = 2) -> pa.Table:
    """Rows per customer at days `day - k` (k < rows_per_customer); the latest row of customer c
    (at day `day`, hour c % 24) has spend `spend + c` and orders c."""
    cust, at, spend_col, orders, segment = [], [], [], [], []
    for c in range(customers):
        for k in range(rows_per_customer):
            cust.append(c)
            at.append(T0 + timedelta(days=day - k, hours=c % 24))
            spend_col.append(spend + c - 1000.0 * k)
            orders.append(c - k)
            segment.append(f"s{day}-{k}")
    table = pa.table(
        {
            "customer": pa.array(cust, pa.int64()),
            "at": pa.array(at, pa.timestamp("us", tz="UTC")),
            "spend_30d": pa.array(spend_col, pa.float64()),
            "orders_30d": pa.array(orders, pa.int64()),
            "segment": pa.array(segment, pa.string()),
        }
    )
    # shuffle deterministically: a customer's rows land in different row groups
    order = sorted(range(table.num_rows), key=lambda i: hashlib.sha256(str(i).encode()).hexdigest())
    return table.take(pa.array(order))


def seed_version(stores: Stores, table: pa.Table) -> DatasetVersion:
    """The contract (first time) and one validated version of SOURCE written in small row groups."""
    db = stores.metadata_table
    try:
        contract_version = datasets_dal.get_contract(db, SOURCE).version
    except Exception:
        columns = [
            {"name": "customer", "type": "int", "nullable": False},
            {"name": "at", "type": "timestamp", "nullable": False},
            {"name": "spend_30d", "type": "float"},
            {"name": "orders_30d", "type": "int"},
            {"name": "segment", "type": "string"},
        ]
        contract = DataContract.model_validate({"columns": columns, "unique": [["customer", "at"]]})
        contract_version = datasets_dal.put_contract(db, SOURCE, contract, ACTOR, T0).version
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=ROW_GROUP)
    data = buf.getvalue()
    key = f"validated/{SOURCE}/{hashlib.sha256(data).hexdigest()[:12]}.parquet"
    put = boto3.client("s3").put_object(Bucket=stores.data_bucket, Key=key, Body=data)
    draft = DatasetVersion(
        dataset=SOURCE,
        version=1,
        key=key,
        bucket=stores.data_bucket,
        version_id=put.get("VersionId", ""),
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        format="parquet",
        rows=table.num_rows,
        schema_fingerprint="test",
        contract_version=contract_version,
        report_uri=f"s3://{stores.artifacts_bucket}/reports/{SOURCE}.json",
        created_at=T0,
    )
    return datasets_dal.create_version(db, draft, upload=key, actor=ACTOR)


def put_view(stores: Stores) -> None:
    views_dal.put_view(stores.metadata_table, FeatureView.model_validate(VIEW), "tester", T0)


def online_item(customer: int) -> dict[str, Any] | None:
    """The view's entry (its map's attributes) of the customer's item; None: no entry."""
    reply = boto3.client("dynamodb").get_item(
        TableName=ONLINE_TABLE, Key={"pk": {"S": online_key(["customer"], [customer])}}, ConsistentRead=True
    )
    entry = reply.get("Item", {}).get(view_attribute(VIEW_NAME))
    return None if entry is None else entry["M"]


def online_snapshot() -> dict[str, dict[str, Any]]:
    """The view's entry of every item that holds one, by pk (moto's scan: one page is enough for
    these sizes)."""
    items = boto3.client("dynamodb").scan(TableName=ONLINE_TABLE)["Items"]
    attribute = view_attribute(VIEW_NAME)
    return {i["pk"]["S"]: i[attribute]["M"] for i in items if attribute in i}


def spend_of(item: dict[str, Any]) -> float:
    return float(item["values"]["M"]["spend_30d"]["N"])
