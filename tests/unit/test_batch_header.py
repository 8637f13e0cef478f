"""The batch input's columns read without pyarrow (functions/logic/batch_header.py), checked
against pyarrow's own reading of the same files, and the API function's import graph kept free of
pyarrow, numpy and ONNX Runtime (it carries the base layer only)."""

from __future__ import annotations

import io
import subprocess
import sys
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from functions.logic.batch_header import csv_columns, input_columns, parquet_columns
from functions.models.batch import BatchInputInvalid


@dataclass
class Bytes:
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def read(self, start: int, end: int) -> bytes:
        return self.data[start:end]


def _parquet(table: pa.Table, **options: object) -> Bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **options)  # type: ignore[arg-type]
    return Bytes(sink.getvalue())


TABLES = {
    "flat": pa.table({"a": [1.0, 2.0], "b": ["x", None], "c": [True, False]}),
    "nested": pa.table(
        {
            "id": [1, 2],
            "point": pa.array([{"x": 1.0, "y": {"z": 2}}, None]),
            "tags": pa.array([["a"], []]),
            "pairs": pa.array([[("k", 1)], []], type=pa.map_(pa.string(), pa.int64())),
            "last": ["é", "ü"],
        }
    ),
    "wide": pa.table({f"feature_{i:03d}": [float(i)] for i in range(300)}),
    "many groups": pa.table({"n": list(range(1000)), "s": [str(i) for i in range(1000)]}),
}


@pytest.mark.parametrize("name", TABLES)
def test_batch_header_parquet_columns_are_pyarrows_top_level_names(name: str) -> None:
    # Given a Parquet file written by pyarrow (statistics, several row groups, nested types)
    source = _parquet(TABLES[name], row_group_size=100)
    # When its columns are read from the footer without pyarrow
    got = parquet_columns(source)
    # Then they are the top-level names pyarrow reads
    assert got == pq.ParquetFile(io.BytesIO(source.data)).schema_arrow.names


@pytest.mark.parametrize(
    "data",
    [
        b"PAR1" + bytes(range(200)),  # no footer magic at the end
        b"PAR1" + b"\xff\xff\xff\x7f" + b"PAR1",  # too short
        b"PAR1" + bytes(100) + (1000).to_bytes(4, "little") + b"PAR1",  # footer longer than the file
        b"PAR1" + b"\x15\x02" * 20 + (40).to_bytes(4, "little") + b"PAR1",  # a footer without a schema
    ],
)
def test_batch_header_unreadable_parquet_is_a_clear_invalid_input(data: bytes) -> None:
    with pytest.raises(BatchInputInvalid, match="cannot read the input's columns"):
        input_columns(Bytes(data), "parquet")


def test_batch_header_csv_columns_follow_csv_quoting_and_a_bom() -> None:
    assert csv_columns(Bytes(b'\xef\xbb\xbfid,"mean, radius",x\r\n1,2,3\n')) == ["id", "mean, radius", "x"]
    assert csv_columns(Bytes(b"a,b")) == ["a", "b"]  # a header and no rows
    with pytest.raises(BatchInputInvalid, match="not UTF-8"):
        input_columns(Bytes(b"a,\xff\n1,2\n"), "csv")
    with pytest.raises(BatchInputInvalid, match="empty"):
        input_columns(Bytes(b"\n1,2\n"), "csv")
    assert input_columns(Bytes(b'{"a": 1}\n'), "jsonl") is None


def test_batch_header_the_api_function_imports_no_pyarrow_numpy_or_onnxruntime() -> None:
    # Given the API function's handler module (its routers, the batch router included)
    code = (
        "import sys, functions.handlers.api as api\n"
        "assert any(r.path == '/v1/models/<name>/batch' for r in api.app._dynamic_routes), 'no batch route'\n"
        "print(sorted(m for m in ('pyarrow', 'numpy', 'onnxruntime') if m in sys.modules))"
    )
    # When it is imported in a fresh interpreter
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120)
    # Then it routes batch requests and loaded none of the heavy packages the base layer lacks
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
