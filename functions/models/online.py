"""The online feature store's item layout: one item per entity holding the latest materialized
values of every feature view over that entity, in a table keyed by `pk` alone
(infra/constructs/tables.py OnlineStore).

    pk           = <key name 1>=<value 1> US <key name 2>=<value 2> ...   (US = \\x1f; key names sorted)
    view:<name>  M   one entry per feature view materialized for the entity:
        values            M   feature name -> value (N, S, BOOL or NULL), every feature of that version
        event_time_us     N   the source row's event time, microseconds since the epoch (UTC)
        source_version    N   the source dataset version the row came from
        view_version      N   the view version whose feature list was materialized
        materialization   S   the id of the materialization run that wrote the entry
        written_at        S   when it was written (ISO 8601, UTC)

The key names the entity alone (its key columns and values, sorted by column name), so every view
over the same entity shares one item, and a prediction request reads every view it uses for up to
100 entities with one BatchGetItem (projecting `pk` and those views' attributes). A materialization
writes only its view's attribute (UpdateItem `SET`), replacing it only when its `event_time_us` is
newer than the stored entry's (ties: the higher source version wins), so redelivered, out-of-order
and concurrent materializations converge to the newest row and never touch another view's entry.
TTL is applied when the entry is read, from the view version's `ttl_seconds` and `event_time_us`;
the table has no DynamoDB TTL (its deletions lag by days and would make reads depend on when the
sweeper ran).

Entity key values are stored as their canonical text: strings as they are, integers in decimal,
booleans as `true`/`false` (what Arrow's cast to string gives, so a materialization can build keys
for a whole column at once); a key value may not contain RS (\\x1e) or US, and a key name may not
contain US or `=`, so a key reads back one way only.
"""

from __future__ import annotations

from collections.abc import Sequence

RECORD_SEPARATOR = "\x1e"  # reserved: refused in key values and names, like US
KEY_SEPARATOR = "\x1f"
NAME_VALUE = "="
VIEW_PREFIX = "view:"

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
    if RECORD_SEPARATOR in text or KEY_SEPARATOR in text:
        raise ValueError(f"entity key value {text!r} contains a control separator (\\x1e or \\x1f)")
    return text


def online_key(names: Sequence[str], values: Sequence[str | int | bool]) -> str:
    """The `pk` of one entity's item: `name=value` pairs of its key columns sorted by name, so
    every view over the same key columns shares it whatever order the view lists them in."""
    if not names:
        raise ValueError("an entity needs at least one key value")
    if len(names) != len(values):
        raise ValueError(f"an entity over {len(names)} key column(s) needs as many values, not {len(values)}")
    if len(set(names)) != len(names):
        raise ValueError(f"entity key columns {list(names)} name a column twice")
    for name in names:
        if not name or NAME_VALUE in name or KEY_SEPARATOR in name or RECORD_SEPARATOR in name:
            raise ValueError(f"entity key column {name!r} is empty or contains '=' or a control separator")
    pairs = sorted(zip(names, values, strict=True), key=lambda pair: pair[0])
    return KEY_SEPARATOR.join(f"{name}{NAME_VALUE}{key_text(value)}" for name, value in pairs)


def view_attribute(view: str) -> str:
    """The item attribute holding `view`'s entry."""
    return VIEW_PREFIX + view


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
