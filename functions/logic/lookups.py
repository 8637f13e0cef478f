"""Prediction-time feature lookups for a version trained through feature views.

The version's request schema (`ModelVersion.features`) holds the raw fields its graph takes,
among them the `view:feature` columns the point-in-time join added at training. At serving, a
request carries the views' entity keys (and the request-only fields) instead; the looked-up
columns are read from the online store (functions/models/online.py layout: one item per entity
holding every view over it): one BatchGetItem per 100 distinct entity keys of the whole request,
across all its views (functions/dal/online_lookup.py), so one round trip for up to 100 rows when
the views share an entity.

Each view's entry is used exactly as the point-in-time join (functions/logic/pit_join.py) would use
that feature row for a label stamped at the request time `t`:
- fresh   `event_time <= t` and `t - event_time <= ttl`: the entry's values;
- expired `event_time <= t` and `t - event_time > ttl`: every feature of the view null;
- missing no entry of the view for the entity (an unknown entity), or an entry stamped after `t`
  (training never uses a later row; the store keeps only the newest): every feature of the view null.
A null inside a fresh entry stays null. The pipeline imputes nulls as it did in training. Each row
reports, per view, its status and the source dataset version and event time of the entry read
(`PredictReply.lookups`, and the capture line's `lookups`).

A request that sends a looked-up feature is refused (400 naming it) unless the version was trained
with `allow_request_overrides`; then a sent value replaces the store's for that row and feature.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from functions.models.online import (
    ATTR_EVENT_TIME_US,
    ATTR_SOURCE_VERSION,
    ATTR_VALUES,
    attribute_value,
    online_key,
    view_attribute,
)
from functions.models.registry import ModelVersion
from functions.models.serving import RequestInvalid

FRESH, MISSING, EXPIRED = "fresh", "missing", "expired"
MAX_NAMED = 20

# (distinct entity keys, views) -> (items by pk, BatchGetItem requests made)
Fetch = Callable[[Sequence[str], Sequence[str]], tuple[dict[str, dict[str, Any]], int]]


@dataclass(frozen=True, slots=True)
class ViewPlan:
    """One looked-up view: its name, its entity key columns, the instance fields holding them (in
    the same order), its TTL in microseconds and its columns: (feature index, feature name in the
    view)."""

    view: str
    key_names: tuple[str, ...]
    key_fields: tuple[str, ...]
    ttl_us: int
    columns: tuple[tuple[int, str], ...]


@dataclass(frozen=True)
class LookupPlan:
    """What a version looks up: its views, the looked-up feature names, the entity key fields the
    request adds (keys that are not also features), and the instance field of each sent feature."""

    views: tuple[ViewPlan, ...]
    looked_up: frozenset[str]
    entity_fields: tuple[str, ...]
    sent: tuple[tuple[int, str], ...]  # (feature index, instance field) of the features a request sends
    overridable: tuple[tuple[int, str], ...]  # (feature index, instance field): looked up, may be sent
    n_features: int


@dataclass
class LookedUp:
    """The rows in feature order, per row the provenance of each view, and the tallies."""

    rows: list[list[Any]]
    provenance: list[dict[str, dict[str, Any]]]
    lookups: int  # (row, view) pairs looked up
    missing: int
    expired: int
    requests: int  # BatchGetItem requests made
    view_missed: dict[str, int] = field(default_factory=dict)  # per view: its lookups missing or expired


def plan(version: ModelVersion) -> LookupPlan | None:
    """The lookups of `version` (None: it was not trained through views, or reads none of their
    columns at serving)."""
    if not version.feature_views:
        return None
    index = {f.name: i for i, f in enumerate(version.features)}
    views: list[ViewPlan] = []
    looked_up: set[str] = set()
    keys: list[str] = []
    for use in version.feature_views:
        columns = tuple(
            (index[f"{use.view}:{f.name}"], f.name) for f in use.features if f"{use.view}:{f.name}" in index
        )
        if not columns:
            continue
        looked_up.update(version.features[i].name for i, _ in columns)
        key_fields = []
        for key in use.entity_keys:
            if key in index:
                key_fields.append(f"f{index[key]}")
            else:
                if key not in keys:
                    keys.append(key)
                key_fields.append(f"k{keys.index(key)}")
        views.append(
            ViewPlan(use.view, tuple(use.entity_keys), tuple(key_fields), use.ttl_seconds * 1_000_000, columns)
        )
    if not views:
        return None
    sent = tuple((i, f"f{i}") for i, f in enumerate(version.features) if f.name not in looked_up)
    overridable = tuple((i, f"f{i}") for i, f in enumerate(version.features) if f.name in looked_up)
    return LookupPlan(
        views=tuple(views),
        looked_up=frozenset(looked_up),
        entity_fields=tuple(keys),
        sent=sent,
        overridable=overridable if version.allow_request_overrides else (),
        n_features=len(version.features),
    )


def refuse_overrides(lookup: LookupPlan, payload: Any) -> None:
    """400 naming the looked-up features a request sends, when the version does not allow it."""
    if lookup.overridable or not isinstance(payload, dict):
        return
    instances = payload.get("instances")
    if not isinstance(instances, list):
        return
    details = [
        {
            "field": f"instances.{i}.{name}",
            "reason": "is looked up from the online store; this model does not allow request overrides",
            "type": "lookup_override",
        }
        for i, instance in enumerate(instances)
        if isinstance(instance, dict) and not lookup.looked_up.isdisjoint(instance)
        for name in sorted(lookup.looked_up.intersection(instance))
    ]
    if details:
        names = sorted({d["field"].split(".", 2)[2] for d in details})
        raise RequestInvalid(
            f"looked-up feature(s) {names[:MAX_NAMED]} may not be sent: the model reads them from the online "
            "store (its spec does not set allow_request_overrides)",
            details[:MAX_NAMED],
        )


def _iso_us(epoch_us: int) -> str:
    moment = datetime.fromtimestamp(epoch_us // 1_000_000, tz=UTC).replace(microsecond=epoch_us % 1_000_000)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def look_up(lookup: LookupPlan, instances: list[BaseModel], now_us: int, fetch: Fetch) -> LookedUp:
    """The rows of validated `instances` with their looked-up columns, as of `now_us`."""
    fields = [inst.__dict__ for inst in instances]
    keyed: list[list[str]] = []  # per view, per row: the entity's item pk
    try:
        for view in lookup.views:
            keyed.append([online_key(view.key_names, [f[k] for k in view.key_fields]) for f in fields])
    except ValueError as exc:
        raise RequestInvalid(
            f"an entity key is not valid: {exc}",
            [{"field": "instances", "reason": str(exc), "type": "entity_key"}],
        ) from None
    distinct = list(dict.fromkeys(k for column in keyed for k in column))
    items, requests = fetch(distinct, [view.view for view in lookup.views])
    rows: list[list[Any]] = [[None] * lookup.n_features for _ in fields]
    for row, f in zip(rows, fields, strict=True):
        for i, name in lookup.sent:
            row[i] = f[name]
    provenance: list[dict[str, dict[str, Any]]] = [{} for _ in fields]
    missing = expired = 0
    view_missed = dict.fromkeys((v.view for v in lookup.views), 0)
    for view, column in zip(lookup.views, keyed, strict=True):
        attribute = view_attribute(view.view)
        resolved: dict[str, tuple[dict[str, Any], list[Any] | None]] = {}  # pk -> (provenance, values)
        for r, pk in enumerate(column):
            found = resolved.get(pk)
            if found is None:
                entry = items.get(pk, {}).get(attribute)
                found = resolved[pk] = _resolve(view, None if entry is None else entry["M"], now_us)
            source, values = found
            provenance[r][view.view] = source
            if values is None:
                view_missed[view.view] += 1
                if source["status"] == MISSING:
                    missing += 1
                else:
                    expired += 1
                continue
            row = rows[r]
            for (i, _), value in zip(view.columns, values, strict=True):
                row[i] = value
    for i, name in lookup.overridable:  # a sent value replaces the store's
        for row, f, inst in zip(rows, fields, instances, strict=True):
            if name in inst.model_fields_set:
                row[i] = f[name]
    return LookedUp(rows, provenance, len(fields) * len(lookup.views), missing, expired, requests, view_missed)


def _resolve(view: ViewPlan, item: dict[str, Any] | None, now_us: int) -> tuple[dict[str, Any], list[Any] | None]:
    """(provenance, values in the view's column order; None when missing or expired) of the view's
    entry (its map's attributes; None: the entity has no entry of the view)."""
    if item is None:
        return {"status": MISSING, "source_version": None, "event_time": None}, None
    event_us = int(item[ATTR_EVENT_TIME_US]["N"])
    source = {"source_version": int(item[ATTR_SOURCE_VERSION]["N"]), "event_time": _iso_us(event_us)}
    if event_us > now_us:  # stamped after the request: training would not have used it
        return {"status": MISSING, **source}, None
    if now_us - event_us > view.ttl_us:
        return {"status": EXPIRED, **source}, None
    stored = item.get(ATTR_VALUES, {}).get("M", {})
    values = [attribute_value(stored[name]) if name in stored else None for _, name in view.columns]
    return {"status": FRESH, **source}, values
