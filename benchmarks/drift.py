"""Drift check benchmark: 1,000,000 reference rows vs 1,000,000 current rows, 20 numeric and
5 categorical features, 3 of them shifted (x3: +0.2 std mean, x7: 1.3x scale, c2: "a" 10% -> 25%).

Prints the flagged features, rows/second of the check (Parquet read included, pinned to one core,
single-threaded Arrow), rows/second of compaction from gzip JSON Lines, and peak memory of the
check above its starting point (measured in a fresh process per run), with medians over runs.
The check runs twice: inputs alone, and with the output (prediction drift: a regressor's outputs,
which x3's shift moves) and data-quality sections (a contract with a range rule per numeric
feature and the categories of each categorical one).

    .venv/bin/python benchmarks/drift.py [--rows 1000000] [--runs 5] [--compaction-rows 200000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from functions.logic.compaction import PREDICTION, ROW_GROUP_SIZE, compact_objects, to_parquet_bytes  # noqa: E402
from functions.logic.drift import check_drift, iter_parquet_row_groups  # noqa: E402
from functions.logic.drift_outputs import output_profile  # noqa: E402
from functions.logic.drift_sections import check_window  # noqa: E402
from functions.logic.profile import build_reference_profile  # noqa: E402
from functions.models.contracts import ColumnSpec, DataContract  # noqa: E402
from functions.models.drift import DriftReport, FeatureDrift  # noqa: E402
from functions.models.profile import ReferenceProfile  # noqa: E402
from functions.models.registry import Feature  # noqa: E402

CATS = np.array(["a", "b", "c", "d", "e"])
BASE_P = [0.1, 0.3, 0.3, 0.2, 0.1]
SHIFTED_P = [0.25, *(np.array(BASE_P[1:]) * 0.75 / 0.9)]
FEATURES = [Feature(name=f"x{i}", type="float") for i in range(20)] + [
    Feature(name=f"c{j}", type="category") for j in range(5)
]
EXPECTED = ["x3", "x7", "c2"]


def make_table(n: int, seed: int, shifted: bool) -> pa.Table:
    rng = np.random.default_rng(seed)
    cols: dict[str, pa.Array | np.ndarray] = {}
    for i in range(20):
        x = rng.normal(loc=i, scale=1 + i / 10, size=n)
        if shifted and i == 3:
            x = x + 0.2 * (1 + i / 10)
        if shifted and i == 7:
            x = i + (x - i) * 1.3
        cols[f"x{i}"] = x
    for j in range(5):
        p = SHIFTED_P if shifted and j == 2 else BASE_P
        cols[f"c{j}"] = pa.DictionaryArray.from_arrays(
            pa.array(rng.choice(5, size=n, p=p).astype(np.int32)), pa.array(CATS)
        )
    return pa.table(cols)


CONTRACT = DataContract(
    columns=[
        ColumnSpec(name=f"x{i}", type="float", min=i - 6 * (1 + i / 10), max=i + 6 * (1 + i / 10)) for i in range(20)
    ]
    + [ColumnSpec(name=f"c{j}", type="category", categories=list(CATS)) for j in range(5)]
)


def predictions(table: pa.Table) -> np.ndarray:
    """A regressor's outputs: x3 weighs most, so x3's shift moves them."""
    x = {i: table.column(f"x{i}").to_numpy() for i in (1, 3, 5)}
    return 2.0 * x[3] + 0.3 * x[1] - 0.2 * x[5]


def with_outputs(table: pa.Table) -> pa.Table:
    return table.append_column(PREDICTION, pa.array(predictions(table)))


def status_mb(field: str) -> float:
    """VmRSS (resident now) or VmHWM (peak resident) of this process, in MB."""
    with open("/proc/self/status") as f:
        for row in f:
            if row.startswith(field + ":"):
                return int(row.split()[1]) / 1024
    return 0.0


def reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0); ru_maxrss would carry the parent's peak."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _check(profile: ReferenceProfile, groups: Any, sections: bool, model: str) -> DriftReport:
    if sections:
        return check_window(profile, groups, model=model, version=1, contract=CONTRACT, dataset="bench")
    return check_drift(profile, groups, model=model, version=1)


def check_once(parquet: str, profile_path: str, mode: str) -> None:
    """One check in this (fresh) process; prints a JSON line of figures. mode: inputs | sections."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    sections = mode == "sections"
    profile = ReferenceProfile.from_bytes(Path(profile_path).read_bytes())
    # warm the code paths on the first row group so first-call costs are not measured
    _check(profile, [next(iter_parquet_row_groups([parquet]))], sections, "w")
    reset_peak()
    before = status_mb("VmRSS")
    start_cpu, start = time.process_time(), time.perf_counter()
    report = _check(profile, iter_parquet_row_groups([parquet]), sections, "bench")
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    peak = status_mb("VmHWM")
    print(
        json.dumps(
            {
                "rows": report.row_count,
                "wall_s": wall,
                "cpu_s": cpu,
                "rss_before_mb": before,
                "peak_mb": peak,
                "flagged": report.drifted_features,
                "verdict": report.verdict,
                "stats": {f.name: _effect(f) for f in report.features if f.name in EXPECTED},
                "outputs": report.outputs.verdict if report.outputs else None,
                "data_quality": report.data_quality.verdict if report.data_quality else None,
                "violations": {r.rule: r.violations for r in report.data_quality.rules} if report.data_quality else {},
            }
        )
    )


def _effect(f: FeatureDrift) -> tuple[float, float] | None:
    """(KS D, PSI) of a numeric feature, (JS distance, PSI) of a categorical one."""
    if f.numeric:
        return f.numeric.ks_d, f.numeric.psi
    if f.categorical:
        return f.categorical.js_distance, f.categorical.psi
    return None


def jsonl_objects(table: pa.Table, rows_per_object: int = 10_000) -> list[bytes]:
    cols = {name: table.column(name).to_pylist() for name in table.column_names}
    names = table.column_names
    objects = []
    for start in range(0, table.num_rows, rows_per_object):
        lines = []
        for i in range(start, min(start + rows_per_object, table.num_rows)):
            lines.append(
                json.dumps(
                    {
                        "request_id": f"r{i}",
                        "model": "bench",
                        "version": 1,
                        "variant": "production",
                        "time": "2026-11-26T12:00:00.000Z",
                        "features": {n: cols[n][i] for n in names},
                        "prediction": 0.5,
                        "probabilities": None,
                    },
                    separators=(",", ":"),
                )
            )
        objects.append(gzip.compress("\n".join(lines).encode(), compresslevel=6))
    return objects


def _print_runs(mode: str, runs: list[dict[str, Any]], budget: float) -> None:
    what = "inputs only" if mode == "inputs" else "inputs + outputs + data quality"
    first = runs[0]
    flagged = first["flagged"]
    exact = sorted(flagged) == sorted(EXPECTED)
    print(f"[{what}] flagged: {flagged} -> {'exactly the 3 shifted' if exact else f'MISMATCH, expected {EXPECTED}'}")
    flagged_all = {tuple(sorted(r["flagged"])) for r in runs}
    assert len(flagged_all) == 1, f"runs disagree: {flagged_all}"
    print(f"[{what}] model verdict: {first['verdict']}; shifted features (KS D or JS, PSI): {first['stats']}")
    if mode == "sections":
        print(
            f"[{what}] outputs: {first['outputs']}; data quality: {first['data_quality']} "
            f"(violations: {first['violations']})"
        )
    rates = [r["rows"] / r["wall_s"] for r in runs]
    cpu_rates = [r["rows"] / r["cpu_s"] for r in runs]
    peaks = [r["peak_mb"] - r["rss_before_mb"] for r in runs]
    print(
        f"[{what}] check (Parquet read included, 1 core): median {statistics.median(rates) / 1e6:.2f} M rows/s "
        f"wall, {statistics.median(cpu_rates) / 1e6:.2f} M rows/s CPU; runs (wall): "
        + ", ".join(f"{r / 1e6:.2f}" for r in rates)
    )
    print(
        f"[{what}] peak memory of the check above its start: median {statistics.median(peaks):.1f} MB "
        f"(max {max(peaks):.1f}); budget profile + one row group + 100 MB = {budget:.1f} MB; "
        f"absolute peak RSS incl. interpreter, numpy, pyarrow: median "
        f"{statistics.median(r['peak_mb'] for r in runs):.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--compaction-rows", type=int, default=200_000)
    parser.add_argument("--check-once", nargs=3, metavar=("PARQUET", "PROFILE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.check_once:
        check_once(*args.check_once)
        return

    print(f"load average before: {os.getloadavg()}  cpus: {os.cpu_count()}")
    reference = make_table(args.rows, 1, shifted=False)
    start = time.perf_counter()
    profile = build_reference_profile(reference, FEATURES)
    profile_s = time.perf_counter() - start
    holdout = make_table(args.rows // 5, 3, shifted=False)  # the outputs' reference: a holdout's predictions
    profile = profile.model_copy(update={"outputs": output_profile("regression", None, values=predictions(holdout))})
    del holdout
    profile_bytes = profile.to_bytes()
    del reference
    current = make_table(args.rows, 2, shifted=True)
    row_group_mb = current.slice(0, ROW_GROUP_SIZE).nbytes / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        parquet, profile_path = f"{tmp}/current.parquet", f"{tmp}/profile.json"
        Path(parquet).write_bytes(to_parquet_bytes(with_outputs(current)))
        Path(profile_path).write_bytes(profile_bytes)
        parquet_mb = os.path.getsize(parquet) / 1e6
        groups = pq.ParquetFile(parquet).num_row_groups
        print(
            f"reference profile: {len(profile_bytes) / 1e3:.1f} KB, built in {profile_s:.2f} s "
            f"({args.rows / profile_s / 1e6:.2f} M rows/s)"
        )
        print(
            f"current: {parquet_mb:.1f} MB Parquet, {groups} row groups of {ROW_GROUP_SIZE} rows "
            f"({row_group_mb:.1f} MB in memory each)"
        )

        for mode in ("inputs", "sections"):
            runs = []
            for _ in range(args.runs):
                out = subprocess.run(
                    [sys.executable, __file__, "--check-once", parquet, profile_path, mode],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            _print_runs(mode, runs, len(profile_bytes) / 1e6 + row_group_mb + 100)

    sample = current.slice(0, args.compaction_rows)
    objects = jsonl_objects(sample)
    gz_mb = sum(len(o) for o in objects) / 1e6
    comp_rates, comp_cpu_rates = [], []
    for _ in range(args.runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = compact_objects(objects, FEATURES, "regression")
        to_parquet_bytes(result.table)
        comp_rates.append(sample.num_rows / (time.perf_counter() - start))
        comp_cpu_rates.append(sample.num_rows / (time.process_time() - start_cpu))
    assert result.table.num_rows == sample.num_rows and result.rejected == 0
    print(
        f"compaction gzip JSONL -> Parquet ({sample.num_rows} rows, {gz_mb:.1f} MB gzip, Arrow threads: "
        f"{pa.cpu_count()}): median {statistics.median(comp_rates) / 1e3:.0f} k rows/s wall, "
        f"{statistics.median(comp_cpu_rates) / 1e3:.0f} k rows/s CPU; runs (wall): "
        + ", ".join(f"{r / 1e3:.0f}" for r in comp_rates)
    )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
