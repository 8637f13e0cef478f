"""The online feature store's item layout: the latest materialized values of one feature view for
one entity, in a table keyed by `pk` alone (infra/constructs/tables.py OnlineStore).

    pk                = <view name> RS <key 1> US <key 2> ...   (RS = \\x1e, US = \\x1f)
    view              S   the view's name
    view_version      N   the view version whose feature list was materialized
    values            M   feature name -> value (N, S, BOOL or NULL), every feature of that version
    event_time_us     N   the source row's event time, microseconds since the epoch (UTC)
    source_version    N   the source dataset version the row came from
    materialization   S   the id of the materialization run that wrote the item
    written_at        S   when it was written (ISO 8601, UTC)

One item per (view, entity) and a key built from the view's name and the entity's key values lets
one BatchGetItem read every view of a prediction request. A write replaces the item only when its
`event_time_us` is newer than the stored one (ties: the higher source version wins), so redelivered,
out-of-order and concurrent materializations converge to the newest row. TTL is applied when the
item is read, from the view version's `ttl_seconds` and `event_time_us`; the table has no DynamoDB
TTL (its deletions lag by days and would make reads depend on when the sweeper ran).

Entity key values are stored as their canonical text: strings as they are, integers in decimal,
booleans as `true`/`false` (what Arrow's cast to string gives, so a materialization can build keys
for a whole column at once); a key value may not contain RS or US.
"""

from __future__ import annotations

from collections.abc import Sequence

VIEW_SEPARATOR = "\x1e"
KEY_SEPARATOR = "\x1f"

ATTR_VIEW = "view"
ATTR_VIEW_VERSION = "view_version"
ATTR_VALUES = "values"
ATTR_EVENT_TIME_US = "event_time_us"
ATTR_SOURCE_VERSION = "source_version"
ATTR_MATERIALIZATION = "materialization"
ATTR_WRITTEN_AT = "written_at"

MAX_BATCH_GET_KEYS = 100  # DynamoDB's BatchGetItem limit
MAX_BATCH_WRITE_ITEMS = 25  # DynamoDB's BatchWriteItem / TransactWriteItems limit


def key_text(value: str | int | bool) -> str:
    """The canonical text of one entity key value (see the module docstring)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        raise ValueError(f"an entity key value must be a string, integer or boolean, not {type(value).__name__}")
    if VIEW_SEPARATOR in text or KEY_SEPARATOR in text:
        raise ValueError(f"entity key value {text!r} contains a control separator (\\x1e or \\x1f)")
    return text


def online_key(view: str, entity: Sequence[str | int | bool]) -> str:
    """The `pk` of one view's item for one entity, its key values in the view's `entity_keys` order."""
    if not entity:
        raise ValueError("an entity needs at least one key value")
    return view + VIEW_SEPARATOR + KEY_SEPARATOR.join(key_text(v) for v in entity)


def attribute_value(value: dict[str, object]) -> str | int | float | bool | None:
    """One value of an item's `values` map as Python: N -> int when integral text, else float;
    S -> str; BOOL -> bool; NULL -> None. Anything else is not part of the layout (ValueError)."""
    if "N" in value:
        text = str(value["N"])
        return int(text) if text.lstrip("-").isdigit() else float(text)
    if "S" in value:
        return str(value["S"])
    if "BOOL" in value:
        return bool(value["BOOL"])
    if "NULL" in value:
        return None
    raise ValueError(f"an online item value must be N, S, BOOL or NULL, not {sorted(value)}")
