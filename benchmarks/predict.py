"""Inference benchmark: warm in-process handler latency, overhead over a bare ONNX Runtime run,
and the handler's cold import time.

    .venv/bin/python -m benchmarks.predict [--runs 3] [--iterations 2000] [--case all|plain|lookups] [--json]
    .venv/bin/python -m benchmarks.run predict        # the same, through the benchmark runner

The model is like the demo's: a 100-tree random forest on load_breast_cancer (30 float features),
exported with skl2onnx (zipmap off), served from moto S3/DynamoDB in-process. The handler runs
whole: Powertools resolver with validation, logger context, metrics (EMF to stdout, sent to
/dev/null here), alias cache (5 s TTL), the version's pydantic contract, routing, ONNX Runtime,
capture (sample rate 1, streamed into gzip, flushed to moto S3 every 20,000 rows). Tracing is disabled (no
X-Ray daemon). Every figure is the median over `--runs` runs; the load average is printed,
since the machine may be shared: then the wall-clock figures include time other processes held
the CPU, and the CPU-time figures (thread CPU per call, process CPU for the import) show what the
work itself costs. Figures are printed, never asserted.

The lookups case (`lookup_*` figures): a model trained through two feature views over the same
entity (the customer) with 10 looked-up features (5 each) and one request field, served by the
whole handler, against the same ONNX graph served plainly (all 11 features sent in the request).
The online store is a stub DynamoDB client given to functions/dal/online_lookup.py that answers
every BatchGetItem instantly from a dict (in this benchmark only: the figure is the in-process cost
of the lookup path, keys, batching, TTL, provenance, capture, without the network round trip).
`lookup_rows_N_overhead_*` = lookup path minus plain path; `lookup_rows_N_requests` = BatchGetItem
requests per prediction request (at most 100 entity keys each, whatever the number of views: N rows
of one entity each, so 1 for 100 rows).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {
    "one_row_median_ms": 1.0,
    "one_row_p99_ms": 5.0,
    "overhead_median_ms": 0.5,
    "cold_import_s": 0.6,
    "lookup_one_row_overhead_median_ms": 0.3,
}
IMPORT_PROBE = (
    "import time; t, c = time.perf_counter(), time.process_time(); import functions.handlers.predict; "
    "print(time.perf_counter() - t, time.process_time() - c)"
)


def _env() -> None:
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "POWERTOOLS_TRACE_DISABLED": "1",
            "POWERTOOLS_METRICS_NAMESPACE": "Stepwise",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            "STEPWISE_DATA_BUCKET": "bench-data",
            "STEPWISE_ARTIFACTS_BUCKET": "bench-artifacts",
            "STEPWISE_REGISTRY_TABLE": "bench-registry",
            "STEPWISE_METADATA_TABLE": "bench-metadata",
        }
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(fn: Any, iterations: int, warmup: int) -> tuple[list[float], list[float]]:
    """(wall-clock ms, thread CPU ms) per call. On a shared machine the wall clock includes the
    time other processes held the CPU; the thread's CPU time is what the call itself cost."""
    for _ in range(warmup):
        fn()
    walls, cpus = [], []
    clock, cpu = time.perf_counter, time.thread_time
    for _ in range(iterations):
        started, cpu_started = clock(), cpu()
        fn()
        walls.append((clock() - started) * 1e3)
        cpus.append((cpu() - cpu_started) * 1e3)
    return walls, cpus


def cold_import_seconds(runs: int) -> tuple[list[float], list[float]]:
    """(wall, CPU) seconds to import the handler in fresh interpreters. The environment is the
    Lambda one: tracing is on (Powertools' Tracer loads the X-Ray SDK, as it does in Lambda)."""
    env = {k: v for k, v in os.environ.items() if k != "POWERTOOLS_TRACE_DISABLED"}
    walls, cpus = [], []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", IMPORT_PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
        wall, cpu = done.stdout.strip().splitlines()[-1].split()
        walls.append(float(wall))
        cpus.append(float(cpu))
    return walls, cpus


def warm_figures(iterations: int) -> dict[str, float]:
    import boto3
    import numpy as np
    from moto import mock_aws

    from functions.handlers import predict
    from functions.logic.serving import Serving
    from functions.logic.serving_runtime import _session
    from functions.models.settings import get_settings
    from tests.integration.conftest import Stores, create_table
    from tests.integration.test_predict_support import (
        Context,
        breast_cancer_classifier,
        predict_event,
        put_model,
        put_version,
    )

    trained = breast_cancer_classifier("rf", 100)
    stores = Stores("bench-data", "bench-artifacts", "bench-registry", "bench-metadata")
    with mock_aws():
        s3 = boto3.client("s3")
        for bucket in (stores.data_bucket, stores.artifacts_bucket):
            s3.create_bucket(Bucket=bucket)
        create_table(stores.registry_table)
        put_version(stores, "demo", 1, trained)
        put_model(stores, "demo", production=1)
        get_settings.cache_clear()
        predict.reset(Serving(get_settings()))
        context = Context()
        # rows as a client sends them: decimals as in the dataset (6 significant digits)
        rows = [{k: float(f"{v:.6g}") for k, v in row.items()} for row in trained.instances(0, 100)]
        events = {n: predict_event("demo", {"instances": rows[:n], "request_id": "bench-1"}) for n in (1, 100)}
        bare = _session(trained.onnx)
        inputs = {n: trained.x[:n].astype(np.float32) for n in (1, 100)}
        figures: dict[str, float] = {}
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            for n, count in ((1, iterations), (100, max(200, iterations // 4))):
                event = events[n]
                reply = predict.lambda_handler(event, context)
                assert reply["statusCode"] == 200, reply
                handler, handler_cpu = timed(lambda e=event: predict.lambda_handler(e, context), count, count // 10)
                feed = {"input": inputs[n]}
                ort, ort_cpu = timed(lambda f=feed: bare.run(None, f), count, count // 10)
                figures[f"rows_{n}_median_ms"] = statistics.median(handler)
                figures[f"rows_{n}_p99_ms"] = percentile(handler, 0.99)
                figures[f"rows_{n}_bare_ort_median_ms"] = statistics.median(ort)
                figures[f"rows_{n}_overhead_median_ms"] = statistics.median(handler) - statistics.median(ort)
                figures[f"rows_{n}_cpu_median_ms"] = statistics.median(handler_cpu)
                figures[f"rows_{n}_cpu_p99_ms"] = percentile(handler_cpu, 0.99)
                figures[f"rows_{n}_overhead_cpu_median_ms"] = statistics.median(handler_cpu) - statistics.median(
                    ort_cpu
                )
        predict.reset(None)
    return figures


class StubDynamoDB:
    """Answers BatchGetItem instantly from `items` (by pk), counting requests (benchmark only)."""

    def __init__(self, table: str, items: dict[str, dict[str, Any]]) -> None:
        self.table = table
        self.items = items
        self.requests = 0

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.requests += 1
        keys = RequestItems[self.table]["Keys"]
        found = [self.items[k["pk"]["S"]] for k in keys if k["pk"]["S"] in self.items]
        return {"Responses": {self.table: found}, "UnprocessedKeys": {}}


def lookup_figures(iterations: int) -> dict[str, float]:
    """The lookup path's in-process overhead over the plain path (see the module docstring)."""
    from datetime import UTC, datetime, timedelta

    import boto3
    import numpy as np
    from moto import mock_aws

    from functions.dal.online_lookup import batch_get
    from functions.handlers import predict
    from functions.logic.serving import Serving
    from functions.models.registry import Feature
    from functions.models.settings import get_settings
    from tests.integration.conftest import Stores, create_table
    from tests.integration.lookup_support import ViewSpec, lookup_regressor, online_item, put_lookup_version
    from tests.integration.test_predict_support import Context, TrainedModel, predict_event, put_model, put_version

    views = (
        ViewSpec("customer", "customer_id", 14 * 86_400, tuple(f"c{i}" for i in range(5))),
        ViewSpec("activity", "customer_id", 7 * 86_400, tuple(f"a{i}" for i in range(5))),
    )
    model = lookup_regressor(views)
    stores = Stores("bench-data", "bench-artifacts", "bench-registry", "bench-metadata")
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    items: dict[str, dict[str, Any]] = {}
    rows_sent: list[list[float]] = []  # each entity's values in feature order (the plain request)
    for i in range(100):
        row = [20.0 + i]
        for view in views:
            values = {f: float(10 + i + j) for j, f in enumerate(view.features)}
            entry = online_item(view.name, {view.key: f"c-{i}"}, values, an_hour_ago, 4)
            items.setdefault(entry["pk"]["S"], {}).update(entry)  # one item per customer, both views
            row += list(values.values())
        rows_sent.append(row)
    stub = StubDynamoDB("bench-online", items)

    def fetch(keys: Any, view_names: Any) -> tuple[dict[str, dict[str, Any]], int]:
        fetched = batch_get("bench-online", keys, view_names, dynamodb=stub)
        return fetched.items, fetched.requests

    figures: dict[str, float] = {}
    with mock_aws():
        s3 = boto3.client("s3")
        for bucket in (stores.data_bucket, stores.artifacts_bucket):
            s3.create_bucket(Bucket=bucket)
        create_table(stores.registry_table)
        put_lookup_version(stores, "looked-up", 1, model)
        features = [Feature(name=f.name, type="float") for f in model.features]
        put_version(stores, "plain", 1, TrainedModel(model.onnx, features, "regression", None, np.zeros(1), []))
        put_model(stores, "plain", production=1)
        get_settings.cache_clear()
        settings = get_settings().model_copy(update={"online_table": "bench-online"})
        predict.reset(Serving(settings, online_fetch=fetch))
        context = Context()
        names = [f.name for f in model.features]
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            for n, count in ((1, iterations), (100, max(200, iterations // 4))):
                keyed = [{"amount": 20.0 + i, "customer_id": f"c-{i}"} for i in range(n)]
                sent = [dict(zip(names, rows_sent[i], strict=True)) for i in range(n)]
                looked = predict_event("looked-up", {"instances": keyed, "request_id": "bench-1"})
                direct = predict_event("plain", {"instances": sent, "request_id": "bench-1"})
                answers = []
                for event in (looked, direct):
                    reply = predict.lambda_handler(event, context)
                    assert reply["statusCode"] == 200, reply
                    answers.append(json.loads(reply["body"])["predictions"])
                assert answers[0] == answers[1], "the lookup path must predict what the plain path does"
                stub.requests = 0
                lookup, lookup_cpu = timed(lambda e=looked: predict.lambda_handler(e, context), count, count // 10)
                requests = stub.requests / (count + count // 10)
                base, base_cpu = timed(lambda e=direct: predict.lambda_handler(e, context), count, count // 10)
                figures[f"lookup_rows_{n}_median_ms"] = statistics.median(lookup)
                figures[f"lookup_rows_{n}_plain_median_ms"] = statistics.median(base)
                figures[f"lookup_rows_{n}_overhead_median_ms"] = statistics.median(lookup) - statistics.median(base)
                figures[f"lookup_rows_{n}_overhead_cpu_median_ms"] = statistics.median(lookup_cpu) - statistics.median(
                    base_cpu
                )
                figures[f"lookup_rows_{n}_requests"] = requests
        predict.reset(None)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--case", choices=("all", "plain", "lookups"), default="all")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    _env()
    sys.path.insert(0, str(ROOT))
    load_before = os.getloadavg()
    result: dict[str, float] = {}
    if args.case in ("all", "plain"):
        runs = [warm_figures(args.iterations) for _ in range(args.runs)]
        import_walls, import_cpus = cold_import_seconds(max(5, args.runs))
        result = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        result["cold_import_s"] = statistics.median(import_walls)
        result["cold_import_cpu_s"] = statistics.median(import_cpus)
    if args.case in ("all", "lookups"):
        lookup_runs = [lookup_figures(args.iterations) for _ in range(args.runs)]
        result |= {key: statistics.median(r[key] for r in lookup_runs) for key in lookup_runs[0]}
    load_after = os.getloadavg()
    result["load_avg_1m_before"], result["load_avg_1m_after"] = load_before[0], load_after[0]
    result["cpus"] = float(os.cpu_count() or 0)
    figures_file = os.environ.get("STEPWISE_BENCH_JSON")  # benchmarks/run.py reads figures from here
    if figures_file:
        Path(figures_file).write_text(json.dumps(result))
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"inference benchmark: median of {args.runs} runs; load {load_before[0]:.2f} -> {load_after[0]:.2f}")
    print(f"{'figure':34} {'value':>10}  target")
    checks = {
        "rows_1_median_ms": TARGETS["one_row_median_ms"],
        "rows_1_p99_ms": TARGETS["one_row_p99_ms"],
        "rows_1_overhead_median_ms": TARGETS["overhead_median_ms"],
        "cold_import_s": TARGETS["cold_import_s"],
        # the same targets on CPU time: what a call costs when it has a core to itself
        "rows_1_cpu_median_ms": TARGETS["one_row_median_ms"],
        "rows_1_cpu_p99_ms": TARGETS["one_row_p99_ms"],
        "rows_1_overhead_cpu_median_ms": TARGETS["overhead_median_ms"],
        "cold_import_cpu_s": TARGETS["cold_import_s"],
        "lookup_rows_1_overhead_median_ms": TARGETS["lookup_one_row_overhead_median_ms"],
        "lookup_rows_1_overhead_cpu_median_ms": TARGETS["lookup_one_row_overhead_median_ms"],
    }
    for key, value in result.items():
        target = checks.get(key)
        mark = "" if target is None else f"<= {target}  {'ok' if value <= target else 'MISSED'}"
        print(f"{key:34} {value:10.4f}  {mark}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
