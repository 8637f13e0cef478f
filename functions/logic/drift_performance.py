"""Performance drift: ground-truth labels (the feedback route) joined with captured predictions by
request id; accuracy and macro F1, or RMSE and MAE, over the window against the evaluation
metrics recorded at registration. numpy/pyarrow only.

Requests that scored several rows share one request id; their label cannot be told apart, so
they are left out of the join (counted). Shadow scorings are left out (the caller got the answer
of the production or candidate version).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from functions.logic.compaction import PREDICTION, REQUEST_ID, VARIANT, gunzip
from functions.models.drift import PerformanceMetric, PerformanceReport

_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)
HIGHER_IS_BETTER = {"accuracy": True, "f1": True, "rmse": False, "mae": False}
_LABELS_SCHEMA = pa.schema([("request_id", pa.string()), ("label", pa.string())])


def _label_lines(raw: bytes) -> list[pa.Table]:
    """request_id + label (as text) of each parseable line; a label of any JSON scalar type."""
    from functions.logic.compaction import _objects_only  # same guard: pyarrow crashes on `null` lines

    tables: list[pa.Table] = []
    blocks = [raw]
    while blocks:
        block = blocks.pop()
        lines = [line for line in block.split(b"\n") if line.strip()]
        if not lines:
            continue
        try:
            if not _objects_only(block):
                raise pa.ArrowInvalid("a line is not an object")
            options = pj.ParseOptions(
                explicit_schema=pa.schema([("request_id", pa.string())]), unexpected_field_behavior="infer"
            )
            table = pj.read_json(io.BytesIO(block), parse_options=options)
            if "label" not in table.column_names:
                continue
            tables.append(
                pa.table({"request_id": table.column("request_id"), "label": table.column("label").cast(pa.string())})
            )
        except _ARROW_ERRORS:
            if len(lines) > 1:  # split until the lines that do not parse alone are dropped
                half = len(lines) // 2
                blocks += [b"\n".join(lines[:half]), b"\n".join(lines[half:])]
    return tables


def load_labels(objects: Iterable[bytes]) -> pa.Table:
    """Feedback objects (gzip JSON Lines) -> request_id, label; the last label of a request wins."""
    tables: list[pa.Table] = []
    for data in objects:
        try:
            tables += _label_lines(gunzip(data))
        except (ValueError, EOFError):
            continue
    if not tables:
        return _LABELS_SCHEMA.empty_table()
    labels = pa.concat_tables(tables).filter(pc.is_valid(pc.field("request_id")) & pc.is_valid(pc.field("label")))
    # last occurrence of each request id
    reversed_ = labels.take(pa.array(np.arange(labels.num_rows - 1, -1, -1)))
    first = pc.index_in(reversed_.column("request_id"), value_set=pc.unique(reversed_.column("request_id")))
    _, where = np.unique(first.to_numpy(zero_copy_only=False), return_index=True)
    return reversed_.take(pa.array(where))


def matching_predictions(batch: pa.Table | pa.RecordBatch, request_ids: pa.Array) -> pa.Table:
    """The rows of a compacted batch whose request id has a label (not shadow scorings)."""
    mask = pc.is_in(batch.column(REQUEST_ID), value_set=request_ids)
    if VARIANT in batch.schema.names:
        mask = pc.and_(mask, pc.fill_null(pc.not_equal(batch.column(VARIANT), "shadow"), True))
    picked = batch.filter(mask)
    return pa.table({"request_id": picked.column(REQUEST_ID), "prediction": picked.column(PREDICTION)})


def _f1_macro(y: np.ndarray, p: np.ndarray) -> float:
    classes = np.unique(np.concatenate([y, p]))
    yi, pi = np.searchsorted(classes, y), np.searchsorted(classes, p)
    k = len(classes)
    tp = np.bincount(yi[yi == pi], minlength=k).astype(np.float64)
    support, predicted = np.bincount(yi, minlength=k), np.bincount(pi, minlength=k)
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0)
    return float(f1[support > 0].mean()) if (support > 0).any() else 0.0


def _drop(name: str, value: float, reference: float) -> float:
    """How much worse than the reference: absolute for accuracy/F1, relative for RMSE/MAE."""
    if HIGHER_IS_BETTER[name]:
        return reference - value
    return (value - reference) / reference if reference > 0 else value - reference


def evaluate(
    predictions: pa.Table,
    labels: pa.Table,
    task: str,
    reference: Mapping[str, float],
    *,
    min_labels: int,
    max_drop: float,
) -> PerformanceReport:
    """Join and score; a metric "drops" when it is worse than at registration by more than max_drop
    (absolute for accuracy/F1, relative for RMSE/MAE)."""
    counts = pc.value_counts(predictions.column("request_id")) if predictions.num_rows else None
    ambiguous = 0
    if counts is not None and len(counts):
        many = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
        if len(many):
            ambiguous = int(pc.sum(pc.is_in(predictions.column("request_id"), value_set=many)).as_py() or 0)
            predictions = predictions.filter(pc.invert(pc.is_in(predictions.column("request_id"), value_set=many)))
    joined = predictions.join(labels, "request_id", join_type="inner")
    joined = joined.filter(pc.is_valid(joined.column("prediction")))
    n = joined.num_rows
    base = PerformanceReport(labels=labels.num_rows, matched=n, ambiguous_requests_rows=ambiguous, verdict="ok")
    if n < min_labels:
        return base.model_copy(
            update={"verdict": "insufficient_labels", "reason": f"{n} labelled predictions, minimum {min_labels}"}
        )
    metrics: dict[str, float] = {}
    if task == "classification":
        y = joined.column("label").to_numpy(zero_copy_only=False).astype(str)
        p = joined.column("prediction").cast(pa.string()).to_numpy(zero_copy_only=False).astype(str)
        metrics["accuracy"] = float(np.mean(y == p))
        metrics["f1"] = _f1_macro(y, p)
    else:
        try:
            y = joined.column("label").cast(pa.float64()).to_numpy(zero_copy_only=False)
        except _ARROW_ERRORS:
            return base.model_copy(update={"verdict": "insufficient_labels", "reason": "labels are not numbers"})
        p = joined.column("prediction").cast(pa.float64()).to_numpy(zero_copy_only=False)
        err = p - y
        metrics["rmse"] = float(np.sqrt(np.mean(err * err)))
        metrics["mae"] = float(np.mean(np.abs(err)))
    rows: list[PerformanceMetric] = []
    dropped: list[str] = []
    for name, value in metrics.items():
        ref = reference.get(name)
        if ref is None or not math.isfinite(value):
            rows.append(PerformanceMetric(name=name, value=value if math.isfinite(value) else 0.0))
            continue
        drop = _drop(name, value, ref)
        worse = drop > max_drop
        rows.append(PerformanceMetric(name=name, value=value, reference=ref, drop=drop, dropped=worse))
        if worse:
            dropped.append(name)
    if dropped:
        return base.model_copy(
            update={
                "metrics": rows,
                "verdict": "drop",
                "reason": f"{', '.join(dropped)} worse than at registration by more than {max_drop:g}",
            }
        )
    return base.model_copy(update={"metrics": rows, "reason": "no metric worse than at registration beyond the limit"})
