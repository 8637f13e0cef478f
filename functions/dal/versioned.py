"""Numbered versions (contracts, dataset versions, specs, model versions) written as one DynamoDB
transaction: the head item's counter moves from N to N+1 (conditional on still being N), the item
of version N+1 is created (conditional on not existing) and whatever must land with it (the audit
event, markers) goes in the same transaction. A cancelled transaction means another writer took
N+1: `write_next` reads the counter again and retries, a bounded number of times.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from functions.dal.clients import client, error_code, store_error
from functions.models.errors import Conflict

T = TypeVar("T")
MAX_ATTEMPTS = 8


class Cancelled(Exception):
    """The transaction was cancelled: a condition failed (or a concurrent transaction touched an
    item). `reasons` holds one code per item, in order ("None" for the items that were fine)."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(f"transaction cancelled: {reasons}")
        self.reasons = reasons


def counter_update(
    table: str,
    key: dict[str, Any],
    attr: str,
    previous: int,
    *,
    also_set: str = "",
    values: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A transaction item moving the counter `attr` of the item at `key` from `previous` to
    `previous + 1`, only if it still is `previous` (absent when `previous` is 0). `also_set`
    ("a = :a, b = :b") and `values` set other attributes with it."""
    expression_values: dict[str, Any] = {":n": {"N": str(previous + 1)}, **(values or {})}
    if previous:
        condition = f"{attr} = :prev"
        expression_values[":prev"] = {"N": str(previous)}
    else:
        condition = f"attribute_not_exists({attr})"
    return {
        "Update": {
            "TableName": table,
            "Key": key,
            "UpdateExpression": f"SET {attr} = :n" + (f", {also_set}" if also_set else ""),
            "ConditionExpression": condition,
            "ExpressionAttributeValues": expression_values,
        }
    }


def read_item(table: str, key: dict[str, Any], what: str) -> dict[str, Any] | None:
    """A consistent read of one item (None when absent); a store failure is its typed error naming
    `what` ("spec read")."""
    try:
        return client("dynamodb").get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")  # type: ignore[no-any-return]
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, what) from exc


def read_counter(table: str, key: dict[str, Any], what: str, attr: str = "latest_version") -> int:
    """The head item's version counter (0 when there is no head yet)."""
    item = read_item(table, key, what)
    return int(item[attr]["N"]) if item and attr in item else 0


def indexed_version(pk: str, sk: str, *, index_pk: str, name: str, number: int, kind: str, doc: str) -> dict[str, Any]:
    """A version item listed on the gsi1 index under `index_pk`, in (name, number) order."""
    return {
        "pk": {"S": pk},
        "sk": {"S": sk},
        "gsi1pk": {"S": index_pk},
        "gsi1sk": {"S": f"{name}#{number:08d}"},
        "kind": {"S": kind},
        "doc": {"S": doc},
    }


def put_new(table: str, item: dict[str, Any]) -> dict[str, Any]:
    """A transaction item creating `item`, only if no item has its key yet."""
    return {"Put": {"TableName": table, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}}


def transact(items: list[dict[str, Any]], what: str) -> None:
    """Write `items` in one transaction. Cancelled when a condition failed; any other failure is the
    store's typed error naming `what` ("spec write")."""
    try:
        client("dynamodb").transact_write_items(TransactItems=items)
    except (ClientError, BotoCoreError) as exc:
        if error_code(exc) == "TransactionCanceledException" and isinstance(exc, ClientError):
            reasons = [str(r.get("Code", "None")) for r in exc.response.get("CancellationReasons", [])]
            raise Cancelled(reasons) from exc
        raise store_error(exc, what) from exc


def create_audited(table: str, item: dict[str, Any], event_put: dict[str, Any], what: str) -> bool:
    """Create `item` (only if no item has its key yet) with its audit event's put in one
    transaction. False when the key was taken (nothing written); any other failure is the store's
    typed error naming `what`."""
    try:
        transact([put_new(table, item), event_put], what)
    except Cancelled as exc:
        if exc.reasons[:1] == ["ConditionalCheckFailed"]:
            return False
        assert isinstance(exc.__cause__, Exception)
        raise store_error(exc.__cause__, what) from exc
    return True


def write_next(
    latest: Callable[[], int],
    build: Callable[[int], tuple[list[dict[str, Any]], T]],
    *,
    what: str,
    busy: str,
    attempts: int = MAX_ATTEMPTS,
) -> T:
    """Write the next version: `build(latest() + 1)` gives the transaction (its counter update
    conditioned on `latest()`) and the record it stores; a transaction another writer cancelled is
    rebuilt on a fresh read. Conflict saying `busy` after `attempts` lost races."""
    for _ in range(attempts):
        items, record = build(latest() + 1)
        try:
            transact(items, what)
        except Cancelled:
            continue  # another writer took this number: read the counter again
        return record
    raise Conflict(busy)
