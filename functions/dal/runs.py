"""Run records in the metadata table (see functions/models/runs.py for the key layout).

A run record is one item updated under an optimistic lock (`revision`), so a step's start, end
and a Catch's failure never overwrite each other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.dal import pages
from functions.dal.clients import client, error_code, store_error
from functions.models.errors import Conflict, NotFound, StoreUnavailable
from functions.models.runs import RunRecord, run_pk, run_sk, runs_index_pk, runs_index_sk

MAX_ATTEMPTS = 8
MAX_PAGE = 100


def _item(record: RunRecord, revision: int) -> dict[str, Any]:
    return {
        "pk": {"S": run_pk(record.model)},
        "sk": {"S": run_sk(record.run_id)},
        "gsi1pk": {"S": runs_index_pk(record.model)},
        "gsi1sk": {"S": runs_index_sk(record.started_at, record.run_id)},
        "kind": {"S": "run"},
        "status": {"S": record.status.value},
        "revision": {"N": str(revision)},
        "doc": {"S": record.model_dump_json()},
    }


def _read(table: str, model: str, run_id: str) -> tuple[RunRecord, int] | None:
    try:
        item = (
            client("dynamodb")
            .get_item(
                TableName=table, Key={"pk": {"S": run_pk(model)}, "sk": {"S": run_sk(run_id)}}, ConsistentRead=True
            )
            .get("Item")
        )
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "run read") from exc
    if not item:
        return None
    return RunRecord.model_validate_json(item["doc"]["S"]), int(item["revision"]["N"])


def get_run(table: str, model: str, run_id: str) -> RunRecord:
    found = _read(table, model, run_id)
    if found is None:
        raise NotFound(f"no run {run_id!r} of model {model!r}")
    return found[0]


def create_run(table: str, record: RunRecord) -> RunRecord:
    """Create the run; when it already exists (a redriven or repeated start) return it as stored."""
    try:
        client("dynamodb").put_item(
            TableName=table, Item=_item(record, 1), ConditionExpression="attribute_not_exists(pk)"
        )
    except (ClientError, BotoCoreError) as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise store_error(exc, "run write") from exc
        found = _read(table, record.model, record.run_id)
        if found is None:  # refused as existing, yet not there: the store is not answering straight
            raise StoreUnavailable("run write failed: the store's answers disagree; retry later") from exc
        return found[0]
    return record


def update_run(table: str, model: str, run_id: str, change: Callable[[RunRecord], RunRecord]) -> RunRecord:
    """Apply `change` to the stored record under the optimistic lock, retrying on a race."""
    for _ in range(MAX_ATTEMPTS):
        found = _read(table, model, run_id)
        if found is None:
            raise NotFound(f"no run {run_id!r} of model {model!r}")
        current, revision = found
        updated = change(current.model_copy(deep=True))
        try:
            client("dynamodb").put_item(
                TableName=table,
                Item=_item(updated, revision + 1),
                ConditionExpression="revision = :r",
                ExpressionAttributeValues={":r": {"N": str(revision)}},
            )
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                continue
            raise store_error(exc, "run write") from exc
        return updated
    raise Conflict(f"run {run_id}: too many concurrent updates")


def list_runs(table: str, model: str, limit: int = MAX_PAGE) -> list[RunRecord]:
    """The model's runs, newest first."""
    try:
        reply = client("dynamodb").query(
            TableName=table,
            KeyConditionExpression="pk = :p AND begins_with(sk, :r)",
            ExpressionAttributeValues={":p": {"S": run_pk(model)}, ":r": {"S": "RUN#"}},
            Limit=limit,
        )
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "run read") from exc
    runs = [RunRecord.model_validate_json(i["doc"]["S"]) for i in reply.get("Items", [])]
    return sorted(runs, key=lambda r: r.started_at, reverse=True)


_INDEX_SK = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z#[A-Za-z0-9_.-]{1,80}$"


def list_runs_page(
    table: str, model: str, limit: int, next_token: str | None = None
) -> tuple[list[RunRecord], str | None]:
    """Up to `limit` of the model's runs, newest start first, after the run `next_token` names, and
    the next page's token (None when none is left). The model's index partition is in start-time
    order, so the pages are that order. A token of another listing: InvalidInput."""
    kind = f"runs:{model}"
    key, values = "gsi1pk = :p", {":p": {"S": runs_index_pk(model)}}
    if next_token is not None:
        key += " AND gsi1sk < :after"
        values[":after"] = {"S": pages.decode(kind, next_token, _INDEX_SK)}
    params: dict[str, Any] = {
        "TableName": table,
        "IndexName": "gsi1",
        "KeyConditionExpression": key,
        "ExpressionAttributeValues": values,
        "ScanIndexForward": False,
    }
    items, more = pages.query_page(params, limit, "run")
    runs = [RunRecord.model_validate_json(i["doc"]["S"]) for i in items]
    return runs, pages.encode(kind, items[-1]["gsi1sk"]["S"]) if more and items else None
