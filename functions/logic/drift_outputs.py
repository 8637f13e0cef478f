"""Prediction drift: the model's outputs on the holdout (recorded at evaluation) against the
outputs the reference version gave the window's requests.

Outputs are profiled like input features and tested by the same code (functions/logic/drift.py):
classifiers have "prediction" (the class label: chi-square + JS distance / PSI) and one
"probability:<class>" per class (KS / PSI; the positive class alone for two classes), regressors
"prediction" (KS / PSI). Only rows the reference version answered count (no shadow scorings, no
other version's answers): another version's outputs are not this reference's drift.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from functions.logic.compaction import PREDICTION, PROBABILITIES, VARIANT, VERSION
from functions.logic.drift import SHADOW, DriftAccumulator, ParquetRowGroup, finish
from functions.logic.profile import build_reference_profile
from functions.models.drift import DriftConfig, FeatureVerdict, OutputDrift
from functions.models.profile import DEFAULT_BINS, OutputProfile, ReferenceProfile
from functions.models.registry import Feature

OUTPUT_PREDICTION = "prediction"
_NAME_LIMIT = 128  # a profile feature's name limit


def probability_name(label: str) -> str:
    return f"probability:{label}"[:_NAME_LIMIT]


def probability_classes(class_labels: list[str]) -> list[int]:
    """Indexes of the classes whose probability is profiled: the positive one of two (the other is
    its complement), every one of more."""
    return [1] if len(class_labels) == 2 else list(range(len(class_labels)))


def _output_features(task: str, class_labels: list[str]) -> list[Feature]:
    if task == "regression":
        return [Feature(name=OUTPUT_PREDICTION, type="float")]
    return [
        Feature(name=OUTPUT_PREDICTION, type="category", categories=list(class_labels)),
        *(Feature(name=probability_name(class_labels[j]), type="float") for j in probability_classes(class_labels)),
    ]


def _distinct_names(class_labels: list[str]) -> bool:
    names = [probability_name(class_labels[j]) for j in probability_classes(class_labels)]
    return len(set(names)) == len(names) and OUTPUT_PREDICTION not in names


def output_profile(
    task: str,
    class_labels: list[str] | None,
    *,
    labels: np.ndarray | None = None,
    probabilities: np.ndarray | None = None,
    values: np.ndarray | None = None,
    n_bins: int = DEFAULT_BINS,
) -> OutputProfile:
    """The profile of a model's outputs on the holdout (labels and probabilities [N, classes] in
    class_labels order for classifiers, values for regressors). Raises ValueError when they do not
    fit together."""
    classes = list(class_labels or [])
    if task == "regression":
        if values is None:
            raise ValueError("a regressor's output profile needs its predicted values")
        table = pa.table({OUTPUT_PREDICTION: pa.array(np.asarray(values, dtype=np.float64), from_pandas=True)})
        rows = len(values)
    else:
        if labels is None or probabilities is None or not classes:
            raise ValueError("a classifier's output profile needs labels, probabilities and class labels")
        probs = np.asarray(probabilities, dtype=np.float64)
        if probs.ndim != 2 or probs.shape != (len(labels), len(classes)):
            raise ValueError(f"probabilities of shape {probs.shape} for {len(labels)} rows and {len(classes)} classes")
        if not _distinct_names(classes):
            raise ValueError("class labels give duplicate output names (first 116 characters equal)")
        columns: dict[str, pa.Array] = {OUTPUT_PREDICTION: pa.array(np.asarray(labels).astype(str))}
        for j in probability_classes(classes):
            columns[probability_name(classes[j])] = pa.array(probs[:, j], from_pandas=True)
        table = pa.table(columns)
        rows = len(labels)
    profile = build_reference_profile(table, _output_features(task, classes), n_bins=n_bins)
    return OutputProfile(task=task, row_count=rows, class_labels=classes, features=profile.features)  # type: ignore[arg-type]


def output_table(
    batch: ParquetRowGroup | pa.Table | pa.RecordBatch, outputs: OutputProfile, version: int
) -> pa.Table | None:
    """The batch's outputs as profile columns, only the rows `version` answered outside shadow
    scoring; None when the batch has no prediction column. Probabilities of a row whose list is
    null or of another length are null (counted as null outputs)."""
    names = batch.names if isinstance(batch, ParquetRowGroup) else frozenset(batch.schema.names)
    if PREDICTION not in names:
        return None
    n = batch.num_rows
    keep = pa.array(np.ones(n, dtype=bool))
    if VERSION in names:
        keep = pc.and_(keep, pc.fill_null(pc.equal(batch.column(VERSION), version), False))
    if VARIANT in names and (not isinstance(batch, ParquetRowGroup) or batch.may_hold(VARIANT, SHADOW)):
        keep = pc.and_(keep, pc.fill_null(pc.not_equal(batch.column(VARIANT), SHADOW), True))
    keep = keep.combine_chunks() if isinstance(keep, pa.ChunkedArray) else keep
    columns: dict[str, pa.Array | pa.ChunkedArray] = {OUTPUT_PREDICTION: batch.column(PREDICTION)}
    classes = outputs.class_labels
    if outputs.task == "classification":
        k = len(classes)
        matrix = np.full((n, k), np.nan)
        if PROBABILITIES in names:
            lists = batch.column(PROBABILITIES)
            lists = lists.combine_chunks() if isinstance(lists, pa.ChunkedArray) else lists
            whole = (pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False) == k) & (k > 0)
            if whole.any():
                flat = pc.list_flatten(lists.filter(pa.array(whole))).to_numpy(zero_copy_only=False)
                matrix[whole] = np.asarray(flat, dtype=np.float64).reshape(-1, k)
        for j in probability_classes(classes):
            columns[probability_name(classes[j])] = pa.array(matrix[:, j], from_pandas=True)
    return pa.table(columns).filter(keep)


class OutputAccumulator:
    """Counts of the window's outputs against the reference profile's outputs."""

    def __init__(self, profile: ReferenceProfile, version: int) -> None:
        self.outputs = profile.outputs
        self.version = version
        self.rows = 0
        self._acc: DriftAccumulator | None = None
        if self.outputs is not None:
            outputs = self.outputs
            pseudo = ReferenceProfile(
                created_at=profile.created_at, row_count=outputs.row_count, features=outputs.features
            )
            self._acc = DriftAccumulator(pseudo)

    def add(self, batch: ParquetRowGroup | pa.Table | pa.RecordBatch) -> None:
        if self._acc is None or self.outputs is None or batch.num_rows == 0:
            return
        table = output_table(batch, self.outputs, self.version)
        if table is not None and table.num_rows:
            self._acc.add(table)
            self.rows += table.num_rows

    def finish(self, config: DriftConfig, *, model: str) -> OutputDrift:
        outputs = self.outputs
        if outputs is None or self._acc is None:
            return OutputDrift(
                verdict="no_reference",
                reason="the reference profile has no outputs (recorded at evaluation; older versions lack them)",
            )
        reference = outputs.row_count
        if self.rows == 0:
            return OutputDrift(
                verdict="no_data",
                reason=f"no captured output of v{self.version} in the window",
                reference_rows=reference,
            )
        if self.rows < config.min_rows:
            reason = f"{self.rows} outputs of v{self.version} in the window, minimum {config.min_rows}"
            return OutputDrift(verdict="insufficient_data", reason=reason, rows=self.rows, reference_rows=reference)
        if reference < config.min_output_reference_rows:
            reason = f"{reference} holdout rows in the reference, minimum {config.min_output_reference_rows}"
            return OutputDrift(verdict="insufficient_data", reason=reason, rows=self.rows, reference_rows=reference)
        # the window has min_rows rows (checked above); each output needs min_output_reference_rows
        # values on both sides, and none is critical: the section's verdict is "any output drifted"
        per_output = config.model_copy(
            update={"min_rows": min(config.min_rows, config.min_output_reference_rows), "critical_features": []}
        )
        report = finish(self._acc, per_output, model=model, version=self.version)
        drifted = [f.name for f in report.features if f.verdict == FeatureVerdict.DRIFT]
        tested = [f for f in report.features if f.verdict in (FeatureVerdict.DRIFT, FeatureVerdict.NO_DRIFT)]
        if drifted:
            verdict, reason = "drift", f"output(s) drifted: {', '.join(drifted)}"
        elif not tested:
            verdict, reason = (
                "insufficient_data",
                "no output could be tested: " + "; ".join(f"{f.name}: {f.reason}" for f in report.features),
            )
        else:
            verdict, reason = "no_drift", f"none of {len(tested)} outputs changed significantly by the required size"
        return OutputDrift(
            verdict=verdict,  # type: ignore[arg-type]
            reason=reason,
            rows=self.rows,
            reference_rows=reference,
            drifted=drifted,
            outputs=report.features,
        )
