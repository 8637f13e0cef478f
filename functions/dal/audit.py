"""Audit events in the metadata table: append-only.

Every registry change puts its audit event in the same TransactWriteItems call:

    items = [registry_update, ..., audit_put(settings.metadata_table, event)]
    client("dynamodb").transact_write_items(TransactItems=items)

This module has no update or delete: an event, once written, stays as written.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.dal import pages
from functions.dal.clients import client, error_code, store_error
from functions.models.audit import AUDIT_INDEX_PK, AuditEvent, audit_pk, iso
from functions.models.errors import Conflict

MAX_PAGE = 1000


def to_item(event: AuditEvent) -> dict[str, Any]:
    """The low-level DynamoDB item of an event (before/after as JSON strings)."""
    item: dict[str, Any] = {
        "pk": {"S": audit_pk(event.target)},
        "sk": {"S": event.sort_key},
        "gsi1pk": {"S": AUDIT_INDEX_PK},
        "gsi1sk": {"S": event.sort_key},
        "kind": {"S": "audit"},
        "event_id": {"S": event.event_id},
        "time": {"S": iso(event.time)},
        "who": {"S": event.who},
        "action": {"S": event.action},
        "target": {"S": event.target},
        "reason": {"S": event.reason},
        "correlation_id": {"S": event.correlation_id},
        "before": {"S": json.dumps(event.before, sort_keys=True, default=str)},
        "after": {"S": json.dumps(event.after, sort_keys=True, default=str)},
    }
    if event.version is not None:
        item["version"] = {"N": str(event.version)}
    return item


def from_item(item: dict[str, Any]) -> AuditEvent:
    return AuditEvent(
        event_id=item["event_id"]["S"],
        time=datetime.fromisoformat(item["time"]["S"].replace("Z", "+00:00")),
        who=item["who"]["S"],
        action=item["action"]["S"],
        target=item["target"]["S"],
        version=int(item["version"]["N"]) if "version" in item else None,
        before=json.loads(item["before"]["S"]),
        after=json.loads(item["after"]["S"]),
        reason=item["reason"]["S"],
        correlation_id=item["correlation_id"]["S"],
    )


def audit_put(table: str, event: AuditEvent) -> dict[str, Any]:
    """The TransactWriteItems `Put` that appends `event` (fails if the key already exists)."""
    return {
        "Put": {
            "TableName": table,
            "Item": to_item(event),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }


def record(table: str, event: AuditEvent) -> None:
    """Append one event on its own, for actions that change nothing else in DynamoDB."""
    put = audit_put(table, event)["Put"]
    try:
        client("dynamodb").put_item(**put)
    except ClientError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            raise Conflict(f"audit event {event.event_id} already exists") from exc
        raise store_error(exc, "audit write") from exc
    except BotoCoreError as exc:
        raise store_error(exc, "audit write") from exc


def list_events(
    table: str, *, target: str | None = None, since: datetime | None = None, limit: int = MAX_PAGE
) -> list[AuditEvent]:
    """Events oldest first: of one target (its partition) or of all targets (the AUDIT index)."""
    if target is not None:
        key = "pk = :p"
        values: dict[str, Any] = {":p": {"S": audit_pk(target)}}
        sort_attr, index = "sk", None
    else:
        key = "gsi1pk = :p"
        values = {":p": {"S": AUDIT_INDEX_PK}}
        sort_attr, index = "gsi1sk", "gsi1"
    if since is not None:
        key += f" AND {sort_attr} >= :s"
        values[":s"] = {"S": iso(since)}
    params: dict[str, Any] = {"TableName": table, "KeyConditionExpression": key, "ExpressionAttributeValues": values}
    if index:
        params["IndexName"] = index
    events: list[AuditEvent] = []
    try:
        while len(events) < limit:
            reply = client("dynamodb").query(**params, Limit=min(MAX_PAGE, limit - len(events)))
            events.extend(from_item(i) for i in reply.get("Items", []))
            if "LastEvaluatedKey" not in reply:
                break
            params["ExclusiveStartKey"] = reply["LastEvaluatedKey"]
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "audit read") from exc
    return events


_SORT_KEY = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z#[0-9a-f]{32}$"


def list_events_page(
    table: str,
    *,
    target: str | None,
    since: datetime | None,
    limit: int,
    next_token: str | None = None,
    until: datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
) -> tuple[list[AuditEvent], str | None]:
    """Up to `limit` events oldest first (of one target's partition, or of all targets through the
    AUDIT index), after the event `next_token` names, and the next page's token (None when none is
    left). `since`/`until` bound the time (inclusive) in the key condition, so a page reads no
    event outside them; `actor` (a substring of `who`, case-sensitive) and `action` (a prefix) are
    filters, read past until the page is full. A token is bound to its listing (target, times and
    filters): another listing's is InvalidInput."""
    kind = ":".join(
        [
            f"audit:{target or '*'}:{iso(since) if since is not None else ''}",
            iso(until) if until is not None else "",
            action or "",
            actor or "",
        ]
    )
    if target is not None:
        key, sort_attr = "pk = :p", "sk"
        values: dict[str, Any] = {":p": {"S": audit_pk(target)}}
    else:
        key, sort_attr = "gsi1pk = :p", "gsi1sk"
        values = {":p": {"S": AUDIT_INDEX_PK}}
    # Sort keys are fixed-width `<time>#<32 hex>`: `position + "~"` sorts after that event and
    # before every later one, `<until>#~` after every event at `until`.
    low = None
    if next_token is not None:  # the position is at or after `since` already
        low = pages.decode(kind, next_token, _SORT_KEY) + "~"
    elif since is not None:
        low = iso(since)
    if until is not None:
        high = iso(until) + "#~"
        if low is not None and low > high:  # a window that ends before it starts holds nothing
            return [], None
        values[":hi"] = {"S": high}
        if low is not None:
            key += f" AND {sort_attr} BETWEEN :lo AND :hi"
            values[":lo"] = {"S": low}
        else:
            key += f" AND {sort_attr} <= :hi"
    elif low is not None:
        key += f" AND {sort_attr} >= :lo"
        values[":lo"] = {"S": low}
    params: dict[str, Any] = {"TableName": table, "KeyConditionExpression": key, "ExpressionAttributeValues": values}
    filters, names = [], {}
    if actor:
        filters.append("contains(#who, :actor)")
        names["#who"], values[":actor"] = "who", {"S": actor}
    if action:
        filters.append("begins_with(#action, :action)")
        names["#action"], values[":action"] = "action", {"S": action}
    if filters:
        params["FilterExpression"] = " AND ".join(filters)
        params["ExpressionAttributeNames"] = names
    if target is None:
        params["IndexName"] = "gsi1"
    items, more = pages.query_page(params, limit, "audit")
    events = [from_item(i) for i in items]
    return events, pages.encode(kind, events[-1].sort_key) if more and events else None
