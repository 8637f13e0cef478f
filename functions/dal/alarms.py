"""CloudWatch alarms of one model (functions/logic/model_alarms.py decides which): create or update,
read which exist, delete. Every name starts with the stack's model-alarm prefix, the only alarm names
the functions' grant allows."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.dal.clients import client, error_code, store_error


def put(alarm: dict[str, Any]) -> None:
    """PutMetricAlarm: creates the alarm, or replaces the definition of the one of that name."""
    try:
        client("cloudwatch").put_metric_alarm(**alarm)
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "model alarm write") from exc


def existing(names: list[str]) -> set[str]:
    """Which of `names` exist (at most 100 names, one call)."""
    try:
        reply = client("cloudwatch").describe_alarms(AlarmNames=names, AlarmTypes=["MetricAlarm"], MaxRecords=100)
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "model alarm read") from exc
    return {a["AlarmName"] for a in reply.get("MetricAlarms", [])} & set(names)


def delete(names: list[str]) -> None:
    """DeleteAlarms; names already gone are not an error."""
    if not names:
        return
    try:
        client("cloudwatch").delete_alarms(AlarmNames=names)
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFound":
            return
        raise store_error(exc, "model alarm delete") from exc
    except BotoCoreError as exc:
        raise store_error(exc, "model alarm delete") from exc
