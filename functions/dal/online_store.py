"""Writes to the online feature store (item layout: functions/models/online.py); reads live with
the prediction-time lookups.

Every entity's entry of a view is written by its own conditional UpdateItem that sets only that
view's attribute (`SET #v = :entry`), so views over the same entity share its item without one
view's writes touching another's entry: BatchWriteItem takes no condition and replaces whole items,
and a transaction of 25 would be cancelled whole by one entry the store already holds newer. The
condition lets a write replace the stored entry only when its event time is newer, or the same
with a higher source version, so redelivered, out-of-order and concurrent materializations converge
to the newest row whatever order their writes land in. A failed condition is counted as "already
newer", not an error; throttling and other store failures are the typed errors of `store_error`
(after botocore's own retries), so the workflow's Retry can match them by name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.dal.clients import client, error_code, store_error
from functions.models.online import ATTR_EVENT_TIME_US, ATTR_SOURCE_VERSION, view_attribute

SET_ENTRY = "SET #v = :entry"
NEWER_WINS = (
    f"attribute_not_exists(#v) OR #v.{ATTR_EVENT_TIME_US} < :t "
    f"OR (#v.{ATTR_EVENT_TIME_US} = :t AND #v.{ATTR_SOURCE_VERSION} < :sv)"
)


@dataclass
class WriteCounts:
    written: int = 0
    skipped_older: int = 0  # the stored entry was newer (or the same row): left as it was
    requests: int = 0  # UpdateItem calls made (botocore's own retries not counted)


def write_latest(
    table: str, view: str, entries: Iterable[tuple[str, dict[str, Any]]], counts: WriteCounts | None = None
) -> WriteCounts:
    """Write each (pk, entry) of `view` (the entry's map in DynamoDB's attribute-value form) unless
    the store holds a newer row of that view for the entity. `counts` (when given) is updated as
    entries land, so a caller that sees an error still knows what was written before it."""
    counts = counts if counts is not None else WriteCounts()
    dynamodb = client("dynamodb")
    names = {"#v": view_attribute(view)}
    for pk, entry in entries:
        values = {
            ":entry": {"M": entry},
            ":t": entry[ATTR_EVENT_TIME_US],
            ":sv": entry[ATTR_SOURCE_VERSION],
        }
        counts.requests += 1
        try:
            dynamodb.update_item(
                TableName=table,
                Key={"pk": {"S": pk}},
                UpdateExpression=SET_ENTRY,
                ConditionExpression=NEWER_WINS,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                counts.skipped_older += 1
                continue
            raise store_error(exc, "online feature write") from exc
        counts.written += 1
    return counts
