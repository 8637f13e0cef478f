"""Validation throughput: 1,000,000 rows x 25 columns (20 numeric, 5 categorical, with nulls).

    .venv/bin/python benchmarks/validate.py [--rows 1000000] [--repeat 7] [--out benchmarks/out]

Generates the Parquet file (and the same data as CSV), then measures, on one core
(Arrow's CPU and I/O pools set to one thread):
  - validate: every rule of the contract on the loaded table (median of --repeat runs), rows/s
  - read+validate: the whole path from Parquet bytes to report
  - CSV read with the contract's explicit schema, rows/s
  - peak memory of one validation beyond the loaded table (the process's peak RSS is reset
    through /proc/self/clear_refs before the run, read from VmHWM after; Arrow's pool peak too)
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from functions.logic.validation import check_table, finish
from functions.logic.validation_files import BytesSource, Limits, check_chunk, read_chunk, validate_source
from functions.models.contracts import DataContract

NUMERIC = 20
CATEGORICAL = 5
CATEGORIES = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]


def contract() -> DataContract:
    columns: list[dict[str, object]] = [{"name": "id", "type": "int", "nullable": False}]
    for i in range(1, NUMERIC - 1):
        columns.append({"name": f"x{i:02d}", "type": "float", "min": -10.0, "max": 10.0, "max_null_fraction": 0.1})
    columns.append({"name": "count", "type": "int", "min": 0, "max": 1000, "max_null_fraction": 0.1})
    for i in range(CATEGORICAL):
        columns.append({"name": f"c{i}", "type": "category", "categories": CATEGORIES, "max_null_fraction": 0.1})
    columns[-1] = {**columns[-1], "pattern": "[a-z]+"}
    return DataContract.model_validate(
        {"columns": columns, "key": "id", "min_rows": 1, "max_rows": 1_000_000_000, "target": "id"}
    )


def generate(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    cols: dict[str, pa.Array] = {"id": pa.array(rng.permutation(rows).astype(np.int64) + 1)}
    for i in range(1, NUMERIC - 1):
        values = rng.normal(0, 2, rows).clip(-9.9, 9.9)
        cols[f"x{i:02d}"] = pa.array(values, mask=rng.random(rows) < 0.02)
    cols["count"] = pa.array(rng.integers(0, 1000, rows), mask=rng.random(rows) < 0.02)
    for i in range(CATEGORICAL):
        idx = pa.array(rng.integers(0, len(CATEGORIES), rows).astype(np.int32), mask=rng.random(rows) < 0.02)
        cols[f"c{i}"] = pa.DictionaryArray.from_arrays(idx, pa.array(CATEGORIES))
    return pa.table(cols)


def rss_peak_reset() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def measure(label: str, fn, rows: int, repeat: int, figures: dict[str, object]) -> None:  # type: ignore[no-untyped-def]
    """Median wall-clock and CPU time of `repeat` runs, as rows/s. On a loaded machine the CPU
    time (this process only; Arrow runs single-threaded here) is what one core does."""
    walls, cpus = [], []
    for _ in range(repeat):
        gc.collect()
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    figures[f"{label} M rows/s"] = round(rows / wall / 1e6, 2)
    figures[f"{label} M rows/s (CPU time)"] = round(rows / cpu / 1e6, 2)
    print(
        f"{label}: median {wall * 1000:.1f} ms wall ({rows / wall / 1e6:.2f} M rows/s), "
        f"{cpu * 1000:.1f} ms CPU ({rows / cpu / 1e6:.2f} M rows/s) over {repeat} runs"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--out", default="benchmarks/out")
    parser.add_argument(
        "--big-rows", type=int, default=0, help="also validate a CSV of this many rows in sequential 64 MB chunks"
    )
    args = parser.parse_args(argv)
    figures: dict[str, object] = {"load average at start": os.getloadavg()[0], "cpus": os.cpu_count()}
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    c = contract()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    table = generate(args.rows)
    parquet_path = out / "validate.parquet"
    pq.write_table(table, parquet_path, row_group_size=256 * 1024)
    # CSV as exports usually look: floats with 4 decimals, no quoting (17-digit floats double the bytes)
    csv_table = pa.table(
        {n: pc.round(table[n], 4) if pa.types.is_floating(table[n].type) else table[n] for n in table.column_names}
    )
    csv_buf = io.BytesIO()
    pcsv.write_csv(csv_table, csv_buf, write_options=pcsv.WriteOptions(quoting_style="none"))
    del csv_table
    csv_bytes = csv_buf.getvalue()
    (out / "validate.csv").write_bytes(csv_bytes)
    parquet_bytes = parquet_path.read_bytes()
    del table
    print(
        f"file: {args.rows} rows x 25 columns; "
        f"parquet {len(parquet_bytes) / 1e6:.1f} MB, csv {len(csv_bytes) / 1e6:.1f} MB"
    )

    loaded = pq.read_table(pa.BufferReader(parquet_bytes), use_threads=False)
    report = finish([check_table(loaded, c)], c, dataset="bench", contract_version=1)
    assert report.passed, report.reason
    print(f"verdict: {report.verdict}, {len(report.rules)} rules")
    figures["rules"] = len(report.rules)

    measure(
        "validate (loaded table)",
        lambda: finish([check_table(loaded, c)], c, dataset="bench", contract_version=1),
        args.rows,
        args.repeat,
        figures,
    )
    source = BytesSource(parquet_bytes)
    measure(
        "read parquet + validate",
        lambda: finish([check_chunk(source, "parquet", None, c)], c, dataset="bench", contract_version=1),
        args.rows,
        args.repeat,
        figures,
    )
    csv_source = BytesSource(csv_bytes)
    measure(
        "read csv (contract's explicit schema)",
        lambda: read_chunk(csv_source, "csv", None, c),
        args.rows,
        args.repeat,
        figures,
    )
    measure(
        "read csv + validate",
        lambda: finish([check_chunk(csv_source, "csv", None, c)], c, dataset="bench", contract_version=1),
        args.rows,
        args.repeat,
        figures,
    )

    # memory of one validation beyond the loaded table: Arrow allocations through a proxy pool
    # that counts only this run, numpy's through tracemalloc (numpy reports to it); their sum
    # bounds the peak from above. The RSS high-water mark is printed as a cross-check (freed
    # pages that the allocator keeps mapped from the earlier runs hide growth there).
    gc.collect()
    default_pool = pa.default_memory_pool()
    proxy = pa.proxy_memory_pool(default_pool)
    pa.set_memory_pool(proxy)
    tracemalloc.start()
    base_kb = status_kb("VmRSS")
    reset = rss_peak_reset()
    finish([check_table(loaded, c)], c, dataset="bench", contract_version=1)
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    pa.set_memory_pool(default_pool)
    peak_kb = status_kb("VmHWM")
    arrow_peak = proxy.max_memory() or 0
    print(
        f"peak memory beyond the loaded table ({loaded.nbytes / 1e6:.0f} MB): "
        f"{(arrow_peak + py_peak) / 1e6:.1f} MB (Arrow {arrow_peak / 1e6:.1f} MB + numpy/Python {py_peak / 1e6:.1f} MB)"
    )
    figures["peak MB beyond the loaded table"] = round((arrow_peak + py_peak) / 1e6, 1)
    if reset:
        print(f"RSS high-water mark during the run: +{max(0, peak_kb - base_kb) / 1024:.1f} MB")
    if args.big_rows:
        big_file(args.big_rows, c, out, figures)
    figures["load average at end"] = os.getloadavg()[0]
    print(
        f"machine: {os.cpu_count()} cpus, load average {figures['load average at start']:.1f} at start, "
        f"{figures['load average at end']:.1f} at end"
    )
    if os.environ.get("STEPWISE_BENCH_JSON"):
        Path(os.environ["STEPWISE_BENCH_JSON"]).write_text(json.dumps(figures))
    return 0


def big_file(rows: int, c: DataContract, out: Path, figures: dict[str, object]) -> None:
    """A CSV bigger than one chunk, written in pieces and validated in sequential 64 MB chunks from
    disk (the local cloud's path for files over STEPWISE_VALIDATE_CHUNK_BYTES)."""
    path = out / "validate-big.csv"
    piece = 1_000_000
    with path.open("wb") as fh:
        for start in range(0, rows, piece):
            table = generate(min(piece, rows - start), seed=start)
            table = table.set_column(0, "id", pa.array(np.arange(start, start + table.num_rows, dtype=np.int64) + 1))
            floats = {n: pc.round(table[n], 4) for n in table.column_names if pa.types.is_floating(table[n].type)}
            for name, col in floats.items():
                table = table.set_column(table.schema.get_field_index(name), name, col)
            buf = io.BytesIO()
            pcsv.write_csv(table, buf, write_options=pcsv.WriteOptions(quoting_style="none", include_header=start == 0))
            fh.write(buf.getvalue())
    size = path.stat().st_size
    source = FileSource(path)
    base_kb = status_kb("VmRSS")
    rss_peak_reset()
    started = time.perf_counter()
    report = validate_source(
        source, path.name, c, dataset="bench", contract_version=1, limits=Limits(chunk_bytes=64 * 1024**2)
    )
    elapsed = time.perf_counter() - started
    peak_kb = status_kb("VmHWM")
    assert report.passed, report.reason
    print(
        f"big csv: {rows} rows, {size / 1e9:.2f} GB, {report.chunks} chunks, {elapsed:.1f} s "
        f"-> {rows / elapsed / 1e6:.2f} M rows/s, RSS peak +{(peak_kb - base_kb) / 1024:.0f} MB"
    )
    figures["big csv GB"] = round(size / 1e9, 2)
    figures["big csv chunks"] = report.chunks
    figures["big csv M rows/s"] = round(rows / elapsed / 1e6, 2)
    figures["big csv RSS peak MB"] = round((peak_kb - base_kb) / 1024)
    path.unlink()


class FileSource:
    """A ByteSource over a local file (ranged reads, like S3RangeSource does on S3)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = path.stat().st_size

    def read(self, start: int, end: int) -> bytes:
        with self.path.open("rb") as fh:
            fh.seek(start)
            return fh.read(max(0, end - start))


if __name__ == "__main__":
    raise SystemExit(main())
