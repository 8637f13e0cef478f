"""Evaluation: holdout metrics, the production version on the same holdout, ONNX parity and
single-row latency, and every gate's verdict."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from functions.models.registry import Feature, GateVerdict, failed_gate_reasons, graph_input_names
from functions.models.runs import LatencyFigures
from functions.models.serving import check_graph_inputs
from functions.models.specs import LOWER_IS_BETTER, Metric, TrainingSpec


@dataclass
class Predictions:
    labels: np.ndarray | None  # classification: string labels
    probabilities: np.ndarray | None  # classification: [N, classes] in class_labels order
    values: np.ndarray | None  # regression


@dataclass
class Parity:
    label_mismatches: int
    max_abs_diff: float
    passed: bool
    reason: str


def sklearn_predictions(pipeline: Any, frame: Any, task: str) -> Predictions:
    if task == "classification":
        return Predictions(
            labels=np.asarray(pipeline.predict(frame)).astype(str),
            probabilities=np.asarray(pipeline.predict_proba(frame), dtype=np.float64),
            values=None,
        )
    return Predictions(labels=None, probabilities=None, values=np.asarray(pipeline.predict(frame), dtype=np.float64))


def onnx_session(model: bytes) -> Any:
    import onnxruntime as ort

    from functions.logic.expressions_runtime import DISABLED_OPTIMIZERS

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(
        model, sess_options=options, providers=["CPUExecutionProvider"], disabled_optimizers=DISABLED_OPTIMIZERS
    )


def graph_feeds(
    session: Any, frame: Any, features: list[Feature], graph_inputs: dict[str, str], what: str
) -> dict[str, np.ndarray]:
    """The frame's features as the inputs `graph_inputs` maps them to (identity when empty);
    GraphInputMismatch, naming the missing and unexpected inputs, when the graph takes others."""
    from functions.logic.training import onnx_feeds

    names = graph_input_names(features, graph_inputs)
    check_graph_inputs(what, features, names, [i.name for i in session.get_inputs()])
    return onnx_feeds(frame, features, names)


def raw_graph_feeds(
    session: Any, table: Any, features: list[Feature], graph_inputs: dict[str, str], what: str
) -> dict[str, np.ndarray]:
    """A graph with derived features: the table's raw fields (`features`) as the inputs
    `graph_inputs` maps them to, in the transformation graph's representation (float64 or string);
    GraphInputMismatch when the graph takes others."""
    from functions.logic.derived import raw_feeds

    names = graph_input_names(features, graph_inputs)
    check_graph_inputs(what, features, names, [i.name for i in session.get_inputs()])
    return raw_feeds(features, graph_inputs, table)


# ONNX Runtime's input type names -> the numpy types fed to them
_DECLARED = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}


def declared_feeds(session: Any, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Numeric feeds cast to the element type each graph input declares (string feeds as they are);
    InvalidInput when an integer or bool input would be fed a null (it has no representation)."""
    from functions.models.errors import InvalidInput

    declared = {i.name: (i.type, _DECLARED.get(i.type)) for i in session.get_inputs()}
    out: dict[str, np.ndarray] = {}
    for name, values in feeds.items():
        type_name, kind = declared.get(name, ("", None))
        if kind is None or values.dtype == object:
            out[name] = values
            continue
        if not np.issubdtype(kind, np.floating) and bool(np.isnan(values).any()):
            raise InvalidInput(f"graph input {name!r} takes {type_name}, but the holdout has nulls in that column")
        out[name] = values.astype(kind)
    return out


def onnx_predictions(session: Any, feeds: dict[str, np.ndarray], task: str) -> Predictions:
    outputs = session.run(None, feeds)
    if task == "classification":
        return Predictions(labels=np.asarray(outputs[0]).astype(str), probabilities=np.asarray(outputs[1]), values=None)
    return Predictions(labels=None, probabilities=None, values=np.asarray(outputs[0]).reshape(-1))


def compute_metrics(
    metrics: list[Metric], y_true: np.ndarray, pred: Predictions, class_labels: list[str] | None
) -> dict[str, float]:
    """The requested metrics that are defined on this holdout (e.g. no ROC AUC of one class)."""
    from sklearn import metrics as skm

    out: dict[str, float] = {}
    for metric in metrics:
        value: float | None = None
        if metric == Metric.ACCURACY:
            value = skm.accuracy_score(y_true.astype(str), pred.labels)
        elif metric == Metric.F1:
            value = skm.f1_score(y_true.astype(str), pred.labels, average="macro", labels=class_labels)
        elif metric == Metric.ROC_AUC:
            y = y_true.astype(str)
            if len(np.unique(y)) < 2 or pred.probabilities is None or class_labels is None:
                continue
            if len(class_labels) == 2:
                value = skm.roc_auc_score(y == class_labels[1], pred.probabilities[:, 1])
            elif set(np.unique(y)) == set(class_labels):
                value = skm.roc_auc_score(y, pred.probabilities, multi_class="ovr", labels=class_labels)
            else:
                continue
        elif metric == Metric.LOG_LOSS:
            value = skm.log_loss(y_true.astype(str), pred.probabilities, labels=class_labels)
        elif metric == Metric.RMSE:
            value = float(np.sqrt(skm.mean_squared_error(y_true, pred.values)))
        elif metric == Metric.MAE:
            value = skm.mean_absolute_error(y_true, pred.values)
        elif metric == Metric.R2:
            value = skm.r2_score(y_true, pred.values)
        if value is not None and np.isfinite(value):
            out[metric.value] = float(value)
    return out


def parity(reference: Predictions, served: Predictions, tolerance: float) -> Parity:
    """ONNX against scikit-learn: identical labels; probabilities (or regression values,
    relative to max(1, |value|)) within `tolerance`."""
    if reference.labels is not None and served.labels is not None:
        mismatches = int((reference.labels != served.labels).sum())
        assert reference.probabilities is not None and served.probabilities is not None
        if reference.probabilities.shape != served.probabilities.shape:
            return Parity(mismatches, float("inf"), False, "probability shapes differ")
        diff = float(np.max(np.abs(reference.probabilities - served.probabilities), initial=0.0))
        passed = mismatches == 0 and diff <= tolerance
        reason = "" if passed else f"{mismatches} labels differ; max probability difference {diff:.3g}"
        return Parity(mismatches, diff, passed, reason)
    assert reference.values is not None and served.values is not None
    scaled = np.abs(reference.values - served.values) / np.maximum(1.0, np.abs(reference.values))
    diff = float(np.max(scaled, initial=0.0))
    passed = diff <= tolerance
    return Parity(0, diff, passed, "" if passed else f"max relative difference {diff:.3g}")


def single_row_latency(session: Any, feeds: dict[str, np.ndarray], calls: int) -> LatencyFigures:
    """In-process ONNX predict of one row at a time (rows cycled), after a short warm-up."""
    n = len(next(iter(feeds.values())))
    rows = [{name: values[i % n : i % n + 1] for name, values in feeds.items()} for i in range(min(n, calls))]
    for row in rows[:10]:
        session.run(None, row)
    times = np.empty(calls)
    for i in range(calls):
        row = rows[i % len(rows)]
        started = time.perf_counter()
        session.run(None, row)
        times[i] = time.perf_counter() - started
    return LatencyFigures(
        calls=calls,
        median_ms=float(np.median(times) * 1e3),
        p99_ms=float(np.percentile(times, 99) * 1e3),
    )


def judge(
    spec: TrainingSpec,
    metrics: dict[str, float],
    production_metrics: dict[str, float] | None,
    production_note: str,
    parity_result: Parity,
    latency: LatencyFigures,
    artifact_sizes: dict[str, int],
) -> list[GateVerdict]:
    """Every gate's verdict; ONNX parity always applies, the others when the spec sets them."""
    gates = spec.gates
    primary = spec.primary.value
    value = metrics.get(primary)
    verdicts: list[GateVerdict] = [
        GateVerdict(
            gate="onnx_parity",
            passed=parity_result.passed,
            value=parity_result.max_abs_diff if np.isfinite(parity_result.max_abs_diff) else None,
            threshold=gates.parity_tolerance,
            reason=parity_result.reason or "ONNX matches scikit-learn on the holdout",
        )
    ]
    if gates.min_primary is not None or gates.max_primary is not None:
        lower = spec.primary in LOWER_IS_BETTER
        threshold = gates.max_primary if lower else gates.min_primary
        assert threshold is not None
        if value is None:
            verdicts.append(
                GateVerdict(gate="primary_metric", passed=False, threshold=threshold, reason=f"{primary} undefined")
            )
        else:
            ok = value <= threshold if lower else value >= threshold
            word = "at most" if lower else "at least"
            verdicts.append(
                GateVerdict(
                    gate="primary_metric",
                    passed=ok,
                    value=value,
                    threshold=threshold,
                    reason=f"{primary} {value:.6g} must be {word} {threshold:.6g}",
                )
            )
    if gates.max_regression is not None:
        prod = (production_metrics or {}).get(primary)
        if production_metrics is None or prod is None or value is None:
            verdicts.append(
                GateVerdict(
                    gate="max_regression",
                    passed=True,
                    threshold=gates.max_regression,
                    reason=production_note or "no production version to compare with",
                )
            )
        else:
            worse = (value - prod) if spec.primary in LOWER_IS_BETTER else (prod - value)
            verdicts.append(
                GateVerdict(
                    gate="max_regression",
                    passed=worse <= gates.max_regression,
                    value=worse,
                    threshold=gates.max_regression,
                    reason=f"{primary} {value:.6g} vs production {prod:.6g}: worse by {worse:.6g}",
                )
            )
    if gates.max_p99_latency_ms is not None:
        verdicts.append(
            GateVerdict(
                gate="max_p99_latency_ms",
                passed=latency.p99_ms <= gates.max_p99_latency_ms,
                value=latency.p99_ms,
                threshold=gates.max_p99_latency_ms,
                reason=f"ONNX single-row p99 {latency.p99_ms:.3f} ms over {latency.calls} calls",
            )
        )
    if gates.max_artifact_bytes is not None:
        name, largest = max(artifact_sizes.items(), key=lambda kv: kv[1])
        verdicts.append(
            GateVerdict(
                gate="max_artifact_bytes",
                passed=largest <= gates.max_artifact_bytes,
                value=float(largest),
                threshold=float(gates.max_artifact_bytes),
                reason=f"largest artifact {name} is {largest} bytes",
            )
        )
    return verdicts


def failed_reasons(verdicts: list[GateVerdict]) -> list[str]:
    return failed_gate_reasons(verdicts)


def features_available(features: list[Feature], columns: list[str]) -> list[str]:
    """Names of `features` missing from `columns`."""
    return [f.name for f in features if f.name not in columns]
