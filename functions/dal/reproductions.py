"""Reproduction records in the metadata table (key layout: functions/models/reproduction.py), and
the asynchronous invoke of the reproduce function.

Every write carries its audit event in the same TransactWriteItems call. `start` and `finish` are
conditional, so a reproduction is started once while one runs and finished once, by its own id."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.dal.audit import audit_put
from functions.dal.clients import client, error_code, store_error
from functions.models.audit import AuditEvent
from functions.models.errors import Conflict
from functions.models.reproduction import Reproduction, ReproductionStatus, reproduction_pk, reproduction_sk


def _key(model: str, version: int) -> dict[str, Any]:
    return {"pk": {"S": reproduction_pk(model)}, "sk": {"S": reproduction_sk(version)}}


def _item(record: Reproduction) -> dict[str, Any]:
    return {
        **_key(record.model, record.version),
        "kind": {"S": "reproduction"},
        "reproduction_id": {"S": record.reproduction_id},
        "status": {"S": record.status.value},
        "started": {"N": str(int(record.requested_at.timestamp()))},
        "doc": {"S": record.model_dump_json(exclude={"joined"})},
    }


def get(table: str, model: str, version: int) -> Reproduction | None:
    """The version's latest reproduction, or None."""
    try:
        item = client("dynamodb").get_item(TableName=table, Key=_key(model, version), ConsistentRead=True).get("Item")
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "reproduction read") from exc
    return Reproduction.model_validate_json(item["doc"]["S"]) if item else None


def _write(items: list[dict[str, Any]], what: str) -> None:
    try:
        client("dynamodb").transact_write_items(TransactItems=items)
    except (ClientError, BotoCoreError) as exc:
        reasons = exc.response.get("CancellationReasons", []) if isinstance(exc, ClientError) else []
        if error_code(exc) == "TransactionCanceledException" and any(
            r.get("Code") == "ConditionalCheckFailed" for r in reasons[:1]
        ):
            raise Conflict(f"{what} conflicts with the stored reproduction") from exc
        raise store_error(exc, what) from exc


def start(table: str, record: Reproduction, event: AuditEvent, *, stale_before: int) -> None:
    """Store `record` (RUNNING) unless the version has a reproduction RUNNING that started at or
    after `stale_before` (epoch s): then Conflict, and nothing is written."""
    put = {
        "Put": {
            "TableName": table,
            "Item": _item(record),
            "ConditionExpression": "attribute_not_exists(pk) OR #s <> :running OR #t < :stale",
            "ExpressionAttributeNames": {"#s": "status", "#t": "started"},
            "ExpressionAttributeValues": {
                ":running": {"S": ReproductionStatus.RUNNING.value},
                ":stale": {"N": str(stale_before)},
            },
        }
    }
    _write([put, audit_put(table, event)], "reproduction start")


def finish(table: str, record: Reproduction, event: AuditEvent) -> None:
    """Store the outcome of the RUNNING reproduction `record.reproduction_id`: Conflict when the
    item no longer holds it RUNNING (finished by another delivery, or superseded)."""
    put = {
        "Put": {
            "TableName": table,
            "Item": _item(record),
            "ConditionExpression": "reproduction_id = :id AND #s = :running",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {
                ":id": {"S": record.reproduction_id},
                ":running": {"S": ReproductionStatus.RUNNING.value},
            },
        }
    }
    _write([put, audit_put(table, event)], "reproduction result write")


def invoke_async(function_name: str, payload: dict[str, Any]) -> None:
    """Invoke the reproduce function asynchronously (retraining outlives an API request)."""
    try:
        client("lambda").invoke(
            FunctionName=function_name, InvocationType="Event", Payload=json.dumps(payload).encode()
        )
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "reproduction start") from exc
