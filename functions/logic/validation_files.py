"""Read an uploaded file (Parquet, CSV, JSON Lines) in one piece or in chunks and validate it.

Bytes come from a `ByteSource` (an in-memory buffer here, ranged S3 GETs in dal), so this module
knows nothing of S3 or Lambda. Files up to `Limits.chunk_bytes` are read whole; bigger files are
planned as chunks (Parquet: runs of row groups; CSV and JSON Lines: newline-aligned byte ranges)
and validated one after the other with the same report. On AWS the same `plan_chunks` /
`check_chunk` / `finish` steps run as a Step Functions Distributed Map (infra/constructs/ingestion.py).

Limitations: CSV byte-range chunks split at newlines, so quoted fields with embedded newlines are
only supported in files validated in one piece. JSON Lines is read with the contract's schema, so
a declared field absent from every line reads as nulls (its nulls rule catches a required one)
rather than failing the columns rule.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.json as pjson
import pyarrow.parquet as pq

from functions.logic.validation import Partial, arrow_type, check_table, finish, unreadable
from functions.models.contracts import DataContract
from functions.models.datasets import FileFormat, ValidationReport
from functions.models.errors import StepwiseError
from functions.observability import logger

PARQUET_MAGIC = b"PAR1"
SUFFIXES: dict[str, FileFormat] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
_CSV_COLUMN = re.compile(r"In CSV column #(\d+)")
_JSON_COLUMN = re.compile(r"Column\(/([^)]*)\)")


class ByteSource(Protocol):
    @property
    def size(self) -> int:
        """Total bytes."""
        ...

    def read(self, start: int, end: int) -> bytes:
        """Bytes [start, end)."""
        ...


@dataclass
class BytesSource:
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def read(self, start: int, end: int) -> bytes:
        return self.data[start:end]


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 50 * 1024**3  # refused above this ("too big")
    chunk_bytes: int = 256 * 1024**2  # read whole up to this; chunked above


@dataclass(frozen=True)
class Chunk:
    index: int
    start: int = 0  # byte range (CSV, JSON Lines)
    end: int = 0
    row_groups: tuple[int, ...] = ()  # Parquet


class Unreadable(Exception):
    """The file (or a chunk of it) cannot be read at all."""


class ColumnTypeError(Exception):
    """A reader could not convert a column to its declared type (CSV, JSON Lines)."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column


def detect_format(name: str, head: bytes) -> FileFormat | None:
    lowered = name.lower()
    for suffix, fmt in SUFFIXES.items():
        if lowered.endswith(suffix):
            return fmt
    return "parquet" if head.startswith(PARQUET_MAGIC) else None


class _RangeFile(io.RawIOBase):
    """A seekable read-only file over a ByteSource (for Parquet footers and row groups)."""

    def __init__(self, source: ByteSource) -> None:
        self._source = source
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._source.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size: int = -1) -> bytes:
        end = self._source.size if size is None or size < 0 else min(self._source.size, self._pos + size)
        data = self._source.read(self._pos, end) if end > self._pos else b""
        self._pos += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _parquet(source: ByteSource) -> pq.ParquetFile:
    if isinstance(source, BytesSource):
        return pq.ParquetFile(pa.BufferReader(source.data))
    return pq.ParquetFile(pa.PythonFile(_RangeFile(source), mode="r"))


# -- planning --------------------------------------------------------------------------------------


def header_end(source: ByteSource, fmt: FileFormat) -> int:
    """Where the data starts: after the CSV header line; 0 for JSON Lines."""
    return _next_line(source, 1) if fmt == "csv" else 0


def _next_line(source: ByteSource, pos: int) -> int:
    """The first line start at or after pos (pos 0 is a line start)."""
    if pos <= 0:
        return 0
    p = pos - 1
    while p < source.size:
        buf = source.read(p, min(source.size, p + 65_536))
        i = buf.find(b"\n")
        if i >= 0:
            return p + i + 1
        p += len(buf)
    return source.size


def plan_chunks(source: ByteSource, fmt: FileFormat, chunk_bytes: int) -> list[Chunk]:
    if fmt == "parquet":
        try:
            meta = _parquet(source).metadata
        except (pa.ArrowException, OSError, ValueError, EOFError) as exc:
            raise Unreadable(_reason(fmt, exc)) from exc
        groups: list[list[int]] = [[]]
        size = 0
        for i in range(meta.num_row_groups):
            rg_size = meta.row_group(i).total_byte_size
            if groups[-1] and size + rg_size > chunk_bytes:
                groups.append([])
                size = 0
            groups[-1].append(i)
            size += rg_size
        return [Chunk(index=i, row_groups=tuple(g)) for i, g in enumerate(groups)]
    start = header_end(source, fmt)
    chunks: list[Chunk] = []
    while start < source.size or not chunks:
        end = _next_line(source, min(source.size, start + chunk_bytes))
        chunks.append(Chunk(index=len(chunks), start=start, end=end))
        if end <= start:
            break
        start = end
    return chunks


# -- reading ---------------------------------------------------------------------------------------


def csv_header(source: ByteSource) -> list[str]:
    line = source.read(0, header_end(source, "csv"))
    try:
        return pcsv.read_csv(io.BytesIO(line)).column_names
    except pa.ArrowInvalid as exc:
        raise Unreadable(_reason("CSV header", exc)) from exc


def read_chunk(
    source: ByteSource,
    fmt: FileFormat,
    chunk: Chunk | None,
    contract: DataContract,
    as_text: frozenset[str] = frozenset(),
) -> tuple[pa.Table, list[str]]:
    """The chunk (None: the whole file) as a table of the declared columns, and the file's columns.

    CSV columns named in `as_text` are read as strings (their type rule then fails)."""
    declared = {c.name: c for c in contract.columns}
    try:
        if fmt == "parquet":
            pf = _parquet(source)
            present = pf.schema_arrow.names
            wanted = [n for n in present if n in declared]
            if chunk is None:
                return pf.read(columns=wanted), present
            return pf.read_row_groups(list(chunk.row_groups), columns=wanted), present
        if fmt == "csv":
            present = csv_header(source)
            start, end = (header_end(source, fmt), source.size) if chunk is None else (chunk.start, chunk.end)
            wanted = [n for n in present if n in declared]
            return (
                pcsv.read_csv(
                    _stream(source, start, end),
                    read_options=pcsv.ReadOptions(column_names=present, block_size=8 << 20),
                    convert_options=pcsv.ConvertOptions(
                        column_types={n: pa.string() if n in as_text else arrow_type(declared[n].type) for n in wanted},
                        include_columns=wanted,
                        strings_can_be_null=True,
                    ),
                ),
                present,
            )
        start, end = (0, source.size) if chunk is None else (chunk.start, chunk.end)
        schema = pa.schema(
            [(c.name, pa.string() if c.type == "category" else arrow_type(c.type)) for c in contract.columns]
        )
        table = pjson.read_json(
            _stream(source, start, end),
            read_options=pjson.ReadOptions(block_size=8 << 20),
            parse_options=pjson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer"),
        )
        present = table.column_names
        return table.select([n for n in present if n in declared]), present
    except pa.ArrowInvalid as exc:
        message = str(exc)
        if "UTF8" in message or "UTF-8" in message:
            raise Unreadable("not UTF-8 text (wrong encoding?)") from exc
        column = _failed_column(fmt, message, source, contract)
        if column is not None:
            raise ColumnTypeError(column, message.splitlines()[0][:300]) from exc
        raise Unreadable(_reason(fmt, exc)) from exc
    except (pa.ArrowException, OSError, ValueError, EOFError) as exc:
        raise Unreadable(_reason(fmt, exc)) from exc
    except MemoryError as exc:
        raise Unreadable("the file does not fit in this function's memory") from exc


def _stream(source: ByteSource, start: int, end: int) -> pa.NativeFile | io.BytesIO:
    """Bytes [start, end) as a stream for the Arrow readers (no copy for an in-memory file)."""
    if isinstance(source, BytesSource):
        return pa.BufferReader(pa.py_buffer(source.data).slice(start, end - start))
    return io.BytesIO(source.read(start, end))


def _failed_column(fmt: FileFormat, message: str, source: ByteSource, contract: DataContract) -> str | None:
    declared = {c.name for c in contract.columns}
    if fmt == "csv" and "conversion error" in message and (m := _CSV_COLUMN.search(message)):
        header = csv_header(source)
        index = int(m.group(1))
        return header[index] if index < len(header) else None
    if fmt == "jsonl":
        m = _JSON_COLUMN.search(message)
        if m and m.group(1) in declared:
            return m.group(1)
    return None


def _reason(what: str, exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"cannot read {what}: {text[:300]}"


def check_chunk(source: ByteSource, fmt: FileFormat, chunk: Chunk | None, contract: DataContract) -> Partial:
    """Read and check one chunk (or the whole file). A column that cannot be converted to its
    declared type fails that column's type rule; anything else unreadable raises Unreadable."""
    as_text: set[str] = set()
    while True:
        try:
            table, present = read_chunk(source, fmt, chunk, contract, frozenset(as_text))
            return check_table(table, contract, present=present)
        except ColumnTypeError as exc:
            if fmt == "csv" and exc.column not in as_text:
                as_text.add(exc.column)  # read it as text: its type rule fails, the others are checked
                continue
            start, end = (0, source.size) if chunk is None else (chunk.start, chunk.end)
            part = Partial(rows=source.read(start, end).count(b"\n"), present=[c.name for c in contract.columns])
            part.failed_types.add(exc.column)
            part.tally(f"type:{exc.column}").add(part.rows, [], str(exc))
            return part


# -- the whole file --------------------------------------------------------------------------------


def validate_source(
    source: ByteSource,
    name: str,
    contract: DataContract,
    *,
    dataset: str,
    contract_version: int,
    uri: str = "",
    limits: Limits = Limits(),
    on_chunk: Callable[[Chunk], None] | None = None,
) -> ValidationReport:
    """Validate one file: whole when small, in sequential chunks when big. Never raises for a
    bad file: an unreadable one gets a report that says why."""
    started = time.perf_counter()
    size = source.size
    common = {"dataset": dataset, "contract_version": contract_version, "source": uri, "size_bytes": size}
    if size == 0:
        return unreadable("empty file (0 bytes)", **common)  # type: ignore[arg-type]
    if size > limits.max_bytes:
        return unreadable(f"too big: {size} bytes; the limit is {limits.max_bytes} bytes", **common)  # type: ignore[arg-type]
    fmt = detect_format(name, source.read(0, 4))
    if fmt is None:
        return unreadable("unsupported format: use .parquet, .csv or .jsonl", **common)  # type: ignore[arg-type]
    try:
        if size <= limits.chunk_bytes:
            partials = [check_chunk(source, fmt, None, contract)]
        else:
            partials = []
            for chunk in plan_chunks(source, fmt, limits.chunk_bytes):
                if on_chunk is not None:
                    on_chunk(chunk)
                partials.append(check_chunk(source, fmt, chunk, contract))
    except Unreadable as exc:
        return unreadable(str(exc), fmt=fmt, **common)  # type: ignore[arg-type]
    except StepwiseError:
        raise  # a store that did not answer: the caller retries
    except Exception as exc:  # a file that trips something unforeseen still gets a report
        logger.exception("validation failed unexpectedly", extra={"dataset": dataset, "source": uri})
        reason = f"could not be validated: {type(exc).__name__}: {str(exc)[:300]}"
        return unreadable(reason, fmt=fmt, **common)  # type: ignore[arg-type]
    return finish(
        partials,
        contract,
        dataset=dataset,
        contract_version=contract_version,
        source=uri,
        fmt=fmt,
        size_bytes=size,
        elapsed_ms=(time.perf_counter() - started) * 1000,
    )
