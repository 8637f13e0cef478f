from __future__ import annotations

import gzip
import json

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import f1_score

from functions.logic.drift_performance import _f1_macro, evaluate, load_labels, matching_predictions


def _feedback(*labels: tuple[str, object]) -> bytes:
    lines = [
        json.dumps({"request_id": r, "model": "m", "label": v, "time": "2026-11-26T12:00:00.000Z"}) for r, v in labels
    ]
    return gzip.compress("\n".join(lines).encode())


def test_performance_f1_macro_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.choice(["a", "b", "c"], 500)
    p = np.where(rng.random(500) < 0.7, y, rng.choice(["a", "b", "d"], 500))
    assert _f1_macro(y, p) == pytest.approx(f1_score(y, p, average="macro", labels=np.unique(y)))


def test_performance_labels_of_any_type_last_one_wins_bad_lines_dropped() -> None:
    # Given labels as strings, numbers, booleans, a corrected label, and broken lines
    objects = [
        _feedback(("r1", "yes"), ("r2", 1), ("r3", True)),
        gzip.compress(b'null\n{"request_id": "r4", "label": 0.5}\n{"request_id": "r1"'),
        _feedback(("r2", 0)),
    ]
    labels = load_labels(objects)
    got = dict(zip(labels.column("request_id").to_pylist(), labels.column("label").to_pylist(), strict=True))
    assert got == {"r1": "yes", "r2": "0", "r3": "true", "r4": "0.5"}


def test_performance_classification_drop_is_detected() -> None:
    # Given 300 labelled predictions, 80% right, and 95% accuracy at registration
    n = 300
    ids = pa.array([f"r{i}" for i in range(n)])
    truth = np.array(["a", "b"])[np.arange(n) % 2]
    pred = truth.copy()
    pred[: n // 5] = np.where(pred[: n // 5] == "a", "b", "a")
    predictions = pa.table({"request_id": ids, "prediction": pa.array(pred)})
    labels = pa.table({"request_id": ids, "label": pa.array(truth)})
    report = evaluate(predictions, labels, "classification", {"accuracy": 0.95}, min_labels=200, max_drop=0.05)
    # Then accuracy is measured and the drop is the verdict
    accuracy = next(m for m in report.metrics if m.name == "accuracy")
    assert accuracy.value == pytest.approx(0.8) and accuracy.dropped and report.verdict == "drop"
    assert report.matched == n


def test_performance_regression_and_multi_row_requests() -> None:
    # Given a request that scored two rows (ambiguous) and 250 single-row requests with small errors
    ids = ["multi", "multi"] + [f"r{i}" for i in range(250)]
    preds = [1.0, 2.0] + [float(i) + 0.5 for i in range(250)]
    predictions = pa.table({"request_id": ids, "prediction": preds})
    labels = pa.table(
        {"request_id": ["multi"] + [f"r{i}" for i in range(250)], "label": ["1.0"] + [str(i) for i in range(250)]}
    )
    report = evaluate(predictions, labels, "regression", {"rmse": 0.5, "mae": 0.5}, min_labels=200, max_drop=0.1)
    assert report.ambiguous_requests_rows == 2 and report.matched == 250
    assert {m.name: m.value for m in report.metrics} == {"rmse": pytest.approx(0.5), "mae": pytest.approx(0.5)}
    assert report.verdict == "ok"


def test_performance_too_few_labels_is_insufficient() -> None:
    predictions = pa.table({"request_id": ["r1"], "prediction": ["a"]})
    labels = pa.table({"request_id": ["r1"], "label": ["a"]})
    report = evaluate(predictions, labels, "classification", {}, min_labels=200, max_drop=0.05)
    assert report.verdict == "insufficient_labels" and "1 labelled" in report.reason


def test_performance_matching_predictions_skips_shadow_and_unlabelled() -> None:
    batch = pa.table(
        {
            "__request_id": ["a", "b", "a", "c"],
            "__prediction": ["x", "y", "z", "w"],
            "__variant": ["production", "production", "shadow", "candidate"],
        }
    )
    picked = matching_predictions(batch, pa.array(["a", "c"]))
    assert picked.to_pydict() == {"request_id": ["a", "c"], "prediction": ["x", "w"]}
