"""Small synthetic tables for lifecycle tests (seeded; no downloads)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def classification_table(rows: int = 400, seed: int = 7) -> pa.Table:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=rows)
    b = rng.integers(0, 10, size=rows)
    c = rng.choice(["red", "green", "blue"], size=rows)
    noise = rng.normal(scale=0.7, size=rows)
    label = np.where(a + (c == "red") * 1.2 + 0.1 * b + noise > 1.0, "yes", "no")
    a_with_nulls = pa.array([None if i % 23 == 0 else float(v) for i, v in enumerate(a)], type=pa.float64())
    return pa.table({"a": a_with_nulls, "b": pa.array(b, type=pa.int64()), "c": pa.array(c), "label": pa.array(label)})


def regression_table(rows: int = 400, seed: int = 11) -> pa.Table:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=rows)
    b = rng.integers(0, 10, size=rows)
    c = rng.choice(["x", "y"], size=rows)
    y = 3 * a + b + (c == "x") * 2 + rng.normal(scale=0.3, size=rows)
    return pa.table({"a": a, "b": pa.array(b, type=pa.int64()), "c": pa.array(c), "y": y})
