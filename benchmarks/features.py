"""Point-in-time join benchmark: 1,000,000 label rows x 10,000,000 feature rows (10 float
features, 100,000 entities), as-of join with a 7-day TTL, against pandas.merge_asof on the same data
in the same run.

Prints the one-time layout cost (sort by entity and time + Parquet + sha256) separately, the layout
read, the join's label rows/second (layout in memory; labels streamed from Parquet row groups), the
join's peak memory (RSS high-water mark above the process's RSS before the layout read, measured in
a fresh process, against the bytes of the feature columns read), pandas.merge_asof's time including
the sorts by time it requires, and one line comparing the two: values identical and nulls in the
same places, or the mismatches. Both sides run pinned to one core, Arrow single-threaded.

    .venv/bin/python benchmarks/features.py [--labels 1000000] [--feature-rows 10000000]
        [--entities 100000] [--ttl-days 7] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from functions.logic.offline_store import ROW_GROUP_SIZE, build_layout, load_layout  # noqa: E402
from functions.logic.pit_join import JoinView, PointInTimeJoin  # noqa: E402
from functions.models.features_offline import OfflineLayoutManifest, SourceVersionRef  # noqa: E402

FEATURES = [f"f{i}" for i in range(10)]
SPAN_US = 365 * 24 * 3600 * 1_000_000  # one year of event times
T0 = np.datetime64("2024-01-01T00:00:00", "us").astype(np.int64)
SOURCE = SourceVersionRef(dataset="bench-features", version=1, sha256="0" * 64)


def pin_one_core() -> None:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)


def status_mb(field: str) -> float:
    """VmRSS (resident now) or VmHWM (peak resident) of this process, in MB."""
    with open("/proc/self/status") as f:
        for row in f:
            if row.startswith(field + ":"):
                return int(row.split()[1]) / 1024
    return 0.0


def reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def make_features(rows: int, entities: int, seed: int = 1) -> pa.Table:
    """Feature rows in arrival order (not sorted). Event times are unique per row (slot * rows +
    row number), so (entity, time) is unique as the contract requires."""
    rng = np.random.default_rng(seed)
    slots = rng.integers(0, SPAN_US // rows, size=rows)
    times = T0 + slots * rows + np.arange(rows)
    cols: dict[str, np.ndarray | pa.Array] = {
        "entity": rng.integers(0, entities, size=rows),
        "ts": pa.array(times, pa.timestamp("us")),
    }
    for name in FEATURES:
        cols[name] = rng.standard_normal(rows)
    return pa.table(cols)


def make_labels(rows: int, entities: int, seed: int = 2) -> pa.Table:
    """Label rows: 2% of them name entities the features do not have; times span the features'
    year plus a month either side."""
    rng = np.random.default_rng(seed)
    month = 30 * 24 * 3600 * 1_000_000
    times = T0 - month + rng.integers(0, SPAN_US + 2 * month, size=rows)
    return pa.table(
        {
            "entity": rng.integers(0, int(entities * 1.02), size=rows),
            "time": pa.array(times, pa.timestamp("us")),
            "label": rng.integers(0, 2, size=rows),
        }
    )


def join_once(
    layout_path: str, manifest_path: str, labels_path: str, out_path: str, runs: int, ttl_days: float
) -> None:
    """In a fresh process: read the layout, join the labels `runs` times, print a JSON line of figures
    and write the joined feature columns for the comparison."""
    pin_one_core()
    manifest = OfflineLayoutManifest.model_validate_json(Path(manifest_path).read_text())
    labels = pq.ParquetFile(labels_path)
    labels.read_row_group(0)  # warm the label reader's code paths outside the measurement
    reset_peak()
    rss_before = status_mb("VmRSS")
    start = time.perf_counter()
    layout = load_layout(layout_path, manifest)
    read_s = time.perf_counter() - start
    feature_bytes = sum(layout.table.column(n).nbytes for n in FEATURES)
    all_bytes = layout.table.nbytes + layout.times_ns.nbytes + layout.starts.nbytes
    view = JoinView("v", layout, ttl=timedelta(days=ttl_days))
    times, cpu_times = [], []
    result: pa.Table | None = None
    counts = None
    for _ in range(runs):
        result = None
        start, start_cpu = time.perf_counter(), time.process_time()
        join = PointInTimeJoin([view], time_column="time")
        result = pa.Table.from_batches(list(join.join(labels.iter_batches(batch_size=ROW_GROUP_SIZE))))
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - start_cpu)
        counts = join.counts[0]
    peak = status_mb("VmHWM")
    assert result is not None and counts is not None
    pq.write_table(result.select([f"v:{n}" for n in FEATURES]), out_path)
    print(
        json.dumps(
            {
                "rows": result.num_rows,
                "read_s": read_s,
                "join_s": times,
                "join_cpu_s": cpu_times,
                "rss_before_mb": rss_before,
                "peak_mb": peak,
                "feature_mb": feature_bytes / 1e6,
                "layout_mb": all_bytes / 1e6,
                "counts": counts.model_dump(),
            }
        )
    )


def merge_asof_once(features: pd.DataFrame, labels: pd.DataFrame, ttl_days: float) -> tuple[float, float, pd.DataFrame]:
    """pandas.merge_asof as a user has to call it: both sides sorted by time first (timed).
    Returns (wall seconds, CPU seconds, merged)."""
    start, start_cpu = time.perf_counter(), time.process_time()
    right = features.sort_values("time", kind="stable")
    left = labels.sort_values("time", kind="stable")
    merged = pd.merge_asof(
        left, right, on="time", by="entity", direction="backward", tolerance=pd.Timedelta(days=ttl_days)
    )
    return time.perf_counter() - start, time.process_time() - start_cpu, merged


def compare(ours: pa.Table, merged: pd.DataFrame) -> list[str]:
    """Mismatches between our joined columns (label order) and merge_asof's (restored to label order)."""
    order = merged["_row"].to_numpy()
    problems = []
    for name in FEATURES:
        theirs = np.empty(len(order))
        theirs[order] = merged[name].to_numpy()
        mine = ours.column(f"v:{name}")
        mine_null = mine.is_null().to_numpy(zero_copy_only=False)
        theirs_null = np.isnan(theirs)
        values = mine.fill_null(np.nan).to_numpy()
        if not np.array_equal(mine_null, theirs_null):
            problems.append(f"{name}: nulls differ in {int((mine_null != theirs_null).sum())} rows")
        elif not np.array_equal(values[~mine_null], theirs[~theirs_null]):
            problems.append(f"{name}: values differ in {int((values != theirs)[~mine_null].sum())} rows")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--labels", type=int, default=1_000_000)
    parser.add_argument("--feature-rows", type=int, default=10_000_000)
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--ttl-days", type=float, default=7.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--join-once", nargs=4, metavar=("LAYOUT", "MANIFEST", "LABELS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.join_once:
        layout, manifest, labels, out = args.join_once
        join_once(layout, manifest, labels, out, runs=args.runs, ttl_days=args.ttl_days)
        return

    pin_one_core()
    print(f"load average before: {os.getloadavg()}  cpus: {os.cpu_count()} (each side pinned to one)")
    features = make_features(args.feature_rows, args.entities)
    labels = make_labels(args.labels, args.entities)
    print(
        f"data: {args.labels} label rows x {args.feature_rows} feature rows, {len(FEATURES)} float features, "
        f"{args.entities} entities, TTL {args.ttl_days:g} days"
    )
    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        start = time.perf_counter()
        built = build_layout(features, source=SOURCE, entity_keys=["entity"], timestamp_column="ts")
        layout_s = time.perf_counter() - start
        layout_path, manifest_path = f"{tmp}/layout.parquet", f"{tmp}/manifest.json"
        Path(layout_path).write_bytes(built.data)
        Path(manifest_path).write_text(built.manifest.model_dump_json())
        del built
        labels_path, out_path = f"{tmp}/labels.parquet", f"{tmp}/joined.parquet"
        pq.write_table(labels, labels_path, row_group_size=ROW_GROUP_SIZE)
        print(
            f"one-time layout (sort by entity and time, Parquet, sha256): {layout_s:.2f} s "
            f"({args.feature_rows / layout_s / 1e6:.2f} M feature rows/s), "
            f"{os.path.getsize(layout_path) / 1e6:.0f} MB Parquet"
        )

        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--runs",
                str(args.runs),
                "--ttl-days",
                str(args.ttl_days),
                "--join-once",
                layout_path,
                manifest_path,
                labels_path,
                out_path,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        figures = json.loads(proc.stdout.strip().splitlines()[-1])
        ours = pq.read_table(out_path)

    join_s = statistics.median(figures["join_s"])
    rate = figures["rows"] / join_s
    print(f"layout read (Parquet + sha256 check, one time per join process): {figures['read_s']:.2f} s")
    print(
        f"join (layout in memory, labels streamed from Parquet): median {rate / 1e6:.2f} M label rows/s "
        f"({join_s:.3f} s), CPU {figures['rows'] / statistics.median(figures['join_cpu_s']) / 1e6:.2f} M rows/s; "
        "runs (s): " + ", ".join(f"{s:.3f}" for s in figures["join_s"])
    )
    print(f"join including the layout read: {figures['rows'] / (join_s + figures['read_s']) / 1e6:.2f} M label rows/s")
    print(f"counts: {figures['counts']}")
    peak = figures["peak_mb"] - figures["rss_before_mb"]
    print(
        f"peak memory (RSS high-water mark above the start, layout read + join): {peak:.0f} MB = "
        f"{peak / figures['feature_mb']:.2f}x the feature columns read ({figures['feature_mb']:.0f} MB; "
        f"with the event times and entity runs held for the join {figures['layout_mb']:.0f} MB)"
    )

    frame_features = features.rename_columns(["entity", "time", *FEATURES]).to_pandas()
    frame_labels = labels.to_pandas().assign(_row=np.arange(labels.num_rows))
    del features, labels
    pandas_times, pandas_cpu = [], []
    merged = None
    for _ in range(args.runs):
        merged = None
        seconds, cpu, merged = merge_asof_once(frame_features, frame_labels, args.ttl_days)
        pandas_times.append(seconds)
        pandas_cpu.append(cpu)
    assert merged is not None
    pandas_s = statistics.median(pandas_times)
    print(
        f"pandas.merge_asof (sorts by time included, as it requires): median {pandas_s:.3f} s "
        f"({args.labels / pandas_s / 1e6:.2f} M label rows/s); runs (s): " + ", ".join(f"{s:.3f}" for s in pandas_times)
    )
    problems = compare(ours, merged)
    verdict = "identical results" if not problems else "DIFFERENT results: " + "; ".join(problems)
    print(f"ratio: {pandas_s / join_s:.1f}x vs pandas.merge_asof, {verdict}")
    cpu_ratio = statistics.median(pandas_cpu) / statistics.median(figures["join_cpu_s"])
    print(f"ratio (CPU time, less sensitive to other load on the machine): {cpu_ratio:.1f}x vs pandas.merge_asof")
    print(f"load average after: {os.getloadavg()}")
    if problems:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
