"""Demo steps of feature management: a second bundled example with an entity, generated locally.

`customer-stats` is a time-stamped aggregate table (each customer's spend and orders over the last
30 days, one row a week); `purchases` is a labelled events table (customer, time, amount, channel,
whether the purchase was returned). The feature view `customer` offers the aggregates; the spec
`purchases` reads two of them, derives `amount_share` (the purchase against the customer's 30-day
spend) and `log_orders` from them, and trains through the point-in-time join (each event sees the
aggregates as they were at its time). The version answers predictions over HTTP whose request
carries the raw fields and the view's values; the derived features are computed inside the model.

    steps = [*foundation_steps(), *feature_steps(workdir / "features")]
"""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from stepwise.demo_shared import OPERATOR, DemoFailure

FEATURE_MODEL = "purchases-model"
FEATURE_SPEC = "purchases"
FEATURE_VIEW = "customer"
STATS, EVENTS = "customer-stats", "purchases"
# The example's weeks end at today's midnight (UTC), so each customer's latest weekly aggregate is
# within the view's 14-day TTL when the demo predicts; the data are otherwise the same every run.
START = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(weeks=17)
CHANNELS = ["web", "store"]
WAIT_SECONDS = 300.0

STATS_CONTRACT: dict[str, Any] = {
    "description": "Per customer, spend and orders over the last 30 days, one row a week",
    "columns": [
        {"name": "customer", "type": "int", "nullable": False, "min": 0},
        {"name": "at", "type": "timestamp", "nullable": False},
        {"name": "spend_30d", "type": "float", "nullable": False, "min": 0},
        {"name": "orders_30d", "type": "int", "nullable": False, "min": 0},
    ],
    "unique": [["customer", "at"]],
}
EVENTS_CONTRACT: dict[str, Any] = {
    "description": "Purchases and whether they were returned",
    "columns": [
        {"name": "customer", "type": "int", "nullable": False, "min": 0},
        {"name": "event_at", "type": "timestamp", "nullable": False},
        {"name": "amount", "type": "float", "nullable": False, "min": 0},
        {"name": "channel", "type": "category", "nullable": False, "categories": CHANNELS},
        {"name": "returned", "type": "int", "nullable": False, "min": 0, "max": 1},
    ],
    "target": "returned",
}
VIEW: dict[str, Any] = {
    "entity_keys": ["customer"],
    "source": STATS,
    "timestamp_column": "at",
    "ttl_seconds": 14 * 86_400,
    "features": [{"name": "spend_30d", "type": "float"}, {"name": "orders_30d", "type": "int"}],
    "description": "What a customer spent and ordered over the last 30 days",
}
SPEC: dict[str, Any] = {
    "model": FEATURE_MODEL,
    "dataset": EVENTS,
    "target": "returned",
    "event_time": "event_at",
    "features": ["amount", "channel", "customer:spend_30d", "amount_share", "log_orders"],
    "derived": [
        {"name": "amount_share", "expression": "safe_div(amount, customer:spend_30d, 0)", "type": "float"},
        {"name": "log_orders", "expression": "log1p(customer:orders_30d)", "type": "float"},
    ],
    "task": "classification",
    "estimator": {"name": "RandomForestClassifier", "params": {"n_estimators": 30, "max_depth": 6}},
    "split": {"holdout_fraction": 0.25, "seed": 3},
    "metrics": ["accuracy", "roc_auc"],
    "gates": {"min_primary": 0.7, "max_p99_latency_ms": 250.0},
    "latency_calls": 100,
    "description": "Will a purchase be returned? From its amount and channel and the customer's last 30 days",
}


def stats_table(customers: int = 200, weeks: int = 17, seed: int = 11) -> pa.Table:
    """Each customer's weekly 30-day aggregates around a spend level of their own."""
    rng = np.random.default_rng(seed)
    level = rng.gamma(2.0, 80.0, customers)
    customer = np.repeat(np.arange(customers), weeks)
    week = np.tile(np.arange(weeks), customers)
    hours = rng.integers(0, 24, customers * weeks)
    at = np.datetime64(START.replace(tzinfo=None), "us") + (week * 7 * 24 + hours).astype("timedelta64[h]")
    spend = level[customer] * rng.uniform(0.8, 1.2, customers * weeks)
    orders = rng.poisson(1 + level[customer] / 40)
    return pa.table(
        {
            "customer": pa.array(customer.astype(np.int64)),
            "at": pa.array(at, pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC")),
            "spend_30d": pa.array(np.round(spend, 2)),
            "orders_30d": pa.array(orders.astype(np.int64)),
        }
    )


def events_table(customers: int = 200, rows: int = 1_500, seed: int = 12) -> pa.Table:
    """Purchases over the same weeks (some before a customer's first aggregate: those see nulls);
    a purchase large against the customer's usual spend is likely returned."""
    rng = np.random.default_rng(seed)
    # the customers' spend levels of stats_table (unknown to the model: the view's spend_30d tracks them)
    level = np.random.default_rng(11).gamma(2.0, 80.0, customers)
    customer = rng.integers(0, customers, rows)
    minutes = rng.integers(-3 * 24 * 60, 17 * 7 * 24 * 60, rows)
    at = np.datetime64(START.replace(tzinfo=None), "us") + minutes.astype("timedelta64[m]")
    amount = level[customer] * rng.gamma(2.0, 0.35, rows)
    channel = rng.choice(CHANNELS, rows)
    share = amount / level[customer]
    returned = (share + 0.2 * (channel == "web") + rng.normal(0, 0.15, rows)) > 1.0
    return pa.table(
        {
            "customer": pa.array(customer.astype(np.int64)),
            "event_at": pa.array(at, pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC")),
            "amount": pa.array(np.round(amount, 2)),
            "channel": pa.array(channel.tolist(), pa.string()),
            "returned": pa.array(returned.astype(np.int64)),
        }
    )


def write_parquet(table: pa.Table, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    path.write_bytes(sink.getvalue())
    return path


def wait_for_version(target: Any, model: str, timeout: float = WAIT_SECONDS) -> dict[str, Any]:
    """The model's first version once registered (DemoFailure after `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        reply = target.api("GET", f"/v1/models/{model}/versions")
        versions = reply.body.get("versions") if reply.ok and isinstance(reply.body, dict) else None
        if versions:
            return versions[-1]  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise DemoFailure(f"no version of {model} after {timeout:.0f} s")
        time.sleep(0.5)


def wait_for_approval(target: Any, model: str, version: int, timeout: float = 120.0) -> None:
    """Until the workflow's approval task has recorded the version's approval request."""
    deadline = time.monotonic() + timeout
    while True:
        reply = target.api("GET", "/v1/approvals")
        pending = reply.body.get("approvals", []) if reply.ok and isinstance(reply.body, dict) else []
        if any(a.get("model") == model and a.get("version") == version for a in pending):
            return
        if time.monotonic() > deadline:
            raise DemoFailure(f"no approval request for {model} v{version} within {timeout:.0f} s")
        time.sleep(0.5)


def wait_for_production(target: Any, model: str, version: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        reply = target.api("GET", "/v1/models")
        models = reply.body.get("models", []) if reply.ok and isinstance(reply.body, dict) else []
        if any(m.get("name") == model and m.get("production_version") == version for m in models):
            return
        if time.monotonic() > deadline:
            raise DemoFailure(f"{model} v{version} did not reach production within {timeout:.0f} s")
        time.sleep(0.5)


def _ok(reply: Any, what: str) -> Any:
    if not reply.ok:
        raise DemoFailure(f"{what} answered HTTP {reply.status}: {reply.body}")
    return reply.body


# -- steps for `stepwise demo` (stepwise/demo.py: each step gets the demo context) ---------------------
def feature_steps(workdir: Path) -> list[tuple[str, Any]]:
    from stepwise.commands.data import upload
    from stepwise.commands.governance import render_lineage

    def step_source(ctx: Any) -> None:
        _ok(ctx.target.api("PUT", f"/v1/datasets/{STATS}/contract", STATS_CONTRACT), "contract put")
        result = upload(ctx.target, write_parquet(stats_table(), workdir / f"{STATS}.parquet"), STATS)
        if not result.passed or result.version is None:
            raise DemoFailure(f"the {STATS} file did not pass: {result.report.get('reason')}")
        ctx.say(f"registered {STATS}@{result.version['version']}: {result.version['rows']} weekly aggregate rows")

    def step_view(ctx: Any) -> None:
        body = _ok(ctx.target.api("PUT", f"/v1/feature-views/{FEATURE_VIEW}", VIEW), "feature view put")
        features = ", ".join(f["name"] for f in body["view"]["features"])
        ctx.say(
            f"PUT /v1/feature-views/{FEATURE_VIEW} -> version {body['version']}: {features} by customer, "
            f"from {STATS}, ttl {VIEW['ttl_seconds'] // 86_400} days"
        )

    def step_labels(ctx: Any) -> None:
        _ok(ctx.target.api("PUT", f"/v1/datasets/{EVENTS}/contract", EVENTS_CONTRACT), "contract put")
        result = upload(ctx.target, write_parquet(events_table(), workdir / f"{EVENTS}.parquet"), EVENTS)
        if not result.passed or result.version is None:
            raise DemoFailure(f"the {EVENTS} file did not pass: {result.report.get('reason')}")
        ctx.state["features_dataset_version"] = result.version["version"]
        body = _ok(ctx.target.api("PUT", f"/v1/specs/{FEATURE_SPEC}", SPEC), "spec put")
        ctx.say(f"registered {EVENTS}@{result.version['version']}: {result.version['rows']} labelled purchases")
        derived = "; ".join(f"{d['name']} = {d['expression']}" for d in SPEC["derived"])
        ctx.say(f"PUT /v1/specs/{FEATURE_SPEC} -> version {body['version']}, views pinned {body['spec']['views']}")
        ctx.say(f"  derived: {derived}")

    def step_train(ctx: Any) -> None:
        request = {"spec": FEATURE_SPEC, "dataset_version": ctx.state["features_dataset_version"]}
        _ok(ctx.target.api("POST", f"/v1/models/{FEATURE_MODEL}/train", request), "train")
        version = wait_for_version(ctx.target, FEATURE_MODEL)
        if version["status"] != "PENDING_APPROVAL":
            raise DemoFailure(f"{FEATURE_MODEL} v{version['version']} is {version['status']}, not PENDING_APPROVAL")
        ctx.state["features_version"] = version["version"]
        wait_for_approval(ctx.target, FEATURE_MODEL, version["version"])
        lineage = ctx.target.api("GET", f"/v1/models/{FEATURE_MODEL}/versions/{version['version']}/lineage")
        ctx.say(render_lineage(_ok(lineage, "lineage")))

    def step_materialize(ctx: Any) -> None:
        from stepwise.commands.materialize import follow

        started = _ok(ctx.target.api("POST", f"/v1/feature-views/{FEATURE_VIEW}/materialize", {}), "materialize")
        run = follow(ctx.target, started, timeout=WAIT_SECONDS, poll=0.5)
        if run["status"] != "SUCCEEDED":
            raise DemoFailure(f"materializing {FEATURE_VIEW} ended {run['status']}: {run.get('message')}")
        ctx.say(
            f"POST /v1/feature-views/{FEATURE_VIEW}/materialize -> {run['materialization_id']}: {STATS}@"
            f"{run['source_version']}, {run['rows_read']} rows read, {run['entities_written']} customers online, "
            f"newest event time {run['newest_event_time']}"
        )

    def step_predict(ctx: Any) -> None:
        from functions.models.approvals import approval_id
        from stepwise.commands.predict import predict_all

        number = ctx.state["features_version"]
        reason = "demo: trained through the customer feature view"
        path = f"/v1/approvals/{approval_id(FEATURE_MODEL, number)}/approve"
        _ok(ctx.target.api("POST", path, {"reason": reason}, identity=OPERATOR), "approve")
        wait_for_production(ctx.target, FEATURE_MODEL, number)
        # the request carries the raw fields and the customer key; the view's values are looked up
        # in the online store (null, imputed, where it holds none for the customer)
        rows = [
            {"amount": 35.0, "channel": "store", "customer": 3},
            {"amount": 260.0, "channel": "web", "customer": 17},
            {"amount": 90.0, "channel": "web", "customer": 9_999},
        ]
        results, failed = predict_all(ctx.target, FEATURE_MODEL, rows, len(rows), None)
        if failed is not None:
            raise DemoFailure(f"predict answered HTTP {failed.status}: {failed.body}")
        for row, result in zip(rows, results, strict=True):
            looked_up = (result.get("lookups") or {}).get(FEATURE_VIEW, {})
            ctx.say(
                f"{row} -> returned={result['prediction']} (v{result['version']}; "
                f"view {FEATURE_VIEW}: {looked_up.get('status')}, source version {looked_up.get('source_version')})"
            )
        if {r["version"] for r in results} != {number}:
            raise DemoFailure(f"expected v{number} to answer, got {[r['version'] for r in results]}")
        ctx.state["features_before"] = results[1]

    def step_update(ctx: Any) -> None:
        from stepwise.commands.data import upload
        from stepwise.commands.predict import predict_all

        # customer 17's spending jumps: a newer version of the aggregate table with one row of now
        now = datetime.now(UTC).replace(microsecond=0)
        newer = pa.table(
            {
                "customer": pa.array([17], pa.int64()),
                "at": pa.array([now], pa.timestamp("us", tz="UTC")),
                "spend_30d": pa.array([2_600.0]),
                "orders_30d": pa.array([25], pa.int64()),
            }
        )
        result = upload(ctx.target, write_parquet(newer, workdir / f"{STATS}-update.parquet"), STATS)
        if not result.passed or result.version is None:
            raise DemoFailure(f"the {STATS} update did not pass: {result.report.get('reason')}")
        source_version = result.version["version"]
        ctx.say(f"registered {STATS}@{source_version}: customer 17 now spent 2600.00 over 30 days (25 orders)")
        deadline = time.monotonic() + WAIT_SECONDS
        while True:  # validation announced the version; its materialization runs on its own
            runs = _ok(ctx.target.api("GET", f"/v1/feature-views/{FEATURE_VIEW}/materializations"), "runs")
            done = [r for r in runs["materializations"] if r["source_version"] == source_version]
            if done and done[0]["status"] in ("SUCCEEDED", "FAILED"):
                break
            if time.monotonic() > deadline:
                raise DemoFailure(f"{STATS}@{source_version} was not materialized within {WAIT_SECONDS:.0f} s")
            time.sleep(0.5)
        if done[0]["status"] != "SUCCEEDED":
            raise DemoFailure(f"materializing {STATS}@{source_version} failed: {done[0].get('message')}")
        ctx.say(f"materialized on validation ({done[0]['materialization_id']}): {done[0]['entities_written']} customer")
        row = {"amount": 260.0, "channel": "web", "customer": 17}
        results, failed = predict_all(ctx.target, FEATURE_MODEL, [row], 1, None)
        if failed is not None:
            raise DemoFailure(f"predict answered HTTP {failed.status}: {failed.body}")
        before, after = ctx.state["features_before"], results[0]
        for when, reply in (("before", before), ("after", after)):
            looked_up = (reply.get("lookups") or {}).get(FEATURE_VIEW, {})
            ctx.say(
                f"{when}: {row} -> returned={reply['prediction']} p={reply.get('probabilities')} "
                f"({FEATURE_VIEW} from {STATS}@{looked_up.get('source_version')}, event time "
                f"{looked_up.get('event_time')})"
            )
        used = (after.get("lookups") or {}).get(FEATURE_VIEW, {})
        if used.get("source_version") != source_version or used.get("status") != "fresh":
            raise DemoFailure(f"the next prediction did not use {STATS}@{source_version}: {used}")

    return [
        (f"features: the aggregate table {STATS!r} (contract, upload)", step_source),
        (f"features: the feature view {FEATURE_VIEW!r} over it", step_view),
        (f"features: labelled {EVENTS!r} events and the spec {FEATURE_SPEC!r} (two derived features)", step_labels),
        (f"features: train {FEATURE_MODEL} through the point-in-time join; its lineage", step_train),
        (f"features: materialize the view {FEATURE_VIEW!r} into the online store", step_materialize),
        ("features: approve, then predict over HTTP from raw fields + the customer key (view looked up)", step_predict),
        (
            "features: a newer aggregate for customer 17 is materialized on validation; the next prediction uses it",
            step_update,
        ),
    ]
