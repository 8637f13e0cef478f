"""Training specs in the metadata table: versioned, never deleted (see functions/models/specs.py)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.dal.audit import audit_put
from functions.dal.clients import client, store_error
from functions.dal.versioned import counter_update, indexed_version, put_new, read_counter, read_item, write_next
from functions.models.audit import Actor, AuditEvent
from functions.models.errors import NotFound
from functions.models.specs import (
    SPEC_HEAD_SK,
    SPECS_INDEX_PK,
    SpecRecord,
    TrainingSpec,
    spec_pk,
    spec_version_sk,
)


def _head(table: str, name: str) -> int:
    return read_counter(table, {"pk": {"S": spec_pk(name)}, "sk": {"S": SPEC_HEAD_SK}}, "spec read")


def put_spec(table: str, spec: TrainingSpec, created_by: str, now: Any) -> SpecRecord:
    """Store `spec` as the next version of its name (conditional on the head's counter)."""
    head = {"pk": {"S": spec_pk(spec.name)}, "sk": {"S": SPEC_HEAD_SK}}

    def build(number: int) -> tuple[list[dict[str, Any]], SpecRecord]:
        record = SpecRecord(name=spec.name, version=number, spec=spec, created_at=now, created_by=created_by)
        event = AuditEvent.of(
            Actor(identity=created_by or "unknown", correlation_id=""),
            "spec.put",
            f"spec/{spec.name}",
            version=number,
            after={"model": spec.model, "dataset": spec.dataset, "estimator": spec.estimator.name},
        )
        version_item = indexed_version(
            spec_pk(spec.name),
            spec_version_sk(number),
            index_pk=SPECS_INDEX_PK,
            name=spec.name,
            number=number,
            kind="spec",
            doc=record.model_dump_json(),
        )
        items = [
            counter_update(
                table, head, "latest_version", number - 1, also_set="model = :m", values={":m": {"S": spec.model}}
            ),
            audit_put(table, event),
            put_new(table, version_item),
        ]
        return items, record

    return write_next(
        lambda: _head(table, spec.name),
        build,
        what="spec write",
        busy=f"spec {spec.name}: too many concurrent writers, try again",
    )


def get_spec(table: str, name: str, version: int | None = None) -> SpecRecord:
    """One version of a spec (the latest when `version` is None); NotFound when absent."""
    number = version if version is not None else _head(table, name)
    if number < 1:
        raise NotFound(f"no training spec named {name!r}")
    item = read_item(table, {"pk": {"S": spec_pk(name)}, "sk": {"S": spec_version_sk(number)}}, "spec read")
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
