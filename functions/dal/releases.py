"""Registry writes that change a version's status or a model's aliases, always as one
DynamoDB transaction with their audit events.

Guards, all checked by DynamoDB rather than by a read before the write:
- a status change is conditional on the status it was read with (`#status = :from`), so two
  writers that read the same status cannot both move it;
- an alias move is conditional on ModelRecord.revision (optimistic lock) and bumps it, so a
  stale writer gets a Conflict instead of silently overwriting;
- the audit event is a `Put` with attribute_not_exists(pk) in the same transaction.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from functions.dal.audit import audit_put
from functions.dal.clients import THROTTLING_CODES, client, error_code, is_missing, store_error
from functions.dal.registry import from_item
from functions.models.approvals import CanaryMetrics
from functions.models.audit import AuditEvent
from functions.models.errors import Conflict, IntegrityError, NotFound, Throttled
from functions.models.registry import (
    MODEL_SK,
    ModelRecord,
    ModelVersion,
    VersionStatus,
    model_pk,
    version_sk,
)

_SERIALIZER = TypeSerializer()
_CHUNK = 1024 * 1024


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def attr(value: Any) -> dict[str, Any]:
    """A Python value as a low-level DynamoDB attribute value."""
    return _SERIALIZER.serialize(_plain(value))


def when(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def transition_item(
    table: str,
    version: ModelVersion,
    to: VersionStatus,
    now: datetime,
    *,
    reason: str = "",
    production_periods: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Update `version` from the status it was read with to `to`; fails if it changed since."""
    sets = ["#status = :to", "updated_at = :now"]
    values: dict[str, Any] = {
        ":to": attr(to.value),
        ":from": attr(version.status.value),
        ":now": attr(when(now)),
    }
    if reason:
        sets.append("reasons = list_append(if_not_exists(reasons, :empty), :reason)")
        values[":empty"] = {"L": []}
        values[":reason"] = attr([f"{to.value}: {reason}"])
    if production_periods is not None:
        sets.append("production_periods = :periods")
        values[":periods"] = attr(production_periods)
    return {
        "Update": {
            "TableName": table,
            "Key": {"pk": attr(model_pk(version.model)), "sk": attr(version_sk(version.version))},
            "UpdateExpression": "SET " + ", ".join(sets),
            "ConditionExpression": "attribute_exists(pk) AND #status = :from",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": values,
        }
    }


def alias_item(table: str, before: ModelRecord, after: ModelRecord) -> dict[str, Any]:
    """Move the aliases from `before` to `after` if the record's revision is still before's."""
    if after.revision != before.revision + 1:
        raise ValueError("an alias move bumps the revision by one")
    condition = "#rev = :old"
    if before.revision == 0:  # a record written without a revision counts as revision 0
        condition = "(attribute_not_exists(#rev) OR #rev = :old)"
    return {
        "Update": {
            "TableName": table,
            "Key": {"pk": attr(model_pk(before.name)), "sk": attr(MODEL_SK)},
            "UpdateExpression": (
                "SET production_version = :prod, candidate_version = :cand, candidate_weight = :weight, "
                "shadow = :shadow, previous_production = :prev, #rev = :new, updated_at = :now"
            ),
            "ConditionExpression": f"attribute_exists(pk) AND {condition}",
            "ExpressionAttributeNames": {"#rev": "revision"},
            "ExpressionAttributeValues": {
                ":prod": attr(after.production_version),
                ":cand": attr(after.candidate_version),
                ":weight": attr(after.candidate_weight),
                ":shadow": attr(after.shadow),
                ":prev": attr(after.previous_production),
                ":new": attr(after.revision),
                ":old": attr(before.revision),
                ":now": attr(when(after.updated_at)),
            },
        }
    }


def commit(items: list[dict[str, Any]], events: list[AuditEvent], *, metadata_table: str, what: str) -> None:
    """Write `items` and the audit `events` as one transaction, or nothing.

    Raises Conflict naming `what` when any guard fails (a concurrent writer got there first).
    """
    if not events:
        raise ValueError("every registry change carries at least one audit event")
    transaction = [*items, *(audit_put(metadata_table, e) for e in events)]
    try:
        client("dynamodb").transact_write_items(TransactItems=transaction)
    except ClientError as exc:
        code = error_code(exc)
        if code == "TransactionCanceledException":
            reasons = [r.get("Code", "None") for r in exc.response.get("CancellationReasons", [])]
            if not reasons or any(r in ("ConditionalCheckFailed", "TransactionConflict") for r in reasons):
                raise Conflict(f"{what}: the registry changed since it was read; read again and retry") from exc
            if any(r in THROTTLING_CODES or r == "ThrottlingError" for r in reasons):
                raise Throttled(f"{what} was throttled; retry shortly") from exc
        if code in ("TransactionConflictException", "ConditionalCheckFailedException"):
            raise Conflict(f"{what}: a concurrent change got there first; read again and retry") from exc
        raise store_error(exc, what) from exc
    except BotoCoreError as exc:  # no answer: nothing is known to be written; the retry re-reads
        raise store_error(exc, what) from exc


def list_versions(table: str, model: str) -> list[ModelVersion]:
    """Every version of `model`, oldest first (consistent read)."""
    params: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "pk = :p AND begins_with(sk, :v)",
        "ExpressionAttributeValues": {":p": attr(model_pk(model)), ":v": attr("VERSION#")},
        "ConsistentRead": True,
    }
    versions: list[ModelVersion] = []
    try:
        while True:
            reply = client("dynamodb").query(**params)
            versions.extend(ModelVersion.model_validate(from_item(i)) for i in reply.get("Items", []))
            if "LastEvaluatedKey" not in reply:
                return versions
            params["ExclusiveStartKey"] = reply["LastEvaluatedKey"]
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "registry read") from exc


def artifact_sha256(uri: str) -> str:
    """The sha256 of the stored bytes at s3://bucket/key (moto verifies no checksums: we do)."""
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise IntegrityError(f"not an S3 artifact uri: {uri}")
    bucket, key = uri[5:].split("/", 1)
    digest = hashlib.sha256()
    try:
        body = client("s3").get_object(Bucket=bucket, Key=key)["Body"]
        for chunk in iter(lambda: body.read(_CHUNK), b""):
            digest.update(chunk)
    except ClientError as exc:
        if is_missing(exc):
            raise NotFound(f"artifact {uri} is missing") from exc
        raise store_error(exc, "artifact read") from exc
    except BotoCoreError as exc:
        raise store_error(exc, "artifact read") from exc
    return digest.hexdigest()


def canary_metrics(
    namespace: str,
    service: str,
    model: str,
    version: int,
    start: datetime,
    end: datetime,
    latency_stat: str = "p99",
) -> CanaryMetrics:
    """The candidate's serving metrics over [start, end] from CloudWatch (None where no data).

    Serving (functions/handlers/predict.py) publishes, per prediction, with dimensions
    service/model/version: `Latency` (ms; its SampleCount is the successful requests) and, on a
    failure, `ServerErrors`; `Quality` (Average) where labels arrived is read if present.
    """
    dims = [
        {"Name": "service", "Value": service},
        {"Name": "model", "Value": model},
        {"Name": "version", "Value": str(version)},
    ]
    period = max(60, int((end - start).total_seconds()) // 60 * 60 or 60)

    def query(id_: str, name: str, stat: str) -> dict[str, Any]:
        return {
            "Id": id_,
            "MetricStat": {
                "Metric": {"Namespace": namespace, "MetricName": name, "Dimensions": dims},
                "Period": period,
                "Stat": stat,
            },
            "ReturnData": True,
        }

    queries = [
        query("ok", "Latency", "SampleCount"),
        query("latency", "Latency", latency_stat),
        query("errors", "ServerErrors", "Sum"),
        query("quality", "Quality", "Average"),
    ]
    try:
        reply = client("cloudwatch").get_metric_data(MetricDataQueries=queries, StartTime=start, EndTime=end)
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "metrics read") from exc
    values = {r["Id"]: [float(v) for v in r.get("Values", [])] for r in reply.get("MetricDataResults", [])}
    ok, errors = values.get("ok", []), values.get("errors", [])
    requests = int(sum(ok) + sum(errors)) if (ok or errors) else None
    latencies, quality = values.get("latency", []), values.get("quality", [])
    return CanaryMetrics(
        requests=requests,
        error_rate=(sum(errors) / requests) if requests else None,
        latency_ms=max(latencies) if latencies else None,
        quality=min(quality) if quality else None,
    )
