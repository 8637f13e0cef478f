"""Registry table access (models, versions, aliases). The only module that reads registry items.

Writes that change status or aliases belong to the release logic; this module reads and
creates versions.

Besides the layout in functions/models/registry.py, registration keeps one marker per run:
    pk=MODEL#<name>  sk=RUN#<run id>   {version}   (a retried Register finds its version)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from functions.dal import pages
from functions.dal.clients import client, query_items, store_error
from functions.dal.versioned import Cancelled, put_new, transact
from functions.models.errors import Conflict
from functions.models.registry import (
    MODEL_SK,
    MODELS_INDEX_PK,
    NAME_PATTERN,
    ModelRecord,
    ModelVersion,
    model_pk,
    version_sk,
)

_DESERIALIZER = TypeDeserializer()
_SERIALIZER = TypeSerializer()
MAX_PAGE = 1000


def run_marker_sk(run_id: str) -> str:
    return f"RUN#{run_id}"


def to_attributes(record: ModelVersion | ModelRecord) -> dict[str, Any]:
    """A record as low-level DynamoDB attributes (floats as exact decimals), without keys."""
    plain = json.loads(record.model_dump_json(), parse_float=Decimal)
    return {k: _SERIALIZER.serialize(v) for k, v in plain.items()}


def version_item(version: ModelVersion) -> dict[str, Any]:
    return {
        "pk": {"S": model_pk(version.model)},
        "sk": {"S": version_sk(version.version)},
        **to_attributes(version),
    }


def model_item(record: ModelRecord) -> dict[str, Any]:
    return {
        "pk": {"S": model_pk(record.name)},
        "sk": {"S": MODEL_SK},
        "gsi1pk": {"S": MODELS_INDEX_PK},
        "gsi1sk": {"S": record.name},
        **to_attributes(record),
    }


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    """A low-level DynamoDB item as plain Python, without the key attributes."""
    plain = {k: _DESERIALIZER.deserialize(v) for k, v in item.items()}
    for key in ("pk", "sk", "gsi1pk", "gsi1sk"):
        plain.pop(key, None)
    return _undecimal(plain)


def _undecimal(value: Any) -> Any:
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _undecimal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_undecimal(v) for v in value]
    return value


def _get(table: str, pk: str, sk: str) -> dict[str, Any] | None:
    try:
        reply = client("dynamodb").get_item(
            TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
        )
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "registry read") from exc
    item = reply.get("Item")
    return from_item(item) if item else None


def get_model(table: str, name: str) -> ModelRecord | None:
    item = _get(table, model_pk(name), MODEL_SK)
    return ModelRecord.model_validate(item) if item else None


def get_version(table: str, name: str, version: int) -> ModelVersion | None:
    item = _get(table, model_pk(name), version_sk(version))
    return ModelVersion.model_validate(item) if item else None


def version_for_run(table: str, name: str, run_id: str) -> int | None:
    """The version a run registered, if it registered one."""
    item = _get(table, model_pk(name), run_marker_sk(run_id))
    return int(item["version"]) if item else None


def create_version(
    table: str,
    version: ModelVersion,
    *,
    expected_latest: int,
    new_model: ModelRecord | None,
    extra_items: list[dict[str, Any]] | None = None,
) -> None:
    """Write `version` as number `expected_latest + 1` in one transaction: the model's counter
    (conditional on still being `expected_latest`; or `new_model` created when it has none yet),
    the version (must not exist), the run's marker (must not exist) and `extra_items` (the audit
    event). Raises Conflict when any condition fails; nothing is written then."""
    if version.version != expected_latest + 1:
        raise ValueError("version number must follow the counter")
    if new_model is not None:
        counter: dict[str, Any] = put_new(table, model_item(new_model))
    else:
        counter = {
            "Update": {
                "TableName": table,
                "Key": {"pk": {"S": model_pk(version.model)}, "sk": {"S": MODEL_SK}},
                "UpdateExpression": "SET latest_version = :n, updated_at = :t",
                "ConditionExpression": "latest_version = :prev",
                "ExpressionAttributeValues": {
                    ":n": {"N": str(version.version)},
                    ":prev": {"N": str(expected_latest)},
                    ":t": {"S": version.created_at.isoformat()},
                },
            }
        }
    items = [
        counter,
        put_new(table, version_item(version)),
        put_new(
            table,
            {
                "pk": {"S": model_pk(version.model)},
                "sk": {"S": run_marker_sk(version.run_id)},
                "kind": {"S": "run-marker"},
                "version": {"N": str(version.version)},
            },
        ),
        *(extra_items or []),
    ]
    try:
        transact(items, "registry write")
    except Cancelled as exc:
        raise Conflict(f"registration of {version.model} v{version.version} lost a race") from exc


def _query(params: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    return query_items(params, limit, "registry")


def list_models(table: str, limit: int = MAX_PAGE) -> list[ModelRecord]:
    items = _query(
        {
            "TableName": table,
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :p",
            "ExpressionAttributeValues": {":p": {"S": MODELS_INDEX_PK}},
        },
        limit,
    )
    return [ModelRecord.model_validate(from_item(i)) for i in items]


def list_models_page(table: str, limit: int, next_token: str | None = None) -> tuple[list[ModelRecord], str | None]:
    """Up to `limit` models by name, after the position `next_token` names, and the token of the
    next page (None when none is left). A token that is not one of this listing: InvalidInput."""
    params: dict[str, Any] = {
        "TableName": table,
        "IndexName": "gsi1",
        "KeyConditionExpression": "gsi1pk = :p",
        "ExpressionAttributeValues": {":p": {"S": MODELS_INDEX_PK}},
    }
    if next_token is not None:
        after = pages.decode("models", next_token, NAME_PATTERN)
        params["ExclusiveStartKey"] = {
            "pk": {"S": model_pk(after)},
            "sk": {"S": MODEL_SK},
            "gsi1pk": {"S": MODELS_INDEX_PK},
            "gsi1sk": {"S": after},
        }
    items = _query(params, limit + 1)  # one more than asked: whether another page exists
    records = [ModelRecord.model_validate(from_item(i)) for i in items[:limit]]
    more = len(items) > limit
    return records, pages.encode("models", records[-1].name) if more and records else None


def iter_models(table: str, page_size: int = MAX_PAGE) -> Iterator[ModelRecord]:
    """Every model, page after page (nothing stops at a fixed size)."""
    token: str | None = None
    while True:
        records, token = list_models_page(table, page_size, token)
        yield from records
        if token is None:
            return


def list_versions_page(
    table: str, name: str, limit: int, next_token: str | None = None
) -> tuple[list[ModelVersion], str | None]:
    """Up to `limit` of the model's versions, oldest first, after the one `next_token` names, and
    the token of the next page (None when none is left). A token of another listing: InvalidInput."""
    params: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "pk = :p AND begins_with(sk, :v)",
        "ExpressionAttributeValues": {":p": {"S": model_pk(name)}, ":v": {"S": "VERSION#"}},
        "ConsistentRead": True,
    }
    kind = f"versions:{name}"
    if next_token is not None:
        after = int(pages.decode(kind, next_token, r"^[0-9]{1,8}$"))
        params["ExclusiveStartKey"] = {"pk": {"S": model_pk(name)}, "sk": {"S": version_sk(after)}}
    items = _query(params, limit + 1)
    versions = [ModelVersion.model_validate(from_item(i)) for i in items[:limit]]
    more = len(items) > limit
    return versions, pages.encode(kind, str(versions[-1].version)) if more and versions else None


def list_versions(table: str, name: str, limit: int = MAX_PAGE) -> list[ModelVersion]:
    """The model's versions, oldest first."""
    items = _query(
        {
            "TableName": table,
            "KeyConditionExpression": "pk = :p AND begins_with(sk, :v)",
            "ExpressionAttributeValues": {":p": {"S": model_pk(name)}, ":v": {"S": "VERSION#"}},
            "ConsistentRead": True,
        },
        limit,
    )
    return [ModelVersion.model_validate(from_item(i)) for i in items]
