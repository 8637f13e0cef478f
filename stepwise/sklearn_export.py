"""A fitted scikit-learn pipeline as an ONNX graph the platform imports, on the caller's machine.

`to_onnx_graph` converts with skl2onnx, one graph input per feature column named after it (shape
[N, 1], float for numeric and boolean columns, string for text), classifiers with a label output
and a probabilities tensor (no ZipMap). `check_parity` runs the graph in ONNX Runtime on a sample
and compares it with the pipeline's own predictions, so a conversion that changes answers is caught
before anything is uploaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Task = Literal["classification", "regression"]


class ConversionError(ValueError):
    """The pipeline cannot become an ONNX graph the platform imports (the message names the step)."""


class ParityError(ValueError):
    """The converted graph does not answer as the pipeline does on the sample (the message names the rows)."""


@dataclass(frozen=True)
class Tolerance:
    """How close the graph's numbers must be to the pipeline's: |onnx - sklearn| <= atol + rtol * |sklearn|
    (ONNX Runtime computes in float32, scikit-learn in float64)."""

    rtol: float = 1e-3
    atol: float = 1e-4


def task_of(pipeline: Any) -> Task:
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(pipeline):
        return "classification"
    if is_regressor(pipeline):
        return "regression"
    raise ConversionError(f"{type(pipeline).__name__} is neither a classifier nor a regressor")


def feature_columns(pipeline: Any, sample: Any, target: str | None) -> list[str]:
    """The columns the pipeline was fitted on (`feature_names_in_`), else the sample's minus the target."""
    if not hasattr(sample, "columns"):
        raise ConversionError("sample: give a pandas DataFrame of feature columns (a few rows of the dataset)")
    if len(sample) == 0:
        raise ConversionError("sample: the DataFrame has no rows; parity needs rows to compare")
    fitted = getattr(pipeline, "feature_names_in_", None)
    columns = [str(c) for c in fitted] if fitted is not None else [str(c) for c in sample.columns if c != target]
    missing = [c for c in columns if c not in sample.columns]
    if missing:
        raise ConversionError(f"sample: the pipeline takes columns {missing} the sample does not have")
    return columns


def unsupported_steps(estimator: Any, path: str = "pipeline") -> list[str]:
    """Every step (walking Pipeline, ColumnTransformer and FeatureUnion) skl2onnx has no converter for."""
    from skl2onnx._supported_operators import sklearn_operator_name_map
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion, Pipeline

    if estimator is None or isinstance(estimator, str):  # "passthrough", "drop"
        return []
    if isinstance(estimator, Pipeline):
        return [s for name, step in estimator.steps for s in unsupported_steps(step, f"{path} step {name!r}")]
    if isinstance(estimator, ColumnTransformer):
        parts = getattr(estimator, "transformers_", estimator.transformers)
        return [s for name, step, _ in parts for s in unsupported_steps(step, f"{path} transformer {name!r}")]
    if isinstance(estimator, FeatureUnion):
        return [s for name, step in estimator.transformer_list for s in unsupported_steps(step, f"{path} {name!r}")]
    if type(estimator) not in sklearn_operator_name_map:
        return [f"{path} ({type(estimator).__module__}.{type(estimator).__name__})"]
    return []


def to_onnx_graph(pipeline: Any, sample: Any, columns: list[str], task: Task) -> bytes:
    """The pipeline as a serialized ONNX graph, or ConversionError naming what skl2onnx cannot convert."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    missing = unsupported_steps(pipeline)
    if missing:
        raise ConversionError(f"skl2onnx has no converter for: {'; '.join(missing)}")
    initial: list[tuple[str, Any]] = []
    for name in columns:
        kind = sample[name].dtype.kind
        if kind in "fiub":
            initial.append((name, FloatTensorType([None, 1])))
        elif kind in "OSU" or str(sample[name].dtype) in ("category", "string"):
            initial.append((name, StringTensorType([None, 1])))
        else:
            raise ConversionError(
                f"column {name!r} has dtype {sample[name].dtype}; give numbers, booleans or text "
                "(timestamps as epoch seconds)"
            )
    final = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline
    options = {id(final): {"zipmap": False}} if task == "classification" else None
    try:
        graph = convert_sklearn(pipeline, initial_types=initial, options=options)
    except Exception as exc:  # skl2onnx raises RuntimeError, NotImplementedError, TypeError, ...
        raise ConversionError(f"skl2onnx could not convert the pipeline: {type(exc).__name__}: {exc}") from exc
    return bytes(graph.SerializeToString())


def feeds(sample: Any, columns: list[str]) -> dict[str, np.ndarray]:
    """ONNX Runtime inputs for the sample rows: float32 or text columns, shape [N, 1]."""
    out: dict[str, np.ndarray] = {}
    for name in columns:
        series = sample[name]
        if series.dtype.kind in "fiub":
            out[name] = series.to_numpy(dtype=np.float32).reshape(-1, 1)
        else:
            out[name] = series.astype(str).to_numpy(dtype=object).reshape(-1, 1)
    return out


def check_parity(pipeline: Any, content: bytes, sample: Any, columns: list[str], task: Task, tol: Tolerance) -> None:
    """ParityError unless ONNX Runtime's answers on the sample equal the pipeline's: regression values and
    class probabilities within `tol`, and the same label on every row whose top two probabilities are
    not within `tol` of each other (a near tie may round either way in float32)."""
    import onnxruntime as ort

    session = ort.InferenceSession(content, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    outputs = session.run(names, feeds(sample, columns))
    frame = sample[columns]
    if task == "regression":
        expected = np.asarray(pipeline.predict(frame), dtype=np.float64).reshape(-1)
        got = np.asarray(outputs[0], dtype=np.float64).reshape(-1)
        _close("prediction", got, expected, tol)
        return
    expected_labels = np.asarray(pipeline.predict(frame)).astype(str)
    got_labels = np.asarray(outputs[0]).reshape(-1).astype(str)
    raw = outputs[1]
    got_p = np.asarray(raw if isinstance(raw, np.ndarray) else [list(m.values()) for m in raw], dtype=np.float64)
    expected_p = np.asarray(pipeline.predict_proba(frame), dtype=np.float64)
    if got_p.shape != expected_p.shape:
        raise ParityError(f"the graph gives probabilities of shape {got_p.shape}, the pipeline {expected_p.shape}")
    _close("probability", got_p, expected_p, tol)
    top2 = np.sort(expected_p, axis=1)[:, -2:] if expected_p.shape[1] > 1 else np.zeros((len(expected_p), 2))
    clear = (top2[:, 1] - top2[:, 0]) > tol.atol + tol.rtol * top2[:, 1]
    differ = np.flatnonzero((got_labels != expected_labels) & clear)
    if differ.size:
        shown = ", ".join(f"row {i}: {got_labels[i]} != {expected_labels[i]}" for i in differ[:5].tolist())
        raise ParityError(f"the graph's labels differ from the pipeline's on {differ.size} sample row(s): {shown}")


def _close(what: str, got: np.ndarray, expected: np.ndarray, tol: Tolerance) -> None:
    if got.shape != expected.shape:
        raise ParityError(f"the graph gives {what} values of shape {got.shape}, the pipeline {expected.shape}")
    off = np.abs(got - expected) > tol.atol + tol.rtol * np.abs(expected)
    if off.any():
        rows = np.flatnonzero(off.reshape(len(off), -1).any(axis=1))
        worst = float(np.max(np.abs(got - expected)))
        raise ParityError(
            f"the graph's {what} differs from the pipeline's beyond rtol={tol.rtol}, atol={tol.atol} on "
            f"{rows.size} sample row(s) (first {rows[:5].tolist()}; largest difference {worst:.3g})"
        )
