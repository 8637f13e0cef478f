"""Batch scoring benchmark: the chunk scorer (functions/logic/batch.py) over a generated Parquet file
of 10,000,000 rows x 25 float features, in-process on one core, against scikit-learn's
`predict_proba` on the same model and rows in the same run.

The model is the demo's type: HistGradientBoostingClassifier (max_iter 100, learning rate 0.1,
three classes like the wine data), trained on 10,000 generated rows by the lifecycle's own code
(prepare, fit, float32 alignment, skl2onnx export) and loaded as serving loads it (sha256 verified).
The file is read through a ByteSource of positioned reads (as S3 ranged GETs are), planned into
chunks by validation's planner (runs of row groups up to 256 MB), and each chunk is scored into a
Parquet part in memory (pass-through id, prediction, probabilities, model version).

Figures: rows/second (wall and CPU) of the chunk scorer including the Parquet read and write;
the peak memory of a chunk (the RSS high-water mark, reset before each chunk, above the RSS
before it) against the in-memory size of one row group; scikit-learn's rows/second for
`predict_proba` alone (its input frame already built, so the ratio favours scikit-learn) and the
ratio; and whether the two agree on every label. Everything runs pinned to one core, Arrow and
OpenMP single-threaded. Figures are printed, never asserted.

    .venv/bin/python benchmarks/batch.py [--rows 10000000] [--row-group 262144] [--classes 3]
        [--max-iter 100] [--estimator hgb|random-forest] [--sklearn-rows N (default: all)]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from functions.logic import batch  # noqa: E402
from functions.logic import training as tr  # noqa: E402
from functions.logic.serving_runtime import OnnxModel  # noqa: E402
from functions.logic.validation_files import Limits  # noqa: E402
from functions.models.registry import Artifact, ModelVersion, VersionStatus  # noqa: E402
from functions.models.specs import TrainingSpec  # noqa: E402

FEATURES = [f"x{i}" for i in range(25)]
GOAL_ROWS_PER_S = 1_000_000
GOAL_RATIO = 5.0


def pin_one_core() -> None:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)


def _labels(x: np.ndarray, classes: int) -> np.ndarray:
    score = x[:, 0] + 0.5 * x[:, 1] - 0.7 * x[:, 2] + 0.3 * x[:, 3] * x[:, 4]
    edges = np.quantile(score, np.linspace(0, 1, classes + 1)[1:-1])
    return np.array([f"class_{k}" for k in range(classes)])[np.searchsorted(edges, score)]


def _rows(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.normal(size=(n, len(FEATURES)))


ESTIMATORS = {
    # the lifecycle demo's spec (stepwise/demo_lifecycle.py): 3 classes x max_iter trees
    "hgb": lambda max_iter: {
        "name": "HistGradientBoostingClassifier",
        "params": {"max_iter": max_iter, "learning_rate": 0.1},
    },
    # the feature demo's spec (stepwise/demo_features.py)
    "random-forest": lambda _: {"name": "RandomForestClassifier", "params": {"n_estimators": 30, "max_depth": 6}},
}


def train(classes: int, max_iter: int, estimator: str = "hgb") -> tuple[Any, OnnxModel]:
    rng = np.random.default_rng(1)
    x = _rows(rng, 10_000)
    table = pa.table({name: x[:, i] for i, name in enumerate(FEATURES)} | {"label": _labels(x, classes)})
    spec = TrainingSpec.model_validate(
        {
            "name": "bench",
            "model": "bench-model",
            "dataset": "bench",
            "target": "label",
            "features": FEATURES,
            "task": "classification",
            "estimator": ESTIMATORS[estimator](max_iter),
        }
    )
    prepared = tr.prepare(spec, table, [])
    fitted = tr.fit(spec, prepared)
    graph_inputs = tr.graph_inputs_for(prepared.features)
    onnx = tr.export_onnx(fitted, prepared.features, graph_inputs)
    now = datetime.now(UTC)
    version = ModelVersion(
        model="bench-model",
        version=1,
        status=VersionStatus.APPROVED,
        created_at=now,
        updated_at=now,
        task="classification",
        features=[f.model_copy(update={"nullable": False}) for f in prepared.features],
        graph_inputs=graph_inputs,
        target="label",
        class_labels=fitted.class_labels,
        artifacts={
            "onnx": Artifact(
                uri="s3://bench/models/bench-model/1/model.onnx",
                sha256=hashlib.sha256(onnx).hexdigest(),
                size_bytes=len(onnx),
            )
        },
    )
    return fitted.pipeline, OnnxModel.load(version, onnx, max_instances=1_000)


def generate(path: Path, rows: int, row_group: int) -> None:
    rng = np.random.default_rng(2)
    schema = pa.schema([("id", pa.int64())] + [(name, pa.float64()) for name in FEATURES])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, row_group):
            n = min(row_group, rows - start)
            x = _rows(rng, n)
            columns = [pa.array(np.arange(start, start + n, dtype=np.int64))]
            columns += [pa.array(x[:, i]) for i in range(len(FEATURES))]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))


class FileSource:
    """A ByteSource of positioned reads on a local file (what ranged S3 GETs are on AWS)."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        self._size = os.fstat(self._fd).st_size

    @property
    def size(self) -> int:
        return self._size

    def read(self, start: int, end: int) -> bytes:
        return os.pread(self._fd, end - start, start)


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def score_file(model: OnnxModel, path: Path) -> dict[str, Any]:
    source = FileSource(path)
    fmt, chunks = batch.plan(source, path.name, Limits().chunk_bytes)
    rows = 0
    part_bytes = 0
    peaks: list[int] = []
    wall = cpu = 0.0
    for chunk in chunks:
        resettable = _reset_peak()
        before = _status("VmRSS")
        started, cpu_started = time.perf_counter(), time.process_time()
        part, rejects, counts = batch.score_chunk(model, source, fmt, chunk, ["id"])
        wall += time.perf_counter() - started
        cpu += time.process_time() - cpu_started
        if resettable:
            peaks.append(_status("VmHWM") - before)
        rows += counts.scored
        part_bytes += len(part)
        assert rejects is None and counts.rejected == 0
        del part
    return {
        "chunks": len(chunks),
        "rows": rows,
        "wall": wall,
        "cpu": cpu,
        "peak": max(peaks) if peaks else None,
        "part_bytes": part_bytes,
    }


def sklearn_run(pipeline: Any, model: OnnxModel, path: Path, limit: int) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    pf = pq.ParquetFile(path)
    features = list(model.version.features)
    done = 0
    wall = cpu = 0.0
    mismatches = 0
    with threadpool_limits(1):
        for group in range(pf.metadata.num_row_groups):
            if done >= limit:
                break
            table = pf.read_row_group(group, columns=FEATURES)
            table = table.slice(0, min(table.num_rows, limit - done))
            frame = tr.to_frame(table, features)
            started, cpu_started = time.perf_counter(), time.process_time()
            probabilities = pipeline.predict_proba(frame)
            wall += time.perf_counter() - started
            cpu += time.process_time() - cpu_started
            labels = np.asarray(pipeline.classes_)[probabilities.argmax(axis=1)]
            columns = [table.column(name).to_numpy() for name in FEATURES]
            onnx_labels, _ = model.score_arrays(columns)
            mismatches += int((np.asarray(onnx_labels).astype(str) != labels.astype(str)).sum())
            done += table.num_rows
    return {"rows": done, "wall": wall, "cpu": cpu, "mismatches": mismatches}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--row-group", type=int, default=262_144)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--estimator", choices=sorted(ESTIMATORS), default="hgb", help="the demos' estimators")
    parser.add_argument("--sklearn-rows", type=int, default=0, help="rows scikit-learn scores (default: all)")
    args = parser.parse_args()
    pin_one_core()
    figures: dict[str, Any] = {"load average at start": os.getloadavg()[0]}
    pipeline, model = train(args.classes, args.max_iter, args.estimator)
    final = pipeline.steps[-1][1]
    trees = sum(len(per) for per in getattr(final, "_predictors", [])) or len(getattr(final, "estimators_", []))
    figures["model"] = f"{type(final).__name__}, {args.classes} classes, {trees} trees, 25 features"
    with tempfile.TemporaryDirectory(prefix="stepwise-batch-bench-") as tmp:
        path = Path(tmp) / "input.parquet"
        started = time.perf_counter()
        generate(path, args.rows, args.row_group)
        figures["input"] = (
            f"{args.rows} rows, {path.stat().st_size / 1e6:.0f} MB Parquet, row groups of {args.row_group} rows "
            f"({args.row_group * (len(FEATURES) + 1) * 8 / 1e6:.0f} MB in memory each), "
            f"generated in {time.perf_counter() - started:.1f} s"
        )
        scored = score_file(model, path)
        rate = scored["rows"] / scored["wall"]
        figures["chunks"] = scored["chunks"]
        figures["chunk scorer M rows/s (read + check + ONNX + write, 1 core)"] = rate / 1e6
        figures["chunk scorer M rows/s (CPU time)"] = scored["rows"] / scored["cpu"] / 1e6
        if scored["peak"] is not None:
            figures["peak MB per chunk above its start"] = scored["peak"] / 1e6
        figures["parts MB"] = scored["part_bytes"] / 1e6
        limit = args.sklearn_rows or args.rows
        reference = sklearn_run(pipeline, model, path, limit)
        sk_rate = reference["rows"] / reference["wall"]
        figures["sklearn predict_proba M rows/s (frame built, 1 core)"] = sk_rate / 1e6
        figures["sklearn predict_proba M rows/s (CPU time)"] = reference["rows"] / reference["cpu"] / 1e6
        figures["ratio chunk scorer / sklearn (wall)"] = rate / sk_rate
        figures["label mismatches ONNX vs sklearn"] = f"{reference['mismatches']} of {reference['rows']}"
    figures["goals"] = (
        f">= {GOAL_ROWS_PER_S / 1e6:.0f} M rows/s: {'met' if rate >= GOAL_ROWS_PER_S else 'NOT met'}; "
        f">= {GOAL_RATIO:.0f}x sklearn: {'met' if rate / sk_rate >= GOAL_RATIO else 'NOT met'}"
    )
    figures["load average at end"] = os.getloadavg()[0]
    for name, value in figures.items():
        print(f"{name}: {value:.3g}" if isinstance(value, float) else f"{name}: {value}")
    out = os.environ.get("STEPWISE_BENCH_JSON")
    if out:
        Path(out).write_text(json.dumps(figures))


if __name__ == "__main__":
    main()
