"""Point-in-time join of label rows with feature views' offline layouts.

For each label row (entity key, event time) and each view, the view's values come from the latest
feature row of that entity whose timestamp is at or before the label's time (`feature time <=
label time`: a row stamped exactly at the label's time counts, a later one never does) and whose
age `label time - feature time` is at most the view's TTL (`age <= ttl` is fresh; `age > ttl` is
expired). A missing or expired value is null and counted per view (PitJoinCounts); a null inside a
matched feature row stays null. Labels with an unknown entity, a null key or a null time are
missing. Output rows keep the labels' order; view columns are named `<view>:<feature>`.

The join is vectorised over a batch of label rows (a Parquet row group, or a slice of a table):
entity keys become the layout's entity codes by hash lookups (pyarrow.compute.index_in, one per key
column), a binary search inside each label's entity run (the layout is sorted by entity code, then
time) finds the row for all labels of the batch at once, a few numpy operations per search step,
and pyarrow.compute.take gathers the features. There is no per-row Python loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from functions.logic.offline_store import LayoutIndex, key_kind, normalize_key, timestamps_ns
from functions.models.errors import InvalidInput
from functions.models.features_offline import PitJoinCounts

BATCH_ROWS = 131_072  # label rows joined at a time when the labels come as one table
_NO_EXPIRY = np.uint64(np.iinfo(np.uint64).max)


@dataclass(frozen=True)
class JoinView:
    """One view to join: its loaded layout, its TTL (None: values never expire), the features to
    take (default: all the layout holds) and the label columns holding its entity key (default:
    the columns named like the layout's keys)."""

    name: str
    layout: LayoutIndex
    ttl: timedelta | None
    features: Sequence[str] | None = None
    label_keys: Sequence[str] | None = None


@dataclass(frozen=True)
class PitJoinResult:
    table: pa.Table
    counts: list[PitJoinCounts]


@dataclass
class _Prepared:
    view: JoinView
    label_keys: list[str]
    features: list[str]
    ttl_ns: np.uint64
    # composite keys: per key column, the distinct values (a code per value), and per column the
    # ids of the key prefixes seen in the layout; the last holds one id per entity, in entity order
    dictionaries: list[pa.Array] = field(default_factory=list)
    prefixes: list[pa.Array] = field(default_factory=list)
    matched: int = 0
    missing: int = 0
    expired: int = 0


def _ttl_ns(view: JoinView) -> np.uint64:
    if view.ttl is None:
        return _NO_EXPIRY
    if view.ttl < timedelta(0):
        raise InvalidInput(f"view {view.name!r}: the TTL must not be negative (got {view.ttl})")
    return np.uint64(min(view.ttl // timedelta(microseconds=1) * 1000, int(_NO_EXPIRY)))


def _composite_ids(
    columns: Sequence[pa.Array], dictionaries: Sequence[pa.Array], prefixes: Sequence[pa.Array]
) -> pa.Array:
    """Entity codes of rows of a composite key: each column's value -> its code in the column's
    dictionary, the prefix so far -> (prefix id * column cardinality + code) -> its id among the
    layout's prefixes. A value or prefix the layout does not have becomes null."""
    ids: pa.Array | None = None
    for column, dictionary, prefix in zip(columns, dictionaries, prefixes, strict=True):
        code = pc.cast(pc.index_in(column, value_set=dictionary), pa.int64())
        combined = code if ids is None else pc.add_checked(pc.multiply_checked(ids, len(dictionary)), code)
        ids = pc.cast(pc.index_in(combined, value_set=prefix), pa.int64())
    assert ids is not None
    return ids


def _prepare_keys(prepared: _Prepared) -> None:
    entities = prepared.view.layout.entities
    if entities.num_columns == 1:
        return
    columns = [entities.column(i).combine_chunks() for i in range(entities.num_columns)]
    ids: pa.Array | None = None
    for i, column in enumerate(columns):
        dictionary = pc.unique(column)
        code = pc.cast(pc.index_in(column, value_set=dictionary), pa.int64())
        combined = code if ids is None else pc.add_checked(pc.multiply_checked(ids, len(dictionary)), code)
        # the last prefix is the whole key: distinct per entity, kept in entity order
        prefix = combined if i == len(columns) - 1 else pc.unique(combined)
        prepared.dictionaries.append(dictionary)
        prepared.prefixes.append(prefix)
        ids = pc.cast(pc.index_in(combined, value_set=prefix), pa.int64())


def _latest_at_or_before(
    layout: LayoutIndex, codes: np.ndarray, times: np.ndarray, known: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each (entity code, time): the layout row of that entity with the latest time <= the
    given time, and whether there is one. A binary search inside each entity's run of rows
    (starts[e]:starts[e + 1], ascending in time), all labels at once: `base` is the last row known
    to be at or before the time (first - 1: none yet), and each step tries to move it forward by a
    power of two, from the largest that fits the longest run down to 1. Each step is a few numpy
    operations over the whole batch, written into preallocated arrays."""
    n = len(codes)
    if layout.manifest.entities == 0:
        return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
    first = layout.starts[codes]
    end = np.where(known, layout.starts[codes + 1], first)
    base = first - 1
    candidate, value = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    fits, at_or_before = np.empty(n, dtype=bool), np.empty(n, dtype=bool)
    last_row = len(layout.times_ns) - 1
    step = 1 << max(layout.longest_run.bit_length() - 1, 0)
    while step:
        np.add(base, step, out=candidate)
        np.less(candidate, end, out=fits)
        np.minimum(candidate, last_row, out=candidate)
        np.take(layout.times_ns, candidate, out=value)
        np.less_equal(value, times, out=at_or_before)
        fits &= at_or_before
        np.copyto(base, candidate, where=fits)
        step >>= 1
    found = base >= first
    return np.where(found, base, 0), found


class PointInTimeJoin:
    """Joins batches of label rows with several views; counts accumulate across batches."""

    def __init__(self, views: Sequence[JoinView], *, time_column: str) -> None:
        if not views:
            raise InvalidInput("a point-in-time join needs at least one view")
        names = [v.name for v in views]
        if len(set(names)) != len(names):
            raise InvalidInput(f"views must have distinct names: {', '.join(names)}")
        self.time_column = time_column
        self._views: list[_Prepared] = []
        for view in views:
            manifest = view.layout.manifest
            offered = view.layout.table.column_names
            features = offered if view.features is None else list(view.features)
            unknown = [f for f in features if f not in offered]
            if unknown:
                raise InvalidInput(
                    f"view {view.name!r} has no loaded feature(s) {', '.join(repr(f) for f in unknown)} "
                    f"(loaded: {', '.join(offered)})"
                )
            label_keys = list(manifest.entity_keys if view.label_keys is None else view.label_keys)
            if len(label_keys) != len(manifest.entity_keys):
                raise InvalidInput(
                    f"view {view.name!r} has {len(manifest.entity_keys)} entity key column(s) "
                    f"({', '.join(manifest.entity_keys)}); the labels name {len(label_keys)}"
                )
            prepared = _Prepared(view=view, label_keys=label_keys, features=features, ttl_ns=_ttl_ns(view))
            _prepare_keys(prepared)
            self._views.append(prepared)
        self._checked: pa.Schema | None = None

    @property
    def counts(self) -> list[PitJoinCounts]:
        return [
            PitJoinCounts(view=p.view.name, matched=p.matched, missing=p.missing, expired=p.expired)
            for p in self._views
        ]

    def output_names(self) -> list[str]:
        return [f"{p.view.name}:{f}" for p in self._views for f in p.features]

    def _check_schema(self, schema: pa.Schema) -> None:
        if self._checked is not None and self._checked.equals(schema):
            return
        if self.time_column not in schema.names:
            raise InvalidInput(f"the labels have no time column {self.time_column!r}")
        time_type = schema.field(self.time_column).type
        if not pa.types.is_timestamp(time_type):
            raise InvalidInput(f"label time column {self.time_column!r} is {time_type}, not a timestamp")
        for p in self._views:
            layout = p.view.layout
            if (time_type.tz is None) != (layout.timezone is None):
                raise InvalidInput(
                    f"view {p.view.name!r}: label time {self.time_column!r} is {time_type} but the view's "
                    f"{layout.manifest.timestamp_column!r} has time zone {layout.timezone}; "
                    "both must carry a time zone or neither"
                )
            for label_key, view_key in zip(p.label_keys, layout.manifest.entity_keys, strict=True):
                if label_key not in schema.names:
                    raise InvalidInput(f"view {p.view.name!r}: the labels have no entity key column {label_key!r}")
                label_kind = key_kind(label_key, schema.field(label_key).type)
                view_kind = layout.entities.column(view_key).type
                if label_kind != view_kind:
                    raise InvalidInput(
                        f"view {p.view.name!r}: label key {label_key!r} is {schema.field(label_key).type} but the "
                        f"view's key {view_key!r} is {view_kind}"
                    )
        clash = sorted(set(self.output_names()) & set(schema.names))
        if clash:
            raise InvalidInput(f"the labels already have column(s) {', '.join(clash)}; rename them before joining")
        self._checked = schema

    def _entity_codes(self, p: _Prepared, batch: pa.RecordBatch) -> np.ndarray:
        """The layout's entity code of each label row, -1 where unknown or null."""
        columns = [normalize_key(n, batch.column(n)) for n in p.label_keys]
        if p.dictionaries:
            ids = _composite_ids(columns, p.dictionaries, p.prefixes)
        else:
            ids = pc.index_in(columns[0], value_set=p.view.layout.entities.column(0))
        return pc.fill_null(pc.cast(ids, pa.int64()), -1).to_numpy()

    def join_batch(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """The batch with each view's feature columns appended, row for row."""
        self._check_schema(batch.schema)
        stamp = timestamps_ns(self.time_column, batch.column(self.time_column))
        time_valid = pc.is_valid(stamp).to_numpy(zero_copy_only=False)
        label_ns = pc.fill_null(stamp, 0).to_numpy()
        names, arrays = list(batch.schema.names), list(batch.columns)
        for p in self._views:
            layout = p.view.layout
            codes = self._entity_codes(p, batch)
            # labels grouped by entity: the searches and gathers then walk the layout front to back
            # instead of missing the cache on every label
            order = np.argsort(codes)
            codes, label_sorted = codes[order], label_ns[order]
            known = (codes >= 0) & time_valid[order]
            pos, found = _latest_at_or_before(layout, np.where(known, codes, 0), label_sorted, known)
            feature_ns = layout.times_ns[pos] if len(layout.times_ns) else np.zeros(len(pos), dtype=np.int64)
            age = label_sorted.view(np.uint64) - feature_ns.view(np.uint64)
            matched = found & (age <= p.ttl_ns)
            n_matched, n_found = int(matched.sum()), int(found.sum())
            p.matched += n_matched
            p.expired += n_found - n_matched
            p.missing += len(found) - n_found
            # gather in ascending layout order, then put the rows back in label order (row i of
            # the labels sits at place[i] in the sorted order), then null what did not match
            indices = pa.array(pos, type=pa.int64())
            place = np.empty(len(order), dtype=np.int64)
            place[order] = np.arange(len(order))
            back = pa.array(place)
            keep = None if n_matched == len(matched) else pa.array(matched[place])
            for feature in p.features:
                column = layout.array(feature)
                # nothing matched (always so with an empty layout): all nulls, nothing to gather
                values = column.take(indices).take(back) if n_matched else pa.nulls(len(matched), column.type)
                if keep is not None and n_matched:
                    values = pc.if_else(keep, values, pa.scalar(None, values.type))
                names.append(f"{p.view.name}:{feature}")
                arrays.append(values)
        return pa.RecordBatch.from_arrays(arrays, names=names)

    def join(
        self, labels: pa.Table | Iterable[pa.RecordBatch], *, batch_rows: int = BATCH_ROWS
    ) -> Iterator[pa.RecordBatch]:
        batches = labels.to_batches(max_chunksize=batch_rows) if isinstance(labels, pa.Table) else labels
        for batch in batches:
            yield self.join_batch(batch)


def pit_join(
    labels: pa.Table | Iterable[pa.RecordBatch],
    views: Sequence[JoinView],
    *,
    time_column: str,
    batch_rows: int = BATCH_ROWS,
) -> PitJoinResult:
    """Join every label row with every view (see the module docstring); `labels` is a table or a
    stream of record batches (e.g. a Parquet file's row groups), joined one batch at a time."""
    join = PointInTimeJoin(views, time_column=time_column)
    out = list(join.join(labels, batch_rows=batch_rows))
    if out:
        table = pa.Table.from_batches(out)
    else:
        schema = labels.schema if isinstance(labels, pa.Table) else None
        if schema is None:
            raise InvalidInput("no label rows to join (an empty stream carries no schema)")
        join._check_schema(schema)
        table = pa.Table.from_batches([join.join_batch(pa.RecordBatch.from_pylist([], schema=schema))])
    return PitJoinResult(table=table, counts=join.counts)
