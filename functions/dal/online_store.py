"""Writes to the online feature store (item layout: functions/models/online.py); reads live with
the prediction-time lookups.

Every item is written by its own conditional PutItem: BatchWriteItem takes no condition, and a
transaction of 25 would be cancelled whole by one item the store already holds newer. The
condition lets a write replace the stored item only when its event time is newer, or the same
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
from functions.models.online import ATTR_EVENT_TIME_US, ATTR_SOURCE_VERSION

NEWER_WINS = (
    f"attribute_not_exists(pk) OR {ATTR_EVENT_TIME_US} < :t "
    f"OR ({ATTR_EVENT_TIME_US} = :t AND {ATTR_SOURCE_VERSION} < :v)"
)


@dataclass
class WriteCounts:
    written: int = 0
    skipped_older: int = 0  # the stored item was newer (or the same row): left as it was
    requests: int = 0  # PutItem calls made (botocore's own retries not counted)


def write_latest(table: str, items: Iterable[dict[str, Any]], counts: WriteCounts | None = None) -> WriteCounts:
    """Write each item (a full online item in DynamoDB's attribute-value form) unless the store
    holds a newer row for its key. `counts` (when given) is updated as items land, so a caller that
    sees an error still knows what was written before it."""
    counts = counts if counts is not None else WriteCounts()
    dynamodb = client("dynamodb")
    for item in items:
        values = {":t": item[ATTR_EVENT_TIME_US], ":v": item[ATTR_SOURCE_VERSION]}
        counts.requests += 1
        try:
            dynamodb.put_item(
                TableName=table, Item=item, ConditionExpression=NEWER_WINS, ExpressionAttributeValues=values
            )
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                counts.skipped_older += 1
                continue
            raise store_error(exc, "online feature write") from exc
        counts.written += 1
    return counts
