"""Demo data: scikit-learn's bundled wine dataset (ships inside scikit-learn; no download) as a
good Parquet file, a deliberately bad one, and its data contract.

    files = write_demo_files(Path("/tmp/demo"))
    # files.contract: dict for `stepwise contract put wine files.contract_path`
    # files.good / files.bad: upload both; one becomes wine@N, the other is quarantined

The bad file breaks four rules: a duplicated id (unique:id), an alcohol value of 99
(range:alcohol), an unknown region (categories:region) and a missing label (nulls:label).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DATASET = "wine"
REGIONS = ["north", "south", "east"]
BAD_RULES = ["unique:id", "range:alcohol", "categories:region", "nulls:label"]


@dataclass
class DemoFiles:
    dataset: str
    contract: dict[str, Any]
    contract_path: Path
    good: Path
    bad: Path
    rows: int
    bad_rules: list[str] = field(default_factory=lambda: list(BAD_RULES))


def wine_table() -> pa.Table:
    """178 wines: an id, 13 measurements, a region (derived from the id) and the cultivar label."""
    from sklearn.datasets import load_wine

    bunch = load_wine()
    n = len(bunch.target)
    columns: dict[str, Any] = {"id": pa.array(np.arange(1, n + 1, dtype=np.int64))}
    for i, name in enumerate(bunch.feature_names):
        columns[_column_name(name)] = pa.array(bunch.data[:, i].astype(np.float64))
    regions = pa.array([REGIONS[i % len(REGIONS)] for i in range(n)]).dictionary_encode()
    columns["region"] = regions
    columns["label"] = pa.array(bunch.target.astype(np.int64))
    return pa.table(columns)


def _column_name(feature: str) -> str:
    return feature.replace("/", "_").replace(" ", "_")


def wine_contract(table: pa.Table, training_spec: str | None = None) -> dict[str, Any]:
    """Bounds from the data, widened by a quarter of each column's range."""
    columns: list[dict[str, Any]] = [{"name": "id", "type": "int", "nullable": False, "min": 1}]
    for name in table.column_names:
        if name in ("id", "region", "label"):
            continue
        values = table.column(name).to_numpy()
        lo, hi = float(values.min()), float(values.max())
        pad = (hi - lo) / 4
        columns.append(
            {"name": name, "type": "float", "nullable": False, "min": round(lo - pad, 3), "max": round(hi + pad, 3)}
        )
    columns.append({"name": "region", "type": "category", "categories": REGIONS, "max_null_fraction": 0.05})
    columns.append({"name": "label", "type": "int", "nullable": False, "min": 0, "max": 2})
    contract: dict[str, Any] = {
        "description": "UCI wine recognition data (bundled with scikit-learn): 3 cultivars, 13 measurements",
        "columns": columns,
        "key": "id",
        "target": "label",
        "min_rows": 100,
        "max_rows": 100_000,
    }
    if training_spec:
        contract["training_spec"] = training_spec
    return contract


def bad_table(good: pa.Table) -> pa.Table:
    """The good table with four deliberate violations (BAD_RULES)."""
    cols = {name: good.column(name).to_pylist() for name in good.column_names}
    cols["id"][10] = cols["id"][9]  # duplicate key
    cols["alcohol"][20] = 99.0  # out of range
    cols["region"][30] = "atlantis"  # unknown category
    cols["label"][40] = None  # missing target
    return pa.table(
        {
            name: pa.array(values, good.schema.field(name).type if name != "region" else pa.string())
            for name, values in cols.items()
        }
    )


def write_demo_files(out_dir: Path, training_spec: str | None = None) -> DemoFiles:
    out_dir.mkdir(parents=True, exist_ok=True)
    good = wine_table()
    contract = wine_contract(good, training_spec)
    contract_path = out_dir / f"{DATASET}.contract.json"
    contract_path.write_text(json.dumps(contract, indent=2))
    good_path = out_dir / f"{DATASET}-good.parquet"
    bad_path = out_dir / f"{DATASET}-bad.parquet"
    pq.write_table(good, good_path)
    pq.write_table(bad_table(good), bad_path)
    return DemoFiles(
        dataset=DATASET,
        contract=contract,
        contract_path=contract_path,
        good=good_path,
        bad=bad_path,
        rows=good.num_rows,
    )


# -- steps for `stepwise demo` (stepwise/demo.py: each step gets the demo context) ---------------------


def data_steps(workdir: Path, training_spec: str | None = None) -> list[tuple[str, Any]]:
    """Put the wine contract, upload the good file (one version registered) and the bad one
    (quarantined naming its rules). A step takes the demo context (.target, .say, .state)."""
    from stepwise.commands.data import put_contract, render_report, upload
    from stepwise.demo_shared import PRODUCER

    def files(ctx: Any) -> DemoFiles:
        if "wine_files" not in ctx.state:
            ctx.state["wine_files"] = write_demo_files(workdir, training_spec)
        return ctx.state["wine_files"]  # type: ignore[no-any-return]

    def step_contract(ctx: Any) -> None:
        f = files(ctx)
        record = put_contract(ctx.target, f.dataset, f.contract)
        ctx.say(
            f"PUT /v1/datasets/{f.dataset}/contract -> version {record['version']} "
            f"({len(f.contract['columns'])} columns)"
        )

    def step_good(ctx: Any) -> None:  # uploaded as the data producer (the run's starter)
        f = files(ctx)
        result = upload(dataclasses.replace(ctx.target, identity=PRODUCER), f.good, f.dataset)
        ctx.say(render_report(result.report))
        if not result.passed or result.version is None:
            raise RuntimeError(f"the good wine file did not pass: {result.report.get('reason')}")
        ctx.state["wine_version"] = result.version["version"]
        ctx.say(f"registered {f.dataset}@{result.version['version']}: {result.version['rows']} rows")

    def step_bad(ctx: Any) -> None:
        f = files(ctx)
        result = upload(dataclasses.replace(ctx.target, identity=PRODUCER), f.bad, f.dataset)
        ctx.say(render_report(result.report))
        failed = sorted(r["rule"] for r in result.report.get("rules", []) if not r["passed"])
        if result.passed or failed != sorted(f.bad_rules):
            raise RuntimeError(f"the bad wine file should fail {f.bad_rules}, it failed {failed}")
        ctx.say(f"quarantined under quarantine/{f.dataset}/ with its report; no version registered")

    return [
        ("put the wine data contract", step_contract),
        (f"upload a good wine file as {PRODUCER}: one dataset version", step_good),
        ("upload a bad wine file: quarantined with its report", step_bad),
    ]
