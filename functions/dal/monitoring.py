"""Monitoring stores: captured objects and compacted Parquet in the data bucket, drift reports in
the artifacts bucket, check summaries and retraining decisions in the metadata table.

Layout:
    data bucket
        captures/<model>/dt=YYYY-MM-DD/hour=HH/<epoch ms>-<uuid>.jsonl.gz          (serving writes)
        monitoring/<model>/compacted/dt=YYYY-MM-DD/hour=HH.parquet                  (one per closed hour)
        monitoring/<model>/rejected/dt=YYYY-MM-DD/hour=HH.jsonl.gz                  (rows that did not fit)
    artifacts bucket
        reports/drift/<model>/<window end %Y%m%dT%H%M%SZ>-<check id>.json | .html
    metadata table
        pk=MONITOR#<model>  sk=CHECK#<created iso>#<check id>    check summary (gsi1pk=DRIFT_CHECKS)
        pk=MONITOR#<model>  sk=RETRAIN#<decided iso>#<check id>  retraining decision (gsi1pk=RETRAINING)
        pk=MONITOR#<model>  sk=SETTINGS                          drift settings (config + retraining policy)
        pk=DRIFT_ROUNDS     sk=<round id: s%Y%m%dT%H%M%SZ>          a scheduled round's summary (string sets of
                                                                 checked, skipped, "model<TAB>reason" failed)
        pk=idempotency#drift-check  sk=<fn>#<hash>                Powertools records: one per model and check id
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from functions.dal.clients import client, is_missing, store_error
from functions.models.drift import DriftReport, DriftRound, DriftSettings, FleetFailure, RetrainingDecision

T = TypeVar("T")

CAPTURES_PREFIX = "captures/"
MONITORING_PREFIX = "monitoring/"
DRIFT_REPORTS_PREFIX = "reports/drift/"
CHECKS_INDEX_PK = "DRIFT_CHECKS"
RETRAINING_INDEX_PK = "RETRAINING"
ROUNDS_PK = "DRIFT_ROUNDS"
MAX_PAGE = 100


def hour_partition(moment: datetime) -> str:
    return f"dt={moment:%Y-%m-%d}/hour={moment:%H}"


def capture_prefix(model: str, hour: datetime) -> str:
    return f"{CAPTURES_PREFIX}{model}/{hour_partition(hour)}/"


def feedback_prefix(model: str, day: date) -> str:
    return f"feedback/{model}/dt={day:%Y-%m-%d}/"


def compacted_key(model: str, hour: datetime) -> str:
    return f"{MONITORING_PREFIX}{model}/compacted/{hour_partition(hour)}.parquet"


def rejected_key(model: str, hour: datetime) -> str:
    return f"{MONITORING_PREFIX}{model}/rejected/{hour_partition(hour)}.jsonl.gz"


def report_key(model: str, window_end: datetime, check_id: str, suffix: str) -> str:
    return f"{DRIFT_REPORTS_PREFIX}{model}/{window_end:%Y%m%dT%H%M%SZ}-{check_id}.{suffix}"


def list_keys(bucket: str, prefix: str) -> list[str]:
    """Every key under a prefix, in key order."""
    keys: list[str] = []
    try:
        for page in client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
    except ClientError as exc:
        raise store_error(exc, "monitoring object listing") from exc
    return sorted(keys)


def head_metadata(bucket: str, key: str) -> dict[str, str] | None:
    """The object's user metadata, or None when it does not exist.

    Existence is asked with a prefix listing first: the drift role may list only under its
    prefixes, and without s3:ListBucket on the key S3 answers a missing object with 403, not 404.
    """
    if key not in list_keys(bucket, key):
        return None
    try:
        reply = client("s3").head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if is_missing(exc):
            return None
        raise store_error(exc, "monitoring object head") from exc
    return dict(reply.get("Metadata", {}))


def read_objects(bucket: str, keys: list[str]) -> Iterator[bytes]:
    """The bytes of each key in turn (one object in memory at a time)."""
    for key in keys:
        try:
            yield client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if is_missing(exc):
                continue  # expired by the lifecycle rule between list and get
            raise store_error(exc, "monitoring object read") from exc


def download(bucket: str, key: str, path: Path) -> Path:
    """Stream an object to a local file (the drift Lambda's /tmp), never whole in memory."""
    try:
        client("s3").download_file(bucket, key, str(path))
    except ClientError as exc:
        raise store_error(exc, "monitoring object download") from exc
    return path


def put(bucket: str, key: str, body: bytes, content_type: str, metadata: dict[str, str] | None = None) -> str:
    """Write an object; returns its s3 uri."""
    try:
        client("s3").put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, Metadata=metadata or {})
    except ClientError as exc:
        raise store_error(exc, "monitoring object write") from exc
    return f"s3://{bucket}/{key}"


def put_check_summary(table: str, report: DriftReport, json_uri: str, html_uri: str) -> None:
    created = report.created_at.isoformat()
    summary = {
        "check_id": report.check_id,
        "model": report.model,
        "version": report.version,
        "verdict": report.verdict.value,
        "reason": report.reason,
        "row_count": report.row_count,
        "drift_share": report.drift_share,
        "drifted_features": report.drifted_features,
        "window_start": report.window_start.isoformat() if report.window_start else None,
        "window_end": report.window_end.isoformat() if report.window_end else None,
        "created_at": created,
        "report_json": json_uri,
        "report_html": html_uri,
        # the primary metric on labelled traffic, when the check measured one (the drift history chart)
        "performance_value": (
            report.performance.metrics[0].value if report.performance and report.performance.metrics else None
        ),
    }
    _put_item(
        table,
        {
            "pk": {"S": f"MONITOR#{report.model}"},
            "sk": {"S": f"CHECK#{created}#{report.check_id}"},
            "gsi1pk": {"S": CHECKS_INDEX_PK},
            "gsi1sk": {"S": f"{created}#{report.model}"},
            "kind": {"S": "drift_check"},
            "verdict": {"S": report.verdict.value},
            "doc": {"S": json.dumps(summary)},
        },
    )


def put_decision(table: str, decision: RetrainingDecision) -> None:
    decided = decision.decided_at.isoformat()
    _put_item(
        table,
        {
            "pk": {"S": f"MONITOR#{decision.model}"},
            "sk": {"S": f"RETRAIN#{decided}#{decision.check_id}"},
            "gsi1pk": {"S": RETRAINING_INDEX_PK},
            "gsi1sk": {"S": f"{decided}#{decision.model}"},
            "kind": {"S": "retraining_decision"},
            "action": {"S": decision.action},
            "doc": {"S": decision.model_dump_json()},
        },
    )


def put_settings(table: str, model: str, settings: DriftSettings) -> None:
    _put_item(
        table,
        {
            "pk": {"S": f"MONITOR#{model}"},
            "sk": {"S": "SETTINGS"},
            "kind": {"S": "drift_settings"},
            "doc": {"S": settings.model_dump_json()},
        },
    )


def get_settings(table: str, model: str) -> DriftSettings | None:
    try:
        item = (
            client("dynamodb")
            .get_item(TableName=table, Key={"pk": {"S": f"MONITOR#{model}"}, "sk": {"S": "SETTINGS"}})
            .get("Item")
        )
    except ClientError as exc:
        raise store_error(exc, "drift settings read") from exc
    return DriftSettings.model_validate_json(item["doc"]["S"]) if item else None


def _put_item(table: str, item: dict[str, Any]) -> None:
    try:
        client("dynamodb").put_item(TableName=table, Item=item)
    except ClientError as exc:
        raise store_error(exc, "monitoring record write") from exc


def _query(table: str, model: str, sk_prefix: str, limit: int) -> list[dict[str, Any]]:
    try:
        reply = client("dynamodb").query(
            TableName=table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :sk)",
            ExpressionAttributeValues={":pk": {"S": f"MONITOR#{model}"}, ":sk": {"S": sk_prefix}},
            ScanIndexForward=False,
            Limit=limit,
        )
    except ClientError as exc:
        raise store_error(exc, "monitoring record query") from exc
    return list(reply.get("Items", []))


def recent_decisions(table: str, model: str, limit: int = MAX_PAGE) -> list[RetrainingDecision]:
    """The model's latest retraining decisions, newest first."""
    return [RetrainingDecision.model_validate_json(i["doc"]["S"]) for i in _query(table, model, "RETRAIN#", limit)]


def recent_checks(table: str, model: str, limit: int = MAX_PAGE) -> list[dict[str, Any]]:
    """The model's latest check summaries, newest first."""
    return [json.loads(i["doc"]["S"]) for i in _query(table, model, "CHECK#", limit)]


def record_round(
    table: str,
    round_id: str,
    *,
    scheduled_at: datetime,
    updated_at: datetime,
    checked: list[str],
    skipped: list[str],
    failed: dict[str, str],
    final: bool,
) -> DriftRound:
    """Adds a page's outcomes to the round's item and returns the whole summary. Sets make it
    idempotent: a page recorded twice (a repeated round) adds nothing twice."""
    sets = {":checked": checked, ":skipped": skipped, ":failed": [f"{m}\t{r}" for m, r in failed.items()]}
    adds = [f"{name[1:]} {name}" for name, values in sets.items() if values]
    update = "SET scheduled_at = if_not_exists(scheduled_at, :at), updated_at = :now ADD pages :one"
    if final:
        update = update.replace("updated_at = :now", "updated_at = :now, complete = :true")
    if adds:
        update += ", " + ", ".join(adds)
    values: dict[str, Any] = {
        ":at": {"S": scheduled_at.isoformat()},
        ":now": {"S": updated_at.isoformat()},
        ":one": {"N": "1"},
        **{name: {"SS": sorted(set(v))} for name, v in sets.items() if v},
    }
    if final:
        values[":true"] = {"BOOL": True}
    try:
        reply = client("dynamodb").update_item(
            TableName=table,
            Key={"pk": {"S": ROUNDS_PK}, "sk": {"S": round_id}},
            UpdateExpression=update,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
    except ClientError as exc:
        raise store_error(exc, "drift round write") from exc
    return _round(reply["Attributes"])


def record_round_failure(
    table: str, round_id: str, *, scheduled_at: datetime, updated_at: datetime, reason: str
) -> None:
    """Marks the round as failed with its reason (the round's own step failed past its retries)."""
    try:
        client("dynamodb").update_item(
            TableName=table,
            Key={"pk": {"S": ROUNDS_PK}, "sk": {"S": round_id}},
            UpdateExpression="SET scheduled_at = if_not_exists(scheduled_at, :at), updated_at = :now, round_error = :e",
            ExpressionAttributeValues={
                ":at": {"S": scheduled_at.isoformat()},
                ":now": {"S": updated_at.isoformat()},
                ":e": {"S": reason},
            },
        )
    except ClientError as exc:
        raise store_error(exc, "drift round write") from exc


def _round(item: dict[str, Any]) -> DriftRound:
    checked = set(item.get("checked", {}).get("SS", []))
    failed: dict[str, str] = {}
    for entry in sorted(item.get("failed", {}).get("SS", [])):
        model, _, reason = entry.partition("\t")
        if model not in checked:  # a later delivery of the round checked it after all
            failed.setdefault(model, reason)
    return DriftRound(
        round_id=item["sk"]["S"],
        scheduled_at=datetime.fromisoformat(item["scheduled_at"]["S"]),
        updated_at=datetime.fromisoformat(item["updated_at"]["S"]),
        complete=item.get("complete", {}).get("BOOL", False),
        pages=int(item.get("pages", {}).get("N", "0")),
        checked=sorted(checked),
        skipped=sorted(item.get("skipped", {}).get("SS", [])),
        failed=[FleetFailure(model=m, reason=r) for m, r in sorted(failed.items())],
        error=item.get("round_error", {}).get("S", ""),
    )


def recent_rounds(table: str, limit: int = 10) -> list[DriftRound]:
    """The latest scheduled rounds, newest first."""
    try:
        reply = client("dynamodb").query(
            TableName=table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": ROUNDS_PK}},
            ScanIndexForward=False,
            Limit=limit,
            ConsistentRead=True,
        )
    except ClientError as exc:
        raise store_error(exc, "drift round read") from exc
    return [_round(i) for i in reply.get("Items", [])]


def invoke_async(function_name: str, payload: dict[str, Any]) -> None:
    """Invoke a Lambda asynchronously (the drift check outlives an API request)."""
    try:
        client("lambda").invoke(
            FunctionName=function_name, InvocationType="Event", Payload=json.dumps(payload).encode()
        )
    except ClientError as exc:
        raise store_error(exc, "drift check start") from exc


# -- idempotency (Powertools records in the metadata table) ------------------------------------------

DRIFT_IDEMPOTENCY_PK = "idempotency#drift-check"
