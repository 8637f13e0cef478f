"""The point-in-time join as one SQL statement, for joins beyond one function's memory (Athena).

The statement gives the same answer as functions/logic/pit_join.py: for each label row and each
view, the latest feature row of the label's entity with `feature time <= label time`, kept only when
`label time - feature time <= ttl`; otherwise nulls (a null inside a matched row stays null). It is
standard SQL with window functions (Athena's engine has no ASOF JOIN):

1. each view's rows are numbered within their entity in time order (`row_number()`; the
   contract makes (entity, time) unique, so the numbering is deterministic);
2. the view's rows and the labels are put in one sequence per entity, ordered by time with a view
   row before a label at the same time (`feature time <= label time` counts), and a running
   `count()` of view rows gives each label the number of the latest view row at or before it
   (0: none, so the label is missing);
3. an equality join on (entity, number) fetches that row, and a CASE on its age applies the TTL.

Every step is a partitioned window or an equi-join, which a distributed engine spreads over
workers; nothing needs one node to hold a view. Labels with a null key or a null time take no part
in step 2 and get nulls, as in the in-function join. The labels table carries a row-id column
(unique per label row), which orders the output as the labels were written.

Identifiers are double-quoted (embedded quotes doubled), so column names with spaces or dots work
as they do in the layouts. TTLs are written as DAY and SECOND interval literals, which Athena
(Trino) and DuckDB read alike.

choose_join_engine picks where a training set's join runs, the way validation picks its
Distributed Map: by the bytes of the view layouts the join reads, against
`STEPWISE_OFFLINE_JOIN_MAX_BYTES`; without an Athena workgroup (the local cloud) it stays in the
function. glue_columns maps a layout's Arrow types to the Glue column types of its table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from functions.models.errors import InvalidInput
from functions.models.features_offline import OfflineLayoutManifest
from functions.models.settings import Settings

JoinEngine = Literal["function", "athena"]
RESERVED_PREFIX = "__"
_DAY = 86_400


@dataclass(frozen=True)
class SqlView:
    """One view to join: its table (over its layout), key and time columns, the features to take
    (output columns `<name>:<feature>`), the label columns holding its key (default: named like the
    view's keys) and its TTL in seconds (None: values never expire)."""

    name: str
    table: str
    entity_keys: Sequence[str]
    timestamp_column: str
    features: Sequence[str]
    ttl_seconds: int | None
    label_keys: Sequence[str] | None = None


def quote(identifier: str) -> str:
    """A standard SQL delimited identifier."""
    if not identifier or "\x00" in identifier:
        raise InvalidInput(f"invalid SQL identifier {identifier!r}")
    return '"' + identifier.replace('"', '""') + '"'


def table_ref(name: str, database: str | None = None) -> str:
    return f"{quote(database)}.{quote(name)}" if database else quote(name)


def _ttl_literal(seconds: int) -> str:
    days, rest = divmod(seconds, _DAY)
    parts = ([f"INTERVAL '{days}' DAY"] if days else []) + ([f"INTERVAL '{rest}' SECOND"] if rest or not days else [])
    return " - ".join(parts)


def _check(
    views: Sequence[SqlView], label_columns: Sequence[str], time_column: str, row_column: str
) -> list[list[str]]:
    if not views:
        raise InvalidInput("a point-in-time join needs at least one view")
    names = [v.name for v in views]
    if len(set(names)) != len(names):
        raise InvalidInput(f"views must have distinct names: {', '.join(names)}")
    if time_column not in label_columns:
        raise InvalidInput(f"the labels have no time column {time_column!r}")
    if row_column in label_columns:
        raise InvalidInput(f"the labels' row id {row_column!r} must not also be a label column")
    reserved = [c for c in label_columns if c.startswith(RESERVED_PREFIX)]
    if reserved:
        raise InvalidInput(f"label columns {reserved} use the reserved prefix {RESERVED_PREFIX!r}")
    keys_per_view: list[list[str]] = []
    outputs: list[str] = []
    for view in views:
        label_keys = list(view.entity_keys if view.label_keys is None else view.label_keys)
        if not view.entity_keys or len(label_keys) != len(view.entity_keys):
            raise InvalidInput(
                f"view {view.name!r} has {len(view.entity_keys)} entity key column(s); "
                f"the labels name {len(label_keys)}"
            )
        missing = [k for k in label_keys if k not in label_columns]
        if missing:
            raise InvalidInput(f"view {view.name!r}: the labels have no entity key column(s) {missing}")
        if not view.features:
            raise InvalidInput(f"view {view.name!r}: no features to take")
        if view.ttl_seconds is not None and view.ttl_seconds < 0:
            raise InvalidInput(f"view {view.name!r}: the TTL must not be negative (got {view.ttl_seconds})")
        keys_per_view.append(label_keys)
        outputs += [f"{view.name}:{f}" for f in view.features]
    clash = sorted(set(outputs) & set(label_columns))
    if clash:
        raise InvalidInput(f"the labels already have column(s) {', '.join(clash)}; rename them before joining")
    return keys_per_view


def pit_join_sql(
    *,
    labels_table: str,
    label_columns: Sequence[str],
    time_column: str,
    views: Sequence[SqlView],
    row_column: str = "__row",
    database: str | None = None,
    statuses: bool = False,
    keep_row: bool = False,
) -> str:
    """The SELECT that joins every row of `labels_table` with every view (see the module docstring):
    the label columns in the given order, then `<view>:<feature>` per view and feature, ordered by
    `row_column`. `database` qualifies every table (Athena: the offline store's Glue database).
    With `statuses`, the last columns are one per view, `<view>:__status`: 'matched', 'missing' or
    'expired' per label row, as PitJoinCounts counts them (layout features never start with `__`).
    With `keep_row`, the very last column is `row_column` (a result written in parts, as Athena's
    UNLOAD does, is put back in the labels' order by it)."""
    keys_per_view = _check(views, label_columns, time_column, row_column)
    row, t = quote(row_column), quote(time_column)
    ctes = [
        f'"__labels" AS (SELECT {", ".join(quote(c) for c in [*label_columns, row_column])} '
        f"FROM {table_ref(labels_table, database)})"
    ]
    finals: list[str] = []
    status_columns: list[str] = []
    joins: list[str] = []
    for i, (view, label_keys) in enumerate(zip(views, keys_per_view, strict=True)):
        k = [f'"__k{j}"' for j in range(len(view.entity_keys))]
        f = [f'"__f{j}"' for j in range(len(view.features))]
        rows, seq, at, hit = (f'"__v{i}_rows"', f'"__v{i}_seq"', f'"__v{i}_at"', f'"__v{i}"')
        keys_as = ", ".join(f"{quote(c)} AS {a}" for c, a in zip(view.entity_keys, k, strict=True))
        feats_as = ", ".join(f"{quote(c)} AS {a}" for c, a in zip(view.features, f, strict=True))
        part = ", ".join(k)
        ctes.append(
            f'{rows} AS (SELECT {keys_as}, {quote(view.timestamp_column)} AS "__t", {feats_as}, '
            f'row_number() OVER (PARTITION BY {part} ORDER BY {quote(view.timestamp_column)}) AS "__rn" '
            f"FROM {table_ref(view.table, database)})"
        )
        label_keys_as = ", ".join(f"{quote(c)} AS {a}" for c, a in zip(label_keys, k, strict=True))
        present = " AND ".join(f"{quote(c)} IS NOT NULL" for c in [*label_keys, time_column])
        ctes.append(
            f'{seq} AS (SELECT {part}, "__t", 0 AS "__kind", CAST(NULL AS BIGINT) AS "__row", 1 AS "__feat" '
            f"FROM {rows} UNION ALL "
            f'SELECT {label_keys_as}, {t} AS "__t", 1 AS "__kind", {row} AS "__row", '
            f'CAST(NULL AS INTEGER) AS "__feat" FROM "__labels" WHERE {present})'
        )
        ctes.append(
            f'{at} AS (SELECT "__row", {part}, "__t", "__kind", count("__feat") OVER (PARTITION BY {part} '
            f'ORDER BY "__t", "__kind" ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS "__rn" FROM {seq})'
        )
        on = " AND ".join(f"r.{a} = a.{a}" for a in k)
        ctes.append(
            f'{hit} AS (SELECT a."__row", a."__t" AS "__lt", r."__t" AS "__ft", '
            f"{', '.join(f'r.{a}' for a in f)} FROM {at} a JOIN {rows} r "
            f'ON {on} AND r."__rn" = a."__rn" WHERE a."__kind" = 1)'
        )
        joins.append(f'LEFT JOIN {hit} ON {hit}."__row" = l.{row}')
        fresh = None if view.ttl_seconds is None else f'{hit}."__ft" >= {hit}."__lt" - {_ttl_literal(view.ttl_seconds)}'
        for feature, alias in zip(view.features, f, strict=True):
            value = f"{hit}.{alias}" if fresh is None else f"CASE WHEN {fresh} THEN {hit}.{alias} END"
            finals.append(f"{value} AS {quote(f'{view.name}:{feature}')}")
        if statuses:
            expired = "" if fresh is None else f"WHEN NOT ({fresh}) THEN 'expired' "
            status_columns.append(
                f"CASE WHEN {hit}.\"__row\" IS NULL THEN 'missing' {expired}ELSE 'matched' END "
                f"AS {quote(f'{view.name}:__status')}"
            )
    select = ", ".join(
        [*(f"l.{quote(c)}" for c in label_columns), *finals, *status_columns, *([f"l.{row}"] if keep_row else [])]
    )
    return (
        "WITH "
        + ",\n".join(ctes)
        + f'\nSELECT {select}\nFROM "__labels" l\n'
        + "\n".join(joins)
        + f"\nORDER BY l.{row}"
    )


def choose_join_engine(layouts: Sequence[OfflineLayoutManifest], settings: Settings) -> JoinEngine:
    """Athena when the layouts a join reads exceed the in-function limit and a workgroup is
    deployed; the function otherwise."""
    read = sum(m.size_bytes for m in layouts)
    if read > settings.offline_join_max_bytes and settings.athena_workgroup:
        return "athena"
    return "function"


_GLUE_TYPES = {
    "int8": "tinyint",
    "int16": "smallint",
    "int32": "int",
    "int64": "bigint",
    "uint8": "smallint",
    "uint16": "int",
    "uint32": "bigint",
    "float": "float",
    "double": "double",
    "bool": "boolean",
    "string": "string",
    "large_string": "string",
    "date32[day]": "date",
}


def glue_type(name: str, arrow_type: str) -> str:
    """The Glue (Hive) type of a layout column, from its Arrow type as pyarrow prints it."""
    if arrow_type in _GLUE_TYPES:
        return _GLUE_TYPES[arrow_type]
    if arrow_type.startswith("timestamp["):
        return "timestamp"
    if arrow_type.startswith("dictionary<values=string") or arrow_type.startswith("dictionary<values=large_string"):
        return "string"
    raise InvalidInput(f"column {name!r} is {arrow_type}, which the offline store's Glue tables do not map")


def glue_columns(
    manifest: OfflineLayoutManifest, key_types: Sequence[str], timestamp_type: str
) -> list[dict[str, str]]:
    """The Glue columns of a layout's table: its entity keys (their Arrow types given, as the
    layout stores them: int64 or string), the timestamp column and the features."""
    if len(key_types) != len(manifest.entity_keys):
        raise InvalidInput("one Arrow type per entity key column is needed")
    names = [*manifest.entity_keys, manifest.timestamp_column, *(f.name for f in manifest.features)]
    types = [*key_types, timestamp_type, *(f.arrow_type for f in manifest.features)]
    lowered = [n.lower() for n in names]
    if len(set(lowered)) != len(lowered):
        raise InvalidInput(f"columns {names} differ only by case; Glue column names are case-insensitive")
    return [{"Name": n.lower(), "Type": glue_type(n, a)} for n, a in zip(names, types, strict=True)]
