"""The columns of a batch input, read without pyarrow: the top-level names of a Parquet file's
schema (its footer, Thrift compact protocol) and a CSV file's header line (the csv module).

The API function carries only the base layer (Powertools, pydantic, boto3), and the chunk scorer's
readers import pyarrow and ONNX Runtime; this module lets the API refuse an input that does not
read or lacks a column (400, nothing stored, no workflow started) by reading a few KB of the object.
The plan step checks the same with pyarrow before any chunk is scored.
"""

from __future__ import annotations

import csv
import io
import struct
from typing import Protocol

from functions.models.batch import OUTPUT_COLUMNS, BatchInputInvalid
from functions.models.datasets import FileFormat
from functions.models.registry import Feature

PARQUET_MAGIC = b"PAR1"
MAX_FOOTER_BYTES = 64 * 1024**2  # a footer above this is refused as unreadable (the scorer reads it whole)
MAX_HEADER_BYTES = 1024**2  # a CSV header line longer than this is refused


class ByteSource(Protocol):
    @property
    def size(self) -> int: ...

    def read(self, start: int, end: int) -> bytes: ...


class _Malformed(Exception):
    pass


class _Compact:
    """Just enough of Thrift's compact protocol to walk a struct and skip what it does not need."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise _Malformed("footer ends early")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise _Malformed("varint too long")

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def binary(self) -> bytes:
        n = self.varint()
        if n < 0 or self.pos + n > len(self.data):
            raise _Malformed("string past the footer's end")
        value = self.data[self.pos : self.pos + n]
        self.pos += n
        return value

    def field_header(self, last: int) -> tuple[int, int]:
        """(field id, type); type 0 is the struct's end."""
        b = self.byte()
        kind = b & 0x0F
        if kind == 0:
            return 0, 0
        delta = b >> 4
        return (last + delta if delta else self.zigzag()), kind

    def list_header(self) -> tuple[int, int]:
        b = self.byte()
        size = b >> 4
        if size == 0x0F:
            size = self.varint()
        return size, b & 0x0F

    def skip(self, kind: int, depth: int = 0) -> None:
        if depth > 32:
            raise _Malformed("nesting too deep")
        if kind in (1, 2):  # bool (the value is the type)
            return
        if kind == 3:
            self.byte()
        elif kind in (4, 5, 6):
            self.varint()
        elif kind == 7:
            self.pos += 8
        elif kind == 8:
            self.binary()
        elif kind in (9, 10):
            size, element = self.list_header()
            for _ in range(size):
                self.skip(element if element != 1 else 3, depth + 1)
        elif kind == 11:
            size = self.varint()
            if size:
                types = self.byte()
                for _ in range(size):
                    self.skip(types >> 4, depth + 1)
                    self.skip(types & 0x0F, depth + 1)
        elif kind == 12:
            last = 0
            while True:
                last, sub = self.field_header(last)
                if sub == 0:
                    return
                self.skip(sub, depth + 1)
        else:
            raise _Malformed(f"unknown Thrift type {kind}")


def _schema_element(reader: _Compact) -> tuple[str, int]:
    """(name, num_children) of one SchemaElement (field 4 name, field 5 num_children)."""
    name, children, last = None, 0, 0
    while True:
        last, kind = reader.field_header(last)
        if kind == 0:
            break
        if last == 4 and kind == 8:
            name = reader.binary().decode("utf-8", errors="replace")
        elif last == 5 and kind == 5:
            children = reader.zigzag()
        else:
            reader.skip(kind)
    if name is None:
        raise _Malformed("a schema element has no name")
    return name, children


def parquet_columns(source: ByteSource) -> list[str]:
    """The top-level column names of a Parquet file's schema (FileMetaData field 2)."""
    if source.size < 12:
        raise _Malformed(f"{source.size} bytes is too short for Parquet")
    tail = source.read(source.size - 8, source.size)
    if tail[4:] != PARQUET_MAGIC:
        raise _Malformed("no Parquet footer (the file does not end with PAR1)")
    length = struct.unpack("<I", tail[:4])[0]
    if not 0 < length <= min(MAX_FOOTER_BYTES, source.size - 12):
        raise _Malformed(f"footer length {length} does not fit the file")
    reader = _Compact(source.read(source.size - 8 - length, source.size - 8))
    last = 0
    while True:
        last, kind = reader.field_header(last)
        if kind == 0:
            raise _Malformed("the footer has no schema")
        if last != 2 or kind != 9:
            reader.skip(kind)
            continue
        size, element = reader.list_header()
        if element != 12 or size == 0:
            raise _Malformed("the footer's schema is not a list of elements")
        _, top = _schema_element(reader)  # the root
        names: list[str] = []
        pending = [top]  # children still to read at each open level
        for _ in range(size - 1):
            name, children = _schema_element(reader)
            if len(pending) == 1:
                names.append(name)
            pending[-1] -= 1
            if children > 0:
                pending.append(children)
            while len(pending) > 1 and pending[-1] == 0:
                pending.pop()
        if len(names) != top:
            raise _Malformed(f"the root names {top} columns, the schema lists {len(names)}")
        return names


def csv_columns(source: ByteSource) -> list[str]:
    """The header line of a CSV file (UTF-8, an optional BOM), parsed as csv does."""
    head = source.read(0, min(source.size, MAX_HEADER_BYTES))
    end = head.find(b"\n")
    if end < 0 and len(head) == MAX_HEADER_BYTES:
        raise _Malformed(f"no header line within the first {MAX_HEADER_BYTES} bytes")
    line = head if end < 0 else head[:end]
    try:
        text = line.decode("utf-8-sig").rstrip("\r")
    except UnicodeDecodeError as exc:
        raise _Malformed(f"the header is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    row = next(csv.reader(io.StringIO(text)), [])
    if not row or all(not name for name in row):
        raise _Malformed("the header line is empty")
    return row


def input_columns(source: ByteSource, fmt: FileFormat) -> list[str] | None:
    """The input's column names (Parquet schema, CSV header); None for JSON Lines (no header)."""
    try:
        if fmt == "parquet":
            return parquet_columns(source)
        if fmt == "csv":
            return csv_columns(source)
    except _Malformed as exc:
        raise BatchInputInvalid(f"cannot read the input's columns: {exc}") from exc
    return None


def check_columns(columns: list[str], features: list[Feature], passthrough: list[str], *, what: str) -> None:
    """BatchInputInvalid naming each non-nullable feature and each pass-through column the input
    lacks, and each pass-through column that would clash with an output column."""
    present = set(columns)
    details = [
        {"field": f"columns.{f.name}", "reason": f"feature {f.name!r} of {what} is not a column of the input"}
        for f in features
        if f.name not in present and not f.nullable
    ]
    details += [
        {"field": f"passthrough.{name}", "reason": f"{name!r} is not a column of the input"}
        for name in passthrough
        if name not in present
    ]
    details += [
        {"field": f"passthrough.{name}", "reason": f"{name!r} is an output column of every part"}
        for name in passthrough
        if name in OUTPUT_COLUMNS
    ]
    if details:
        raise BatchInputInvalid(f"the input does not fit {what}: " + "; ".join(d["reason"] for d in details), details)
