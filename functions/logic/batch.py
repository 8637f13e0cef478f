"""Batch scoring of one chunk: read it (a run of Parquet row groups, or a newline-aligned byte range
of CSV / JSON Lines, as validation's planner cuts files), check every row against the model
version's input contract with pyarrow.compute / numpy, score the rows that fit with the version's
verified ONNX session (serving's `OnnxModel`, fed whole columns), and write one deterministic
Parquet part plus, when rows did not fit, a rejects part naming each row and its reason.

Row checks mirror the predict contract (functions/models/serving.py): a non-nullable feature that
is null is `missing`; a float outside +-3e38 or not finite and an int beyond 2**53 or not whole are
`range`; a string longer than its maximum is `length`; a category the model does not know is
`category`; a column whose type cannot feed the feature is `type` for every row; a CSV or JSON
Lines row the reader cannot parse (wrong field count, a value not of the column's type, bad JSON)
is `unparseable`. A row is rejected for its first failing feature, in feature order.

Memory: Parquet chunks are read, scored and written one row group at a time; a text chunk is read
whole (its byte range). As in validation, a CSV chunk is cut at newlines, so quoted fields holding
newlines are not supported in files scored in several chunks. A malformed text chunk is re-read in
halves until each bad row stands alone, so k bad rows cost about k * log2(rows) small reads; clean
chunks are read once.

Nothing here knows S3 or Lambda: bytes come from a `ByteSource`, parts are returned as bytes.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.json as pjson
import pyarrow.parquet as pq

from functions.logic.batch_capture import CaptureSample
from functions.logic.batch_header import check_columns as check_columns  # the chunk scorer's column check
from functions.logic.serving_runtime import OnnxModel
from functions.logic.validation import arrow_type
from functions.logic.validation_files import (
    ByteSource,
    Chunk,
    Unreadable,
    csv_header,
    detect_format,
    plan_chunks,
)
from functions.logic.validation_files import _parquet as parquet_file
from functions.models.batch import BatchInputInvalid, ChunkCounts
from functions.models.datasets import FileFormat
from functions.models.registry import Feature
from functions.models.serving import DEFAULT_STRING_MAX_LENGTH, FLOAT_LIMIT, INT_LIMIT

PART_COMPRESSION = "snappy"
# Dictionary-encode only the few-valued output columns: dictionary attempts on the float
# probabilities (and statistics on them) made writing a part almost 3x slower and it larger.
PART_DICTIONARY = ["prediction", "model_version"]
_ONNX_ARROW = {
    "tensor(string)": pa.string(),
    "tensor(int64)": pa.int64(),
    "tensor(int32)": pa.int32(),
    "tensor(float)": pa.float32(),
    "tensor(double)": pa.float64(),
    "tensor(bool)": pa.bool_(),
}
_NUMBER_TYPES = ("int", "float", "bool")
_Reader = Callable[[bytes], pa.Table]


@dataclass(frozen=True)
class Lookup:
    """Feature lookups of a chunk's rows: the input columns they read (entity keys, event time) and
    the join adding the looked-up columns to a piece (functions/logic/batch_run.py builds it from
    the version's feature views: the point-in-time join against their offline layouts)."""

    columns: list[str]
    join: Callable[[pa.Table], pa.Table]


# -- planning --------------------------------------------------------------------------------------


def plan(source: ByteSource, name: str, chunk_bytes: int) -> tuple[FileFormat, list[Chunk]]:
    """The input's format and its chunks (validation's planner); BatchInputInvalid if the file is
    empty, of an unsupported format or unreadable."""
    if source.size == 0:
        raise BatchInputInvalid(f"{name}: empty file (0 bytes)")
    fmt = detect_format(name, source.read(0, 4))
    if fmt is None:
        raise BatchInputInvalid(f"{name}: unsupported format: use .parquet, .csv or .jsonl")
    try:
        if fmt == "csv":
            csv_header(source)
        return fmt, plan_chunks(source, fmt, chunk_bytes)
    except Unreadable as exc:
        raise BatchInputInvalid(f"{name}: {exc}") from exc


def input_columns(source: ByteSource, fmt: FileFormat) -> list[str] | None:
    """The input's column names (Parquet schema, CSV header); None for JSON Lines (no header)."""
    try:
        if fmt == "parquet":
            return list(parquet_file(source).schema_arrow.names)
        if fmt == "csv":
            return csv_header(source)
    except (Unreadable, pa.ArrowException, OSError, ValueError) as exc:
        raise BatchInputInvalid(f"cannot read the input's columns: {str(exc)[:300]}") from exc
    return None


# -- reading ---------------------------------------------------------------------------------------


@dataclass
class Piece:
    """Rows read from a chunk: the table (features and pass-through columns), each row's index
    among the chunk's data rows, and the rows the reader could not parse (index, reason)."""

    table: pa.Table
    rows: np.ndarray
    unparseable: list[tuple[int, str]] = field(default_factory=list)


def _pieces(
    source: ByteSource, fmt: FileFormat, chunk: Chunk, features: list[Feature], passthrough: list[str]
) -> Iterator[Piece]:
    wanted = [f.name for f in features] + [p for p in passthrough if p not in {f.name for f in features}]
    if fmt == "parquet":
        try:
            pf = parquet_file(source)
            present = [n for n in wanted if n in pf.schema_arrow.names]
            offset = 0
            for group in chunk.row_groups:
                table = pf.read_row_group(group, columns=present)
                yield Piece(table, np.arange(offset, offset + table.num_rows, dtype=np.int64))
                offset += table.num_rows
        except (pa.ArrowException, OSError, ValueError, EOFError) as exc:
            raise BatchInputInvalid(f"cannot read Parquet chunk {chunk.index}: {str(exc)[:300]}") from exc
        return
    data = source.read(chunk.start, chunk.end)
    reader = _csv_reader(source, features, passthrough) if fmt == "csv" else _jsonl_reader(features, passthrough)
    try:
        table = reader(data)
        yield Piece(table.select([n for n in wanted if n in table.column_names]), np.arange(table.num_rows))
        return
    except pa.ArrowInvalid:
        pass  # some rows do not parse: find them
    lines = [line for line in data.split(b"\n") if line.strip()]
    tables: list[pa.Table] = []
    indices: list[np.ndarray] = []
    bad: list[tuple[int, str]] = []
    _bisect(reader, lines, 0, len(lines), tables, indices, bad)
    tables = [t.select([n for n in wanted if n in t.column_names]) for t in tables]
    rows = np.concatenate(indices) if indices else np.zeros(0, np.int64)
    yield Piece(_concat(tables, passthrough), rows, bad)


def input_rows(
    source: ByteSource, fmt: FileFormat, chunk: Chunk, features: list[Feature], passthrough: list[str]
) -> Iterator[Piece]:
    """A chunk's rows as the scorer reads them (features and pass-through columns), piece by piece."""
    return _pieces(source, fmt, chunk, features, passthrough)


def _bisect(
    reader: _Reader,
    lines: list[bytes],
    start: int,
    end: int,
    tables: list[pa.Table],
    indices: list[np.ndarray],
    bad: list[tuple[int, str]],
) -> None:
    """Read lines[start:end]; where that fails, each half, down to the single rows that fail."""
    if start >= end:
        return
    try:
        table = reader(b"\n".join(lines[start:end]) + b"\n")
    except pa.ArrowInvalid as exc:
        if end - start == 1:
            bad.append((start, str(exc).splitlines()[0][:300]))
            return
        middle = (start + end) // 2
        _bisect(reader, lines, start, middle, tables, indices, bad)
        _bisect(reader, lines, middle, end, tables, indices, bad)
        return
    tables.append(table)
    indices.append(np.arange(start, end, dtype=np.int64))


def _concat(tables: list[pa.Table], passthrough: list[str]) -> pa.Table:
    if not tables:
        return pa.table({})
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # pass-through columns inferred differently in different halves: keep them as text
        text = []
        for t in tables:
            for p in passthrough:
                if p in t.column_names:
                    t = t.set_column(t.column_names.index(p), p, t.column(p).cast(pa.string()))
            text.append(t)
        return pa.concat_tables(text, promote_options="permissive")


def _text_type(feature: Feature) -> pa.DataType:
    return pa.string() if feature.type == "category" else arrow_type(feature.type)


def _csv_reader(source: ByteSource, features: list[Feature], passthrough: list[str]) -> _Reader:
    header = csv_header(source)
    by_name = {f.name: f for f in features}
    types = {n: _text_type(by_name[n]) if n in by_name else pa.string() for n in header}
    include = [n for n in header if n in by_name or n in passthrough]

    def read(data: bytes) -> pa.Table:
        return pcsv.read_csv(
            io.BytesIO(data),
            read_options=pcsv.ReadOptions(column_names=header, block_size=8 << 20),
            convert_options=pcsv.ConvertOptions(
                column_types={n: types[n] for n in include}, include_columns=include, strings_can_be_null=True
            ),
        )

    return read


def _jsonl_reader(features: list[Feature], passthrough: list[str]) -> _Reader:
    schema = pa.schema([(f.name, _text_type(f)) for f in features])

    def read(data: bytes) -> pa.Table:
        return pjson.read_json(
            io.BytesIO(data),
            read_options=pjson.ReadOptions(block_size=8 << 20),
            parse_options=pjson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer"),
        )

    return read


# -- checking and converting -----------------------------------------------------------------------


@dataclass
class _Checked:
    values: np.ndarray  # what the session is fed for this feature, every row
    problems: list[tuple[np.ndarray, str, str]]  # (bad rows, reason category, message)


def _numpy(mask: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)


def _plain(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(column.type):
        return column.cast(column.type.value_type)
    return column


def _check(feature: Feature, column: pa.ChunkedArray | None, n: int, text_input: bool) -> _Checked:
    name = feature.name
    if column is None:  # a nullable feature the input does not carry: null in every row
        return _Checked(np.full(n, "" if text_input else np.nan, dtype=object if text_input else np.float64), [])
    column = _plain(column)
    problems: list[tuple[np.ndarray, str, str]] = []
    null = _numpy(column.is_null())
    if not feature.nullable and null.any():
        problems.append((null, f"missing:{name}", f"feature {name!r} is missing (null)"))
    kind = column.type
    if feature.type == "timestamp" and not text_input:
        return _timestamp(feature, column, null, problems)
    if feature.type in _NUMBER_TYPES and not text_input:
        accepted = (
            pa.types.is_integer(kind) or pa.types.is_floating(kind)
            if feature.type != "bool"
            else pa.types.is_boolean(kind)
        )
        if not accepted:
            problems.append(
                (~null, f"type:{name}", f"feature {name!r} is {kind} in the input, the model takes {feature.type}")
            )
            return _Checked(np.full(n, np.nan), problems)
        values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
        if pa.types.is_floating(kind):
            limit = FLOAT_LIMIT if feature.type == "float" else INT_LIMIT
            with np.errstate(invalid="ignore"):
                out = ~null & ~(np.abs(values) <= limit)
                if feature.type == "int":
                    out |= ~null & (values != np.floor(values))
            if out.any():
                what = "a finite number within +-3e38" if feature.type == "float" else "a whole number within 2**53"
                problems.append((out, f"range:{name}", f"feature {name!r} is not {what}"))
        elif feature.type == "int" and pa.types.is_integer(kind):
            big = ~null & (np.abs(values) > INT_LIMIT)
            if big.any():
                problems.append((big, f"range:{name}", f"feature {name!r} is beyond 2**53"))
        return _Checked(values, problems)
    # text inputs: strings and categories (a numeric feature fed as text is written as text)
    text = column.cast(pa.string())
    limit = feature.max_length or DEFAULT_STRING_MAX_LENGTH
    if feature.type in ("string", "category"):
        long = ~null & _numpy(pc.fill_null(pc.greater(pc.utf8_length(text), limit), False))
        if long.any():
            problems.append((long, f"length:{name}", f"feature {name!r} is longer than {limit} characters"))
    if feature.type == "category" and feature.categories:
        unknown = ~null & ~_numpy(pc.is_in(text, value_set=pa.array(feature.categories, pa.string())))
        if unknown.any():
            problems.append(
                (
                    unknown,
                    f"category:{name}",
                    f"feature {name!r} is not one of the model's {len(feature.categories)} categories",
                )
            )
    return _Checked(pc.fill_null(text, "").to_numpy(zero_copy_only=False), problems)


def _timestamp(feature: Feature, column: pa.ChunkedArray, null: np.ndarray, problems: list) -> _Checked:  # type: ignore[type-arg]
    name = feature.name
    try:
        if pa.types.is_timestamp(column.type) and column.type.tz is not None:
            column = column.cast(pa.timestamp(column.type.unit))  # UTC wall time, as naive values are read
        stamps = column.cast(pa.timestamp("us"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        problems.append((~null, f"type:{name}", f"feature {name!r} is {column.type} in the input, not a timestamp"))
        return _Checked(np.full(len(column), np.nan), problems)
    micros = stamps.cast(pa.int64()).to_numpy(zero_copy_only=False)
    if micros.dtype.kind != "f":
        micros = micros.astype(np.float64)
    seconds = np.floor_divide(micros, 1_000_000) + np.mod(micros, 1_000_000) / 1_000_000
    return _Checked(seconds, problems)


# -- scoring one piece ----------------------------------------------------------------------------


@dataclass
class ChunkScorer:
    """Scores the pieces of one chunk into a part (and a rejects part) for one loaded version."""

    model: OnnxModel
    chunk: int
    passthrough: list[str]
    counts: Counter[str] = field(default_factory=Counter)
    rows: int = 0
    scored: int = 0
    rejected: int = 0
    capture: CaptureSample | None = None  # a sample of the scored rows for monitoring, when the job captures

    def __post_init__(self) -> None:
        self._part = pa.BufferOutputStream()
        self._rejects = pa.BufferOutputStream()
        self._part_writer: pq.ParquetWriter | None = None
        self._rejects_writer: pq.ParquetWriter | None = None
        self._text_inputs = [
            self.model.matrix_input is None and self.model.column_dtypes[name] is np.object_
            for name in self.model.input_names
        ]
        outputs = self.model.session.get_outputs()
        self._prediction_type = _ONNX_ARROW.get(outputs[0].type, pa.float64())
        classes = len(self.model.version.class_labels or []) or (
            outputs[1].shape[1] if self.model.classifier and isinstance(outputs[1].shape[1], int) else 0
        )
        self._classes = classes

    def _writer(self, schema: pa.Schema) -> pq.ParquetWriter:
        """The part's writer: statistics on the pass-through columns only (what readers filter on)."""
        return pq.ParquetWriter(
            self._part,
            schema,
            compression=PART_COMPRESSION,
            use_dictionary=PART_DICTIONARY,
            write_statistics=list(self.passthrough),
        )

    def output_schema(self, table: pa.Table) -> pa.Schema:
        fields = [table.schema.field(p) for p in self.passthrough]
        fields.append(pa.field("prediction", self._prediction_type))
        if self.model.classifier:
            fields.append(pa.field("probabilities", pa.list_(pa.float32(), self._classes)))
        fields.append(pa.field("model_version", pa.int32(), nullable=False))
        return pa.schema(fields)

    def add(self, piece: Piece) -> None:
        table = piece.table
        n = table.num_rows
        features = self.model.version.features
        checked = [
            _check(f, table.column(f.name) if f.name in table.column_names else None, n, text)
            for f, text in zip(features, self._text_inputs, strict=True)
        ]
        reason = np.full(n, -1, dtype=np.int32)
        messages: list[str] = []
        categories: list[str] = []
        for c in checked:
            for bad, category, message in c.problems:
                reason = np.where((reason < 0) & bad, len(messages), reason)
                messages.append(message)
                categories.append(category)
        good = reason < 0
        self._write_part(table, checked, good, piece.rows)
        self._write_rejects(table, piece, reason, messages, categories)
        self.rows += n + len(piece.unparseable)

    def _write_part(self, table: pa.Table, checked: list[_Checked], good: np.ndarray, rows: np.ndarray) -> None:
        kept = int(good.sum())
        everything = kept == len(good)
        if kept:
            columns = [c.values if everything else c.values[good] for c in checked]
            predictions, probabilities = self.model.score_arrays(columns)
        else:
            predictions, probabilities = np.zeros(0, dtype=np.float64), None
        schema = self.output_schema(table)
        arrays: list[pa.Array | pa.ChunkedArray] = []
        passed = table.select(self.passthrough)
        if not everything:
            passed = passed.filter(pa.array(good))
        arrays += [passed.column(p) for p in self.passthrough]
        if predictions.dtype.kind == "f":
            arrays.append(pa.array(predictions, mask=~np.isfinite(predictions)).cast(self._prediction_type))
        else:
            arrays.append(pa.array(predictions if kept else [], type=self._prediction_type))
        if self.model.classifier:
            flat = (
                np.ascontiguousarray(probabilities, dtype=np.float32).ravel()
                if probabilities is not None
                else np.zeros(0, np.float32)
            )
            arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(flat), self._classes))
        arrays.append(pa.array(np.full(kept, self.model.version.version, dtype=np.int32)))
        out = pa.Table.from_arrays(arrays, schema=schema)
        if self._part_writer is None:
            self._part_writer = self._writer(schema)
        self._part_writer.write_table(out)
        self.scored += kept
        if self.capture is not None and kept:
            scored = table if everything else table.filter(pa.array(good))
            self.capture.offer(scored, rows if everything else rows[good], predictions, probabilities)

    def _write_rejects(
        self, table: pa.Table, piece: Piece, reason: np.ndarray, messages: list[str], categories: list[str]
    ) -> None:
        bad = reason >= 0
        count = int(bad.sum())
        if not count and not piece.unparseable:
            return
        for index, total in zip(*np.unique(reason[bad], return_counts=True), strict=True):
            self.counts[categories[index]] += int(total)
        self.counts["unparseable"] += len(piece.unparseable)
        if not self.counts["unparseable"]:
            del self.counts["unparseable"]
        rows = np.concatenate([piece.rows[bad], np.array([r for r, _ in piece.unparseable], dtype=np.int64)])
        texts = pa.array(messages, pa.string()).take(pa.array(reason[bad]))
        why = pa.concat_arrays([texts, pa.array([m for _, m in piece.unparseable], pa.string())])
        columns: dict[str, pa.Array | pa.ChunkedArray] = {}
        mask = pa.array(bad)
        for p in self.passthrough:
            values = table.column(p).filter(mask).cast(pa.string()) if p in table.column_names else None
            tail = pa.nulls(len(piece.unparseable), pa.string())
            columns[p] = pa.concat_arrays([*(values.chunks if values is not None else []), tail])
        columns["chunk"] = pa.array(np.full(len(rows), self.chunk, dtype=np.int32))
        columns["row"] = pa.array(rows)
        columns["reason"] = why
        out = pa.table(columns)
        order = pc.sort_indices(out, sort_keys=[("row", "ascending")])
        out = out.take(order)
        if self._rejects_writer is None:
            self._rejects_writer = pq.ParquetWriter(self._rejects, out.schema, compression=PART_COMPRESSION)
        self._rejects_writer.write_table(out)
        self.rejected += len(rows)

    def finish(self) -> tuple[bytes, bytes | None, ChunkCounts]:
        """(part bytes, rejects bytes or None, counts)."""
        if self._part_writer is None:  # a chunk with no rows at all
            schema = self.output_schema(pa.table({p: pa.array([], pa.string()) for p in self.passthrough}))
            self._part_writer = self._writer(schema)
        self._part_writer.close()
        rejects = None
        if self._rejects_writer is not None:
            self._rejects_writer.close()
            rejects = self._rejects.getvalue().to_pybytes()
        counts = ChunkCounts(
            chunk=self.chunk,
            rows=self.rows,
            scored=self.scored,
            rejected=self.rejected,
            reasons=dict(sorted(self.counts.items())),
        )
        return self._part.getvalue().to_pybytes(), rejects, counts


def score_chunk(
    model: OnnxModel,
    source: ByteSource,
    fmt: FileFormat,
    chunk: Chunk,
    passthrough: list[str],
    capture: CaptureSample | None = None,
    lookup: Lookup | None = None,
) -> tuple[bytes, bytes | None, ChunkCounts]:
    """Score one chunk of the input: (part bytes, rejects part bytes or None, counts); `capture`,
    when given, is offered every scored row (it keeps its bounded sample); `lookup`, when given,
    adds to each piece the feature-view columns looked up for its rows (from the input columns it
    names) before the rows are checked and scored."""
    scorer = ChunkScorer(model, chunk.index, list(passthrough), capture=capture)
    extra = [c for c in (lookup.columns if lookup is not None else []) if c not in passthrough]
    for piece in _pieces(source, fmt, chunk, model.version.features, [*passthrough, *extra]):
        if lookup is not None:
            piece.table = lookup.join(piece.table).drop_columns([c for c in extra if c in piece.table.column_names])
        missing = [p for p in passthrough if p not in piece.table.column_names]
        if missing and piece.table.num_rows:
            raise BatchInputInvalid(f"pass-through column(s) {missing} are not in chunk {chunk.index} of the input")
        if missing:  # no parseable row at all in this piece: the pass-through columns are empty
            for p in missing:
                piece.table = piece.table.append_column(p, pa.array([], pa.string()))
        scorer.add(piece)
    return scorer.finish()
