"""Materialization records and their chunks' done markers in the metadata table (key layout:
functions/models/materialize.py); a record's audited writes go with their audit event in one
TransactWriteItems call."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.dal.audit import audit_put
from functions.dal.clients import client, error_code, query_items, store_error
from functions.dal.versioned import create_audited, read_item
from functions.models.audit import AuditEvent
from functions.models.errors import Conflict
from functions.models.features import view_pk
from functions.models.materialize import (
    MAX_CHUNKS,
    ChunkResult,
    Materialization,
    chunk_prefix,
    chunk_sk,
    materialization_sk,
)

MAX_LISTED = 1_000


def _key(view: str, materialization_id: str) -> dict[str, Any]:
    return {"pk": {"S": view_pk(view)}, "sk": {"S": materialization_sk(materialization_id)}}


def _item(record: Materialization) -> dict[str, Any]:
    return {
        **_key(record.view, record.materialization_id),
        "kind": {"S": "materialization"},
        "status": {"S": record.status.value},
        "doc": {"S": record.model_dump_json(exclude={"joined"})},
    }


def get(table: str, view: str, materialization_id: str) -> Materialization | None:
    item = read_item(table, _key(view, materialization_id), "materialization read")
    return Materialization.model_validate_json(item["doc"]["S"]) if item else None


def create(table: str, record: Materialization, event: AuditEvent) -> None:
    """Store a new record with its audit event; Conflict (nothing written) when the id exists."""
    if not create_audited(table, _item(record), audit_put(table, event), "materialization write"):
        raise Conflict(f"materialization {record.materialization_id} exists")


def replace(table: str, record: Materialization, event: AuditEvent | None = None) -> None:
    """Store the record's new state (and its audit event when the change is audited)."""
    put = {"Put": {"TableName": table, "Item": _item(record), "ConditionExpression": "attribute_exists(pk)"}}
    items = [put] + ([audit_put(table, event)] if event is not None else [])
    try:
        client("dynamodb").transact_write_items(TransactItems=items)
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "materialization update") from exc


def list_for_view(table: str, view: str, limit: int = MAX_LISTED) -> list[Materialization]:
    """The view's materializations, newest request first."""
    params = {
        "TableName": table,
        "KeyConditionExpression": "pk = :p AND begins_with(sk, :m)",
        "ExpressionAttributeValues": {":p": {"S": view_pk(view)}, ":m": {"S": materialization_sk("")}},
    }
    items = query_items(params, limit, "materialization")
    records = [Materialization.model_validate_json(i["doc"]["S"]) for i in items]
    return sorted(records, key=lambda r: r.requested_at, reverse=True)


def get_chunk(table: str, view: str, view_version: int, source_version: int, index: int) -> ChunkResult | None:
    key = {"pk": {"S": view_pk(view)}, "sk": {"S": chunk_sk(view_version, source_version, index)}}
    item = read_item(table, key, "materialization chunk read")
    return ChunkResult.model_validate_json(item["doc"]["S"]) if item else None


def put_chunk(table: str, view: str, view_version: int, source_version: int, result: ChunkResult) -> None:
    """Mark the chunk done (the first marker stays: a concurrent duplicate's is dropped)."""
    item = {
        "pk": {"S": view_pk(view)},
        "sk": {"S": chunk_sk(view_version, source_version, result.index)},
        "kind": {"S": "materialization-chunk"},
        "doc": {"S": result.model_dump_json()},
    }
    try:
        client("dynamodb").put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(pk)")
    except (ClientError, BotoCoreError) as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            return
        raise store_error(exc, "materialization chunk write") from exc


def list_chunks(table: str, view: str, view_version: int, source_version: int) -> list[ChunkResult]:
    """Every done marker of (view, view version, source version), by chunk index."""
    params = {
        "TableName": table,
        "KeyConditionExpression": "pk = :p AND begins_with(sk, :c)",
        "ExpressionAttributeValues": {
            ":p": {"S": view_pk(view)},
            ":c": {"S": chunk_prefix(view_version, source_version)},
        },
        "ConsistentRead": True,
    }
    items = query_items(params, MAX_CHUNKS, "materialization chunk")
    return sorted((ChunkResult.model_validate_json(i["doc"]["S"]) for i in items), key=lambda r: r.index)


def invoke_worker(function_name: str, payload: dict[str, Any]) -> None:
    """Hand a step to the materialization function asynchronously (it outlives an API request)."""
    try:
        client("lambda").invoke(
            FunctionName=function_name, InvocationType="Event", Payload=json.dumps(payload).encode()
        )
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "materialization start") from exc
