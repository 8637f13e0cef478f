"""Feature views in the metadata table: versioned, never deleted (see functions/models/features.py)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.dal import pages
from functions.dal.audit import audit_put
from functions.dal.clients import client, store_error
from functions.dal.versioned import counter_update, indexed_version, put_new, read_counter, read_item, write_next
from functions.models.audit import Actor, AuditEvent
from functions.models.errors import NotFound
from functions.models.features import (
    VIEW_HEAD_SK,
    VIEWS_INDEX_PK,
    FeatureView,
    FeatureViewRecord,
    view_pk,
    view_version_sk,
)
from functions.models.features_offline import SourceVersionRef
from functions.models.registry import NAME_PATTERN


def _head(table: str, name: str) -> int:
    return read_counter(table, {"pk": {"S": view_pk(name)}, "sk": {"S": VIEW_HEAD_SK}}, "feature view read")


def put_view(
    table: str,
    view: FeatureView,
    created_by: str,
    now: Any,
    *,
    source_version: SourceVersionRef | None = None,
    source_contract_version: int | None = None,
) -> FeatureViewRecord:
    """Store `view` as the next version of its name (conditional on the head's counter), pinned to
    the validated source version it was checked against, with its audit event in the same
    transaction."""
    head = {"pk": {"S": view_pk(view.name)}, "sk": {"S": VIEW_HEAD_SK}}

    def build(number: int) -> tuple[list[dict[str, Any]], FeatureViewRecord]:
        record = FeatureViewRecord(
            name=view.name,
            version=number,
            view=view,
            source_version=source_version,
            source_contract_version=source_contract_version,
            created_at=now,
            created_by=created_by,
        )
        pinned = {"source_version": source_version.version} if source_version is not None else {}
        event = AuditEvent.of(
            Actor(identity=created_by or "unknown", correlation_id=""),
            "feature_view.put",
            f"feature-view/{view.name}",
            version=number,
            after={"source": view.source, "entity_keys": view.entity_keys, "features": len(view.features), **pinned},
        )
        version_item = indexed_version(
            view_pk(view.name),
            view_version_sk(number),
            index_pk=VIEWS_INDEX_PK,
            name=view.name,
            number=number,
            kind="feature_view",
            doc=record.model_dump_json(),
        )
        items = [
            counter_update(table, head, "latest_version", number - 1),
            audit_put(table, event),
            put_new(table, version_item),
        ]
        return items, record

    return write_next(
        lambda: _head(table, view.name),
        build,
        what="feature view write",
        busy=f"feature view {view.name}: too many concurrent writers, try again",
    )


def get_view(table: str, name: str, version: int | None = None) -> FeatureViewRecord:
    """One version of a view (the latest when `version` is None); NotFound when absent."""
    number = version if version is not None else _head(table, name)
    if number < 1:
        raise NotFound(f"no feature view named {name!r}")
    item = read_item(table, {"pk": {"S": view_pk(name)}, "sk": {"S": view_version_sk(number)}}, "feature view read")
    if not item:
        raise NotFound(f"feature view {name!r} has no version {number}")
    return FeatureViewRecord.model_validate_json(item["doc"]["S"])


def list_latest_views(table: str) -> list[FeatureViewRecord]:
    """The latest version of every view, by name (every page)."""
    views, token = list_latest_views_page(table, 1_000)
    while token is not None:
        more, token = list_latest_views_page(table, 1_000, token)
        views += more
    return views


def list_latest_views_page(
    table: str, limit: int, next_token: str | None = None
) -> tuple[list[FeatureViewRecord], str | None]:
    """The latest version of up to `limit` views by name, after the view `next_token` names, and
    the next page's token (None when none is left). The index holds every version in (name,
    version) order, so a page reads on until it has seen one view more than it returns: every
    returned view's versions are then complete. A token of another listing: InvalidInput."""
    key, values = "gsi1pk = :p", {":p": {"S": VIEWS_INDEX_PK}}
    if next_token is not None:  # `~` sorts after every version suffix of that name
        key += " AND gsi1sk > :after"
        values[":after"] = {"S": pages.decode("feature-views", next_token, NAME_PATTERN) + "#~"}
    params: dict[str, Any] = {
        "TableName": table,
        "IndexName": "gsi1",
        "KeyConditionExpression": key,
        "ExpressionAttributeValues": values,
    }
    latest: dict[str, FeatureViewRecord] = {}
    try:
        while len(latest) <= limit:
            reply = client("dynamodb").query(**params)
            for item in reply.get("Items", []):
                record = FeatureViewRecord.model_validate_json(item["doc"]["S"])
                latest[record.name] = record  # versions come in ascending order
            if "LastEvaluatedKey" not in reply:
                break
            params["ExclusiveStartKey"] = reply["LastEvaluatedKey"]
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "feature view read") from exc
    names = sorted(latest)
    shown = [latest[n] for n in names[:limit]]
    return shown, pages.encode("feature-views", names[limit - 1]) if len(names) > limit else None
