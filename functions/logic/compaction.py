"""Compaction: captured gzip JSON Lines -> one Parquet table typed by the model's feature schema.

Capture line (written by serving, functions/logic/capture.py):
    {"request_id": str, "model": str, "version": int, "variant": "production"|"candidate"|"shadow",
     "time": ISO-8601 UTC, "features": {name: value, ...}, "prediction": number|string,
     "probabilities": [float]|null}

Parquet layout (rows in capture order, shadow-variant rows moved last): one column per feature
under its own name, typed by the schema (int -> int64, float -> float64, bool -> bool,
string -> string, category -> dictionary<int32, string>,
timestamp -> timestamp[ms, UTC]), plus envelope columns with a reserved "__" prefix:
__request_id, __model, __version (int32), __variant, __time (timestamp[ms, UTC]), __prediction
(float64 for regression, string for classification), __probabilities (list<float64>); for a
version trained through feature views, `__lookup:<view>` (string) per looked-up view: the row's
lookup status ("fresh", "missing", "expired"; null when the line has none).

Rows that do not fit (not JSON, no features object, a value of another type, an int feature with
a fraction, an unparseable time) are not dropped: their original lines are returned in
`rejected_lines` with a count per reason, for the dal to keep aside. Parsing is vectorised
(pyarrow.json); a block that fails is split in halves until the offending lines are isolated, so
a bad line costs O(log n) parse calls and good lines are never rejected with it.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
import pyarrow.parquet as pq

from functions.models.registry import Feature

META_PREFIX = "__"
REQUEST_ID, MODEL, VERSION, VARIANT, TIME = "__request_id", "__model", "__version", "__variant", "__time"
PREDICTION, PROBABILITIES = "__prediction", "__probabilities"
LOOKUP_PREFIX = "__lookup:"  # + a view's name: the row's lookup status for that view
ROW_GROUP_SIZE = 131_072  # rows per Parquet row group: the unit the drift check holds in memory
MAX_DECOMPRESSED_BYTES = 1 << 30  # refuse a capture object that inflates past 1 GiB

_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)
_TS = pa.timestamp("ms", "UTC")
# how each declared type is read from JSON, and how it is stored
_JSON_TYPE: dict[str, pa.DataType] = {
    "int": pa.float64(),  # JSON 3.0 and 3 both parse; fractions are rejected when cast to int64
    "float": pa.float64(),
    "bool": pa.bool_(),
    "string": pa.string(),
    "category": pa.string(),
    "timestamp": pa.string(),  # ISO-8601 with offset; cast below
}
_STORED_TYPE: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "string": pa.string(),
    "category": pa.dictionary(pa.int32(), pa.string()),
    "timestamp": _TS,
}


@dataclass
class CompactionResult:
    table: pa.Table  # typed rows, in capture order
    rejected_lines: list[bytes] = field(default_factory=list)  # original lines of rows that did not fit
    rejected_reasons: dict[str, int] = field(default_factory=dict)  # reason -> rows
    input_rows: int = 0

    @property
    def rejected(self) -> int:
        return len(self.rejected_lines)


def stored_schema(
    features: Sequence[Feature], task: Literal["classification", "regression"], lookup_views: Sequence[str] = ()
) -> pa.Schema:
    """The Parquet schema of a model's compacted captures."""
    for f in features:
        if f.name.startswith(META_PREFIX):
            raise ValueError(f"feature name {f.name!r} uses the reserved prefix {META_PREFIX!r}")
    prediction = pa.float64() if task == "regression" else pa.string()
    return pa.schema(
        [
            (REQUEST_ID, pa.string()),
            (MODEL, pa.string()),
            (VERSION, pa.int32()),
            (VARIANT, pa.string()),
            (TIME, _TS),
            (PREDICTION, prediction),
            (PROBABILITIES, pa.list_(pa.float64())),
            *((f.name, _STORED_TYPE[f.type]) for f in features),
            *((LOOKUP_PREFIX + v, pa.string()) for v in lookup_views),
        ]
    )


def _json_schema(features: Sequence[Feature], lookup_views: Sequence[str] = ()) -> pa.Schema:
    lookups = [("lookups", pa.struct([(v, pa.struct([("status", pa.string())])) for v in lookup_views]))]
    return pa.schema(
        [
            ("request_id", pa.string()),
            ("model", pa.string()),
            ("version", pa.int64()),
            ("variant", pa.string()),
            ("time", pa.string()),
            ("probabilities", pa.list_(pa.float64())),
            ("features", pa.struct([(f.name, _JSON_TYPE[f.type]) for f in features])),
            *(lookups if lookup_views else []),
            # "prediction" is inferred (number or string) and cast per block
        ]
    )


def _objects_only(block: bytes) -> bool:
    """Whether every non-blank line starts with "{" (vectorised over the line starts).

    pyarrow's JSON reader crashes the process (SIGSEGV, apache/arrow#47409) on a top-level `null`
    line, so a block holding any line that is not an object never reaches it.
    """
    buf = np.frombuffer(block, dtype=np.uint8)
    if buf.size == 0:
        return True
    starts = np.concatenate([[0], np.flatnonzero(buf == 10) + 1])
    starts = starts[starts < buf.size]
    first = buf[starts]
    if bool(np.all(first == ord("{"))):
        return True
    odd = starts[first != ord("{")]
    for start in odd.tolist():  # lines starting with whitespace or something else: rare
        end = block.find(b"\n", start)
        stripped = block[start : end if end >= 0 else len(block)].strip()
        if stripped and not stripped.startswith(b"{"):
            return False
    return True


def _parse(block: bytes, schema: pa.Schema) -> pa.Table:
    if not _objects_only(block):
        raise pa.ArrowInvalid("a line is not a JSON object")
    options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer")
    return pj.read_json(io.BytesIO(block), parse_options=options, read_options=pj.ReadOptions(use_threads=False))


def _cast_with_rejects(array: pa.Array, target: pa.DataType) -> tuple[pa.Array, np.ndarray]:
    """Cast, isolating the values that cannot be cast by halving: (cast array with nulls, bad mask)."""
    try:
        return array.cast(target), np.zeros(len(array), dtype=bool)
    except _ARROW_ERRORS:
        if len(array) == 1:
            return pa.nulls(1, target), np.ones(1, dtype=bool)
    half = len(array) // 2
    left, left_bad = _cast_with_rejects(array.slice(0, half), target)
    right, right_bad = _cast_with_rejects(array.slice(half), target)
    return pa.concat_arrays([left, right]), np.concatenate([left_bad, right_bad])


def _parse_lines(
    lines: list[bytes], schema: pa.Schema, out: list[tuple[pa.Table, list[bytes]]], bad: list[bytes]
) -> None:
    """Parse lines in one block; on failure split until the lines that fail alone are found."""
    if not lines:
        return
    try:
        out.append((_parse(b"\n".join(lines), schema), lines))
        return
    except _ARROW_ERRORS:
        if len(lines) == 1:
            bad.append(lines[0])
            return
    half = len(lines) // 2
    _parse_lines(lines[:half], schema, out, bad)
    _parse_lines(lines[half:], schema, out, bad)


def _to_stored(
    parsed: pa.Table, features: Sequence[Feature], target: pa.Schema
) -> tuple[pa.Table, dict[str, np.ndarray]]:
    """Envelope + flattened features, typed; and a bad-row mask per reason."""
    n = parsed.num_rows
    bad: dict[str, np.ndarray] = {}

    def flag(reason: str, mask: np.ndarray) -> None:
        if mask.any():
            bad[reason] = bad[reason] | mask if reason in bad else mask

    columns: dict[str, pa.Array] = {}
    feats = parsed.column("features").combine_chunks()
    flag("no features object", feats.is_null().to_numpy(zero_copy_only=False))
    for name, source in (
        (REQUEST_ID, "request_id"),
        (MODEL, "model"),
        (VARIANT, "variant"),
        (PROBABILITIES, "probabilities"),
    ):
        columns[name] = parsed.column(source).combine_chunks()
    version = parsed.column("version").combine_chunks()
    columns[VERSION], version_bad = _cast_with_rejects(version, pa.int32())
    flag("version out of range", version_bad)
    time, time_bad = _cast_with_rejects(parsed.column("time").combine_chunks(), _TS)
    columns[TIME] = time
    flag("time is not ISO-8601 with an offset", time_bad)
    if "prediction" in parsed.column_names:
        prediction = parsed.column("prediction").combine_chunks()
        columns[PREDICTION], pred_bad = _cast_with_rejects(prediction, target.field(PREDICTION).type)
        flag("prediction is not a number", pred_bad)
    else:
        columns[PREDICTION] = pa.nulls(n, target.field(PREDICTION).type)
    for f in features:
        raw = feats.field(f.name)
        if feats.null_count:  # a row without features has null features, not the struct's child values
            raw = pc.if_else(feats.is_valid(), raw, pa.scalar(None, raw.type))
        value, value_bad = _cast_with_rejects(raw, _STORED_TYPE[f.type] if f.type != "category" else pa.string())
        flag(f"feature {f.name!r} is not {f.type}", value_bad)
        columns[f.name] = value.dictionary_encode() if f.type == "category" else value
    for name in target.names:
        if name.startswith(LOOKUP_PREFIX):
            lookups = parsed.column("lookups").combine_chunks() if "lookups" in parsed.column_names else None
            view = name[len(LOOKUP_PREFIX) :]
            has = lookups is not None and lookups.type.get_field_index(view) >= 0
            columns[name] = pc.struct_field(lookups, [view, "status"]) if has else pa.nulls(n, pa.string())
    table = pa.table({name: columns[name] for name in target.names})
    return table.cast(target), bad


def _keep_fitting(
    parsed: pa.Table,
    lines: Sequence[bytes],
    features: Sequence[Feature],
    target: pa.Schema,
    rejected: list[bytes],
    reasons: dict[str, int],
) -> pa.Table:
    """The typed rows that fit; the others' lines go to `rejected`, counted by their first reason."""
    stored, bad = _to_stored(parsed, features, target)
    if not bad:
        return stored
    any_bad = np.zeros(stored.num_rows, dtype=bool)
    for reason, mask in bad.items():
        fresh = mask & ~any_bad  # a row counts once, under its first reason
        reasons[reason] = reasons.get(reason, 0) + int(fresh.sum())
        any_bad |= mask
    rejected.extend(lines[int(i)] for i in np.flatnonzero(any_bad))
    return stored.filter(pa.array(~any_bad))


def compact_text(
    raw: bytes,
    features: Sequence[Feature],
    task: Literal["classification", "regression"],
    lookup_views: Sequence[str] = (),
) -> CompactionResult:
    """Compact a whole JSON Lines text in one vectorised parse; only when it (or a row) does not
    fit is it split into lines (compact_lines isolates the bad ones)."""
    target = stored_schema(features, task, lookup_views)
    try:
        parsed = _parse(raw, _json_schema(features, lookup_views))
    except _ARROW_ERRORS:
        return compact_lines(raw.split(b"\n"), features, task, lookup_views=lookup_views)
    stored, bad = _to_stored(parsed, features, target)
    if not bad:
        return CompactionResult(table=stored, input_rows=stored.num_rows)
    lines = [line for line in raw.split(b"\n") if line.strip()]  # error path: align rows with lines
    if len(lines) != parsed.num_rows:
        return compact_lines(lines, features, task, lookup_views=lookup_views)
    rejected: list[bytes] = []
    reasons: dict[str, int] = {}
    table = _keep_fitting(parsed, lines, features, target, rejected, reasons)
    return CompactionResult(table=table, rejected_lines=rejected, rejected_reasons=reasons, input_rows=len(lines))


def compact_lines(
    lines: Iterable[bytes],
    features: Sequence[Feature],
    task: Literal["classification", "regression"],
    *,
    block_lines: int = 65_536,
    lookup_views: Sequence[str] = (),
) -> CompactionResult:
    """Type captured JSON lines by the feature schema; rows that do not fit are set aside."""
    target = stored_schema(features, task, lookup_views)
    schema = _json_schema(features, lookup_views)
    kept: list[pa.Table] = []
    rejected: list[bytes] = []
    reasons: dict[str, int] = {}
    total = 0
    pending: list[bytes] = []

    def flush() -> None:
        parsed: list[tuple[pa.Table, list[bytes]]] = []
        unparsable: list[bytes] = []
        _parse_lines(pending, schema, parsed, unparsable)
        if unparsable:
            rejected.extend(unparsable)
            reasons["not JSON of the capture format, or a value of another type"] = reasons.get(
                "not JSON of the capture format, or a value of another type", 0
            ) + len(unparsable)
        for table, block in parsed:
            kept.append(_keep_fitting(table, block, features, target, rejected, reasons))
        pending.clear()

    for line in lines:
        if not line.strip():
            continue
        total += 1
        pending.append(line)
        if len(pending) >= block_lines:
            flush()
    flush()
    table = pa.concat_tables(kept) if kept else target.empty_table()
    if kept:
        table = table.unify_dictionaries().combine_chunks()
    return CompactionResult(table=table, rejected_lines=rejected, rejected_reasons=reasons, input_rows=total)


def gunzip(data: bytes) -> bytes:
    """The text of a gzip JSON Lines object (bounded inflation, concatenated members)."""
    inflater = zlib.decompressobj(wbits=31)
    raw = inflater.decompress(data, MAX_DECOMPRESSED_BYTES)
    if inflater.unconsumed_tail:
        raise ValueError(f"capture object inflates past {MAX_DECOMPRESSED_BYTES} bytes")
    while inflater.unused_data:  # concatenated gzip members
        rest = inflater.unused_data
        inflater = zlib.decompressobj(wbits=31)
        raw += inflater.decompress(rest, MAX_DECOMPRESSED_BYTES - len(raw))
        if inflater.unconsumed_tail:
            raise ValueError(f"capture object inflates past {MAX_DECOMPRESSED_BYTES} bytes")
    return raw


def gunzip_lines(data: bytes) -> list[bytes]:
    """The lines of a gzip JSON Lines object."""
    return gunzip(data).split(b"\n")


def compact_objects(
    objects: Iterable[bytes],
    features: Sequence[Feature],
    task: Literal["classification", "regression"],
    *,
    on_object_error: Callable[[int, Exception], None] | None = None,
    lookup_views: Sequence[str] = (),
) -> CompactionResult:
    """Compact several gzip JSON Lines objects into one table (in the given order).

    An object that is not gzip is counted in rejected_reasons under "object is not gzip" with no
    lines (its bytes stay where they are), and reported to on_object_error.
    """
    parts: list[CompactionResult] = []
    broken = 0
    for index, data in enumerate(objects):
        try:
            raw = gunzip(data)
        except (zlib.error, ValueError, EOFError) as exc:
            broken += 1
            if on_object_error:
                on_object_error(index, exc)
            continue
        parts.append(compact_text(raw, features, task, lookup_views))
    target = stored_schema(features, task, lookup_views)
    tables = [p.table for p in parts if p.table.num_rows]
    table = pa.concat_tables(tables).unify_dictionaries().combine_chunks() if tables else target.empty_table()
    if table.num_rows and pc.any(pc.equal(table.column(VARIANT), "shadow")).as_py():
        # shadow rows last (stable): most row groups then hold none, and the check skips the filter
        table = table.take(pc.sort_indices(table, sort_keys=[(VARIANT, "ascending")]))
    reasons: dict[str, int] = {}
    for p in parts:
        for k, v in p.rejected_reasons.items():
            reasons[k] = reasons.get(k, 0) + v
    if broken:
        reasons["object is not gzip"] = broken
    return CompactionResult(
        table=table,
        rejected_lines=[line for p in parts for line in p.rejected_lines],
        rejected_reasons=reasons,
        input_rows=sum(p.input_rows for p in parts),
    )


def to_parquet_bytes(table: pa.Table, *, row_group_size: int = ROW_GROUP_SIZE) -> bytes:
    """Parquet (snappy: the check reads it at several M rows/s) in row groups of row_group_size rows;
    dictionary encoding only for string columns."""
    sink = io.BytesIO()
    dictionary = [f.name for f in table.schema if pa.types.is_dictionary(f.type) or pa.types.is_string(f.type)]
    pq.write_table(table, sink, row_group_size=row_group_size, compression="snappy", use_dictionary=dictionary)
    return sink.getvalue()


def rejected_to_jsonl_gz(lines: Sequence[bytes]) -> bytes:
    """The kept-aside lines as gzip JSON Lines, byte for byte as captured."""
    return gzip.compress(b"\n".join(lines) + b"\n", compresslevel=6, mtime=0)
