from __future__ import annotations

from typing import Any

import numpy as np

from functions.logic import evaluation as ev
from functions.models.runs import LatencyFigures
from functions.models.specs import TrainingSpec

FAST = LatencyFigures(calls=100, median_ms=0.1, p99_ms=0.5)
PARITY_OK = ev.Parity(0, 1e-7, True, "")


def spec(gates: dict[str, Any], metrics: list[str] | None = None) -> TrainingSpec:
    return TrainingSpec.model_validate(
        {
            "name": "toy",
            "model": "toy-model",
            "dataset": "toy",
            "target": "label",
            "features": ["a"],
            "task": "classification",
            "estimator": {"name": "LogisticRegression"},
            "metrics": metrics or ["accuracy", "log_loss"],
            "gates": gates,
        }
    )


def verdicts(s: TrainingSpec, metrics: dict[str, float], production: dict[str, float] | None = None, **kw: Any):
    return {
        v.gate: v
        for v in ev.judge(
            s, metrics, production, kw.get("note", ""), kw.get("parity", PARITY_OK), kw.get("latency", FAST),
            kw.get("sizes", {"onnx": 1000, "skops": 5000}),
        )
    }  # fmt: skip


def test_gates_pass_when_every_threshold_holds() -> None:
    s = spec({"min_primary": 0.8, "max_regression": 0.02, "max_p99_latency_ms": 5, "max_artifact_bytes": 10_000})
    result = verdicts(s, {"accuracy": 0.85}, {"accuracy": 0.86})
    assert set(result) == {
        "onnx_parity",
        "primary_metric",
        "max_regression",
        "max_p99_latency_ms",
        "max_artifact_bytes",
    }
    assert all(v.passed for v in result.values())


def test_gates_name_each_failure_with_value_and_threshold() -> None:
    s = spec({"min_primary": 0.9, "max_regression": 0.01, "max_p99_latency_ms": 0.1, "max_artifact_bytes": 2000})
    result = verdicts(s, {"accuracy": 0.85}, {"accuracy": 0.9})
    assert not result["primary_metric"].passed and result["primary_metric"].threshold == 0.9
    assert not result["max_regression"].passed and np.isclose(result["max_regression"].value or 0, 0.05)
    assert not result["max_p99_latency_ms"].passed
    assert not result["max_artifact_bytes"].passed and "skops" in result["max_artifact_bytes"].reason
    reasons = ev.failed_reasons(list(result.values()))
    assert len(reasons) == 4 and reasons[0].startswith("gate primary_metric failed")


def test_gates_respect_lower_is_better_metrics() -> None:
    s = spec({"max_primary": 0.5, "max_regression": 0.1}, metrics=["log_loss", "accuracy"])
    ok = verdicts(s, {"log_loss": 0.45}, {"log_loss": 0.40})
    assert ok["primary_metric"].passed and ok["max_regression"].passed
    bad = verdicts(s, {"log_loss": 0.55}, {"log_loss": 0.40})
    assert not bad["primary_metric"].passed and not bad["max_regression"].passed


def test_gates_regression_passes_without_production_and_says_why() -> None:
    result = verdicts(spec({"max_regression": 0.0}), {"accuracy": 0.5}, None, note="no production version")
    assert result["max_regression"].passed and "no production" in result["max_regression"].reason


def test_gates_parity_failure_fails_the_candidate() -> None:
    bad = ev.Parity(2, 0.3, False, "2 labels differ")
    result = verdicts(spec({}), {"accuracy": 0.9}, parity=bad)
    assert list(result) == ["onnx_parity"] and not result["onnx_parity"].passed


def test_parity_compares_labels_probabilities_and_regression_values() -> None:
    labels = np.array(["a", "b"])
    probs = np.array([[0.9, 0.1], [0.2, 0.8]])
    same = ev.Predictions(labels, probs + 5e-6, None)
    assert ev.parity(ev.Predictions(labels, probs, None), same, 1e-5).passed
    flipped = ev.Predictions(np.array(["a", "a"]), probs, None)
    assert ev.parity(ev.Predictions(labels, probs, None), flipped, 1e-5).label_mismatches == 1
    values = np.array([1000.0, 2.0])
    assert ev.parity(ev.Predictions(None, None, values), ev.Predictions(None, None, values * (1 + 1e-6)), 1e-5).passed
    assert not ev.parity(ev.Predictions(None, None, values), ev.Predictions(None, None, values + 0.1), 1e-5).passed
