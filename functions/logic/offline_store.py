"""The offline layout of a feature view's source dataset version, built once, joined many times.

build_layout sorts the source rows by (entity key columns, event timestamp) once and writes them as
Parquet in row groups, with one reserved int64 column `__entity`: the entity code, numbering the
distinct entity keys 0, 1, ... in sort order, so a composite key of several int or string columns
becomes one sortable integer. Each entity's rows are one contiguous run, ascending in time, so "the
latest row of entity e at or before time t" is a binary search inside e's run
(functions/logic/pit_join.py).

Rules a source table must meet (each refused with InvalidInput naming the columns and rows):
- entity key columns are integer (any width; stored as int64) or string (string, large_string or
  dictionary of strings; stored as string), with no nulls;
- the timestamp column is a timestamp with no nulls;
- (entity key, timestamp) is unique: the contract declares the key unique per timestamp, so a
  duplicate is refused rather than one of the rows being picked by file order;
- feature columns exist and do not use the reserved `__` prefix.
Feature values are stored as they are: nulls and NaN stay what they were.

load_layout reads a layout back after checking its bytes against the manifest's sha256
(IntegrityError otherwise) and prepares what the join needs: where each entity's run starts, the
event times, and the entity table (the key of each entity code). The layout's bytes are
deterministic for a given source table and pyarrow version, so rebuilding from the same dataset
version reproduces the same sha256.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from functions.models.errors import IntegrityError, InvalidInput
from functions.models.features_offline import (
    LayoutFeature,
    OfflineLayoutManifest,
    SourceVersionRef,
)

ENTITY_COLUMN = "__entity"
RESERVED_PREFIX = "__"
ROW_GROUP_SIZE = 131_072  # rows per Parquet row group of a layout
_META_ENTITY_KEYS = b"stepwise.entity_keys"
_NS = pa.timestamp("ns")


@dataclass(frozen=True)
class OfflineLayout:
    """A built layout: the Parquet bytes and their manifest (sha256, size, source pointer)."""

    data: bytes
    manifest: OfflineLayoutManifest


@dataclass(frozen=True)
class LayoutIndex:
    """A layout in memory, ready to be joined: the sorted table plus what the search needs."""

    manifest: OfflineLayoutManifest
    table: pa.Table  # the loaded feature columns, sorted, one chunk per column
    starts: np.ndarray  # int64, entity e's rows are starts[e]:starts[e + 1] (entities + 1 values)
    times_ns: np.ndarray  # int64 event time per row, nanoseconds since the epoch
    entities: pa.Table  # the distinct entity keys, row e = entity code e
    timezone: str | None  # of the timestamp column (None: naive)

    @property
    def longest_run(self) -> int:
        """Rows of the entity with the most rows (bounds the binary search's steps)."""
        return int(np.diff(self.starts).max()) if len(self.starts) > 1 else 0

    def array(self, name: str) -> pa.Array:
        """One column as a single contiguous array (no copy: load_layout stores one chunk)."""
        column = self.table.column(name)
        return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def key_kind(name: str, dtype: pa.DataType) -> pa.DataType:
    """The type an entity key column is matched as: int64 for integers, string for strings."""
    value_type = dtype.value_type if pa.types.is_dictionary(dtype) else dtype
    if pa.types.is_integer(value_type):
        return pa.int64()
    if pa.types.is_string(value_type) or pa.types.is_large_string(value_type):
        return pa.string()
    raise InvalidInput(f"entity key column {name!r} is {dtype}: an entity key must be an integer or a string column")


def normalize_key(name: str, column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    target = key_kind(name, column.type)
    try:
        return pc.cast(column, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InvalidInput(f"entity key column {name!r} ({column.type}) does not fit {target}: {exc}") from exc


def timestamps_ns(name: str, column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """The column as int64 nanoseconds since the epoch (nulls kept); refused if it is not a
    timestamp or falls outside the nanosecond range (years 1678-2261)."""
    if not pa.types.is_timestamp(column.type):
        raise InvalidInput(f"timestamp column {name!r} is {column.type}, not a timestamp")
    try:
        return pc.cast(pc.cast(column, pa.timestamp("ns", column.type.tz)), pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InvalidInput(f"timestamp column {name!r} is out of the supported range: {exc}") from exc


def _present(table: pa.Table, names: Sequence[str], what: str) -> None:
    missing = [n for n in names if n not in table.column_names]
    if missing:
        raise InvalidInput(f"{what} {', '.join(repr(m) for m in missing)} not in the source table")


def _no_nulls(column: pa.ChunkedArray, name: str, what: str) -> None:
    nulls = column.null_count
    if nulls:
        raise InvalidInput(f"{what} {name!r} has {nulls} null value(s); every feature row needs one")


def build_layout(
    table: pa.Table,
    *,
    source: SourceVersionRef,
    entity_keys: Sequence[str],
    timestamp_column: str,
    features: Sequence[str] | None = None,
    row_group_size: int = ROW_GROUP_SIZE,
) -> OfflineLayout:
    """Sort `table` by (entity keys, timestamp) and write it as the offline layout of `source`.
    `features` defaults to every other column."""
    keys = list(entity_keys)
    if not keys:
        raise InvalidInput("a layout needs at least one entity key column")
    if timestamp_column in keys or len(set(keys)) != len(keys):
        raise InvalidInput("entity key columns and the timestamp column must be distinct")
    _present(table, keys, "entity key column(s)")
    _present(table, [timestamp_column], "timestamp column")
    feature_names = (
        [n for n in table.column_names if n not in keys and n != timestamp_column]
        if features is None
        else list(features)
    )
    _present(table, feature_names, "feature column(s)")
    clash = [n for n in feature_names if n in keys or n == timestamp_column]
    reserved = [n for n in [*keys, timestamp_column, *feature_names] if n.startswith(RESERVED_PREFIX)]
    if clash or reserved or len(set(feature_names)) != len(feature_names):
        raise InvalidInput(
            f"feature columns must be distinct, not entity keys or the timestamp, and not start with "
            f"{RESERVED_PREFIX!r}: {', '.join(repr(n) for n in clash + reserved) or 'duplicates'}"
        )
    if row_group_size < 1:
        raise InvalidInput("row_group_size must be at least 1")

    columns: dict[str, pa.ChunkedArray] = {}
    for name in keys:
        _no_nulls(table.column(name), name, "entity key column")
        columns[name] = normalize_key(name, table.column(name))
    stamp = table.column(timestamp_column)
    _no_nulls(stamp, timestamp_column, "timestamp column")
    stamp_ns = timestamps_ns(timestamp_column, stamp)
    columns[timestamp_column] = stamp
    for name in feature_names:
        columns[name] = table.column(name)
    work = pa.table({**{n: columns[n] for n in keys}, "__t": stamp_ns})

    order = pc.sort_indices(work, sort_keys=[*((n, "ascending") for n in keys), ("__t", "ascending")])
    sorted_keys = [pc.take(columns[n], order).combine_chunks() for n in keys]
    t_sorted = pc.take(stamp_ns, order).combine_chunks().to_numpy()
    rows = len(t_sorted)

    # a row starts a new entity where any key column differs from the row before it
    new_entity = np.zeros(rows, dtype=bool)
    if rows:
        new_entity[0] = True
        for col in sorted_keys:
            new_entity[1:] |= pc.not_equal(col[1:], col[:-1]).to_numpy(zero_copy_only=False)
    codes = np.cumsum(new_entity, dtype=np.int64) - 1
    duplicate = ~new_entity[1:] & (t_sorted[1:] == t_sorted[:-1]) if rows else np.zeros(0, dtype=bool)
    if duplicate.any():
        first = int(np.flatnonzero(duplicate)[0]) + 1
        example = ", ".join(f"{n}={sorted_keys[i][first].as_py()!r}" for i, n in enumerate(keys))
        when = pc.take(stamp, order)[first].as_py()
        raise InvalidInput(
            f"{int(duplicate.sum())} duplicate (entity, {timestamp_column}) row(s) in "
            f"{source.dataset}@{source.version}, e.g. {example} at {when}: the key must be unique per "
            "timestamp (the contract declares it), so no row is picked over another"
        )

    entities = int(codes[-1]) + 1 if rows else 0
    del new_entity

    out = pa.table(
        {
            **dict(zip(keys, sorted_keys, strict=True)),
            timestamp_column: pc.take(stamp, order),
            **{n: pc.take(columns[n], order) for n in feature_names},
            ENTITY_COLUMN: pa.array(codes, pa.int64()),
        }
    )
    out = out.replace_schema_metadata({_META_ENTITY_KEYS: ",".join(keys).encode()})
    sink = io.BytesIO()
    # dictionary pages only for string columns: trying them on numeric features costs more than it saves
    dictionary = [f.name for f in out.schema if pa.types.is_string(f.type) or pa.types.is_dictionary(f.type)]
    pq.write_table(out, sink, row_group_size=row_group_size, compression="snappy", use_dictionary=dictionary)
    data = sink.getvalue()
    manifest = OfflineLayoutManifest(
        source=source,
        entity_keys=keys,
        timestamp_column=timestamp_column,
        features=[LayoutFeature(name=n, arrow_type=str(out.schema.field(n).type)) for n in feature_names],
        rows=rows,
        entities=entities,
        row_group_size=row_group_size,
        row_groups=-(-rows // row_group_size),
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
    )
    return OfflineLayout(data=data, manifest=manifest)


def sha256_file(path: str | Path, *, block: int = 1 << 22) -> tuple[str, int]:
    """sha256 and size of a file, read in blocks."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def load_layout(
    source: bytes | str | Path, manifest: OfflineLayoutManifest, *, features: Sequence[str] | None = None
) -> LayoutIndex:
    """Read a layout (its bytes, or a local file holding them) that matches `manifest` (sha256 and
    size; IntegrityError otherwise) with the given features (default: all it offers) and prepare it
    for joins. Columns are read one at a time, so reading holds at most one column twice."""
    if isinstance(source, bytes):
        digest, size = hashlib.sha256(source).hexdigest(), len(source)
    else:
        digest, size = sha256_file(source)
    if size != manifest.size_bytes or digest != manifest.sha256:
        raise IntegrityError(
            f"offline layout of {manifest.source.dataset}@{manifest.source.version} failed verification "
            "(sha256 mismatch); it is not used"
        )
    offered = [f.name for f in manifest.features]
    wanted = offered if features is None else list(features)
    unknown = [n for n in wanted if n not in offered]
    if unknown:
        raise InvalidInput(
            f"feature(s) {', '.join(repr(n) for n in unknown)} not offered by the layout of "
            f"{manifest.source.dataset}@{manifest.source.version} (offered: {', '.join(offered)})"
        )
    parquet = pq.ParquetFile(io.BytesIO(source) if isinstance(source, bytes) else str(source))
    meta = parquet.schema_arrow.metadata or {}
    if (
        meta.get(_META_ENTITY_KEYS) != ",".join(manifest.entity_keys).encode()
        or parquet.metadata.num_rows != manifest.rows
    ):
        raise IntegrityError("offline layout does not match its manifest (entity keys or rows)")

    def column(name: str) -> pa.Array:
        # one contiguous array per column: gathers from a single chunk are fast
        return parquet.read(columns=[name]).column(0).combine_chunks()

    codes = column(ENTITY_COLUMN).to_numpy()
    starts = np.flatnonzero(np.diff(codes, prepend=-1)) if len(codes) else np.zeros(0, dtype=np.int64)
    del codes
    if len(starts) != manifest.entities:
        raise IntegrityError("offline layout does not match its manifest (entities)")
    # the entity table: the key columns at the first row of each entity; the full key columns are not kept
    first_rows = pa.array(starts, pa.int64())
    entities = pa.table({n: column(n).take(first_rows) for n in manifest.entity_keys})
    stamp = column(manifest.timestamp_column)
    timezone = stamp.type.tz
    times_ns = timestamps_ns(manifest.timestamp_column, stamp).to_numpy()
    del stamp
    table = pa.table({n: column(n) for n in wanted})
    return LayoutIndex(
        manifest=manifest,
        table=table,
        starts=np.append(starts, manifest.rows).astype(np.int64),
        times_ns=times_ns,
        entities=entities,
        timezone=timezone,
    )
