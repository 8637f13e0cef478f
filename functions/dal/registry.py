"""Registry table access (models, versions, aliases). The only module that reads registry items.

Writes that change status or aliases belong to the release logic; this module reads and
creates versions.
"""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from functions.dal.clients import client
from functions.models.errors import StoreUnavailable
from functions.models.registry import MODEL_SK, ModelRecord, ModelVersion, model_pk, version_sk

_DESERIALIZER = TypeDeserializer()


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
    except ClientError as exc:
        raise StoreUnavailable(f"registry read failed: {exc.response['Error']['Code']}") from exc
    item = reply.get("Item")
    return from_item(item) if item else None


def get_model(table: str, name: str) -> ModelRecord | None:
    item = _get(table, model_pk(name), MODEL_SK)
    return ModelRecord.model_validate(item) if item else None


def get_version(table: str, name: str, version: int) -> ModelVersion | None:
    item = _get(table, model_pk(name), version_sk(version))
    return ModelVersion.model_validate(item) if item else None
