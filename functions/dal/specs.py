"""Training specs in the metadata table: versioned, never deleted (see functions/models/specs.py)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.dal.audit import audit_put
from functions.dal.clients import client, error_code, store_error
from functions.models.audit import Actor, AuditEvent
from functions.models.errors import Conflict, NotFound
from functions.models.specs import (
    SPEC_HEAD_SK,
    SPECS_INDEX_PK,
    SpecRecord,
    TrainingSpec,
    spec_pk,
    spec_version_sk,
)

MAX_ATTEMPTS = 5


def _head(table: str, name: str) -> int:
    try:
        item = (
            client("dynamodb")
            .get_item(TableName=table, Key={"pk": {"S": spec_pk(name)}, "sk": {"S": SPEC_HEAD_SK}}, ConsistentRead=True)
            .get("Item")
        )
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "spec read") from exc
    return int(item["latest_version"]["N"]) if item else 0


def put_spec(table: str, spec: TrainingSpec, created_by: str, now: Any) -> SpecRecord:
    """Store `spec` as the next version of its name (conditional on the head's counter)."""
    for _ in range(MAX_ATTEMPTS):
        latest = _head(table, spec.name)
        record = SpecRecord(name=spec.name, version=latest + 1, spec=spec, created_at=now, created_by=created_by)
        head_condition = "attribute_not_exists(pk)" if latest == 0 else "latest_version = :prev"
        head_values: dict[str, Any] = {":n": {"N": str(record.version)}, ":m": {"S": spec.model}}
        if latest:
            head_values[":prev"] = {"N": str(latest)}
        items = [
            {
                "Update": {
                    "TableName": table,
                    "Key": {"pk": {"S": spec_pk(spec.name)}, "sk": {"S": SPEC_HEAD_SK}},
                    "UpdateExpression": "SET latest_version = :n, model = :m",
                    "ConditionExpression": head_condition,
                    "ExpressionAttributeValues": head_values,
                }
            },
            audit_put(
                table,
                AuditEvent.of(
                    Actor(identity=created_by or "unknown", correlation_id=""),
                    "spec.put",
                    f"spec/{spec.name}",
                    version=record.version,
                    after={"model": spec.model, "dataset": spec.dataset, "estimator": spec.estimator.name},
                ),
            ),
            {
                "Put": {
                    "TableName": table,
                    "Item": {
                        "pk": {"S": spec_pk(spec.name)},
                        "sk": {"S": spec_version_sk(record.version)},
                        "gsi1pk": {"S": SPECS_INDEX_PK},
                        "gsi1sk": {"S": f"{spec.name}#{record.version:08d}"},
                        "kind": {"S": "spec"},
                        "doc": {"S": record.model_dump_json()},
                    },
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ]
        try:
            client("dynamodb").transact_write_items(TransactItems=items)
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) == "TransactionCanceledException":
                continue  # another writer took this number: read the counter again
            raise store_error(exc, "spec write") from exc
        return record
    raise Conflict(f"spec {spec.name}: too many concurrent writers, try again")


def get_spec(table: str, name: str, version: int | None = None) -> SpecRecord:
    """One version of a spec (the latest when `version` is None); NotFound when absent."""
    number = version if version is not None else _head(table, name)
    if number < 1:
        raise NotFound(f"no training spec named {name!r}")
    try:
        item = (
            client("dynamodb")
            .get_item(
                TableName=table,
                Key={"pk": {"S": spec_pk(name)}, "sk": {"S": spec_version_sk(number)}},
                ConsistentRead=True,
            )
            .get("Item")
        )
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "spec read") from exc
    if not item:
        raise NotFound(f"training spec {name!r} has no version {number}")
    return SpecRecord.model_validate_json(item["doc"]["S"])


def list_spec_versions(table: str, name: str) -> list[SpecRecord]:
    try:
        reply = client("dynamodb").query(
            TableName=table,
            KeyConditionExpression="pk = :p AND begins_with(sk, :v)",
            ExpressionAttributeValues={":p": {"S": spec_pk(name)}, ":v": {"S": "VERSION#"}},
        )
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "spec read") from exc
    return [SpecRecord.model_validate_json(i["doc"]["S"]) for i in reply.get("Items", [])]
