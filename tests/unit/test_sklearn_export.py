"""The client's scikit-learn export on the caller's machine: skl2onnx conversion with one input per
column, a clear error naming a step it cannot convert, and parity with the pipeline on a sample
before anything is uploaded."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from functions.logic.import_verify import verify_import
from functions.models.contracts import DataContract
from stepwise import sklearn_export as sx
from stepwise.client import ConversionError, ParityError, Stepwise
from stepwise.target import Target

CONTRACT = DataContract.model_validate(
    {
        "columns": [
            {"name": "amount", "type": "float"},
            {"name": "visits", "type": "int"},
            {"name": "segment", "type": "category", "categories": ["a", "b", "c"]},
            {"name": "tier", "type": "int", "nullable": False},
        ],
        "target": "tier",
    }
)
# a client whose API nobody answers: every refusal below happens before any request
OFFLINE = Stepwise(target=Target(api_url="http://127.0.0.1:9", outputs={}))


def _frame(rows: int = 80, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.normal(size=rows)
    return pd.DataFrame(
        {
            "amount": amount,
            "visits": rng.integers(0, 9, rows),
            "segment": rng.choice(["a", "b", "c"], rows),
            "tier": np.digitize(amount, [-0.5, 0.5]),
        }
    )


def _pipeline(estimator: object, frame: pd.DataFrame, y: str = "tier") -> Pipeline:
    prep = ColumnTransformer([("num", StandardScaler(), ["amount", "visits"]), ("cat", OneHotEncoder(), ["segment"])])
    return Pipeline([("prep", prep), ("model", estimator)]).fit(frame.drop(columns=[y]), frame[y])


class Doubler(BaseEstimator, TransformerMixin):  # type: ignore[misc]
    """A notebook's own transformer: skl2onnx has no converter for it."""

    def fit(self, X: object, y: object = None) -> Doubler:
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X) * 2


def test_a_classifier_converts_with_one_input_per_column_passes_parity_and_verification() -> None:
    # Given a classifier pipeline fitted in a notebook on numeric and text columns
    frame = _frame()
    pipeline = _pipeline(LogisticRegression(max_iter=500), frame)
    sample = frame.head(30)
    # When it is converted and checked against itself on the sample
    columns = sx.feature_columns(pipeline, sample, "tier")
    content = sx.to_onnx_graph(pipeline, sample, columns, sx.task_of(pipeline))
    sx.check_parity(pipeline, content, sample, columns, "classification", sx.Tolerance())
    # Then its inputs are the contract's columns and the platform's verification accepts it,
    # class labels in the dataset's order
    found = verify_import(
        content,
        expected_sha256=hashlib.sha256(content).hexdigest(),
        max_bytes=10 * 1024**2,
        contract=CONTRACT,
        target=None,
        task="classification",
        classes=["0", "1", "2"],
    )
    assert columns == ["amount", "visits", "segment"]
    assert [f.name for f in found.features] == columns and found.class_labels == ["0", "1", "2"]


def test_import_sklearn_names_the_step_skl2onnx_cannot_convert_before_any_request() -> None:
    frame = _frame()
    prep = ColumnTransformer([("num", Doubler(), ["amount", "visits"]), ("cat", OneHotEncoder(), ["segment"])])
    pipeline = Pipeline([("prep", prep), ("model", Ridge())]).fit(frame.drop(columns=["tier"]), frame["amount"])
    with pytest.raises(ConversionError) as caught:
        OFFLINE.import_sklearn(pipeline, model="m", dataset="d@1", sample=frame.head(10))
    assert str(caught.value) == (
        "skl2onnx has no converter for: pipeline step 'prep' transformer 'num' (tests.unit.test_sklearn_export.Doubler)"
    )


def test_parity_names_the_rows_where_the_graph_answers_differently() -> None:
    # Given a graph converted from one regressor, checked against another fitted on other labels
    frame = _frame()
    sample = frame.head(20)
    pipeline = _pipeline(Ridge(), frame)
    other = _pipeline(Ridge(), frame.assign(tier=frame["tier"].to_numpy()[::-1]))
    columns = sx.feature_columns(pipeline, sample, "tier")
    content = sx.to_onnx_graph(other, sample, columns, "regression")
    # Then the values differ beyond tolerance and the error says on which rows, by how much
    with pytest.raises(
        ParityError, match=r"the graph's prediction differs from the pipeline's beyond rtol=0.001, atol"
    ):
        sx.check_parity(pipeline, content, sample, columns, "regression", sx.Tolerance())
    # while the regressor's own graph passes
    sx.check_parity(
        pipeline,
        sx.to_onnx_graph(pipeline, sample, columns, "regression"),
        sample,
        columns,
        "regression",
        sx.Tolerance(),
    )


def test_import_sklearn_refuses_bad_arguments_before_any_request() -> None:
    frame = _frame()
    pipeline = _pipeline(LogisticRegression(max_iter=500), frame)
    with pytest.raises(ValueError, match="the pipeline is a classification model"):
        OFFLINE.import_sklearn(pipeline, model="m", dataset="d@1", sample=frame, task="regression")
    with pytest.raises(ValueError, match="NAME@VERSION"):
        OFFLINE.import_sklearn(pipeline, model="m", dataset="d", sample=frame)
    with pytest.raises(ConversionError, match=r"columns \['segment'\] the sample does not have"):
        OFFLINE.import_sklearn(pipeline, model="m", dataset="d@1", sample=frame.drop(columns=["segment"]))
    with pytest.raises(ConversionError, match="no rows"):
        OFFLINE.import_sklearn(pipeline, model="m", dataset="d@1", sample=frame.head(0))
