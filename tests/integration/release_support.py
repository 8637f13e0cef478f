"""Test support for the release/approval tests: register versions the way the lifecycle does
(a version item, the model record, an audit event, one transaction) and upload their artifact."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import boto3

from functions.dal.audit import audit_put
from functions.dal.releases import attr
from functions.models.audit import Actor, AuditEvent, model_target
from functions.models.registry import (
    MODEL_SK,
    MODELS_INDEX_PK,
    Artifact,
    Feature,
    ModelRecord,
    ModelVersion,
    VersionStatus,
    model_pk,
    version_sk,
)
from tests.integration.conftest import Stores

TRAINER = Actor(identity="arn:aws:iam::123456789012:user/trainer", correlation_id="train-1")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _item(pk: str, sk: str, body: dict[str, Any], **extra: str) -> dict[str, Any]:
    item = {k: attr(v) for k, v in body.items()}
    item.update({"pk": attr(pk), "sk": attr(sk)})
    item.update({k: attr(v) for k, v in extra.items()})
    return item


def register(
    stores: Stores,
    model: str,
    *,
    status: VersionStatus = VersionStatus.PENDING_APPROVAL,
    started_by: str = TRAINER.identity,
    artifact: bytes | None = None,
    metrics: dict[str, float] | None = None,
) -> ModelVersion:
    """A new version of `model` (and the model record on first use), as registration writes it."""
    ddb = boto3.client("dynamodb")
    existing = ddb.get_item(
        TableName=stores.registry_table, Key={"pk": attr(model_pk(model)), "sk": attr(MODEL_SK)}, ConsistentRead=True
    ).get("Item")
    latest = int(existing["latest_version"]["N"]) if existing else 0
    number = latest + 1
    data = artifact if artifact is not None else f"{model}-{number}-onnx".encode()
    key = f"models/{model}/{number}/model.onnx"
    boto3.client("s3").put_object(Bucket=stores.artifacts_bucket, Key=key, Body=data)
    version = ModelVersion(
        model=model,
        version=number,
        status=status,
        created_at=NOW,
        updated_at=NOW,
        task="classification",
        features=[Feature(name="x", type="float")],
        target="y",
        artifacts={
            "onnx": Artifact(
                uri=f"s3://{stores.artifacts_bucket}/{key}",
                sha256=hashlib.sha256(data).hexdigest(),
                size_bytes=len(data),
            )
        },
        metrics=metrics or {"auc": 0.8},
        primary_metric="auc",
        started_by=started_by,
        run_id=f"run-{model}-{number}",
    )
    items: list[dict[str, Any]] = [
        {
            "Put": {
                "TableName": stores.registry_table,
                "Item": _item(model_pk(model), version_sk(number), version.model_dump(mode="json")),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
    ]
    if existing:
        items.append(
            {
                "Update": {
                    "TableName": stores.registry_table,
                    "Key": {"pk": attr(model_pk(model)), "sk": attr(MODEL_SK)},
                    "UpdateExpression": "SET latest_version = :n",
                    "ConditionExpression": "latest_version = :l",
                    "ExpressionAttributeValues": {":n": attr(number), ":l": attr(latest)},
                }
            }
        )
    else:
        record = ModelRecord.model_validate({"name": model, "latest_version": 1, "created_at": NOW, "updated_at": NOW})
        items.append(
            {
                "Put": {
                    "TableName": stores.registry_table,
                    "Item": _item(
                        model_pk(model), MODEL_SK, record.model_dump(mode="json"), gsi1pk=MODELS_INDEX_PK, gsi1sk=model
                    ),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        )
    event = AuditEvent.of(
        TRAINER, "version.register", model_target(model), version=number, after={"status": status.value}
    )
    items.append(audit_put(stores.metadata_table, event))
    ddb.transact_write_items(TransactItems=items)
    return version
