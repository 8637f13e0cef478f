"""Derived features in a training spec and the train step: the spec's own checks, the check
against the dataset's columns, derived columns computed by the compiled graph, and the merged
ONNX export (raw fields in) next to the unchanged export of specs without derived features."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from pydantic import ValidationError

from functions.logic import derived
from functions.logic import training as tr
from functions.logic.expressions_onnx import derive_columns
from functions.logic.expressions_runtime import TransformRunner
from functions.models.errors import InvalidInput
from functions.models.registry import Feature
from functions.models.specs import TrainingSpec
from tests.unit.lifecycle_data import classification_table

DERIVED = [
    {"name": "a_per_b", "expression": "safe_div(a, b, -1)", "type": "float"},
    {"name": "is_red", "expression": "lower(c) == 'red'", "type": "bool"},
    {"name": "a_band", "expression": "bucketize(a, [-1, 0, 1])", "type": "int"},
]
COLUMNS = [
    Feature(name="a", type="float", nullable=True),
    Feature(name="b", type="int"),
    Feature(name="c", type="category"),
    Feature(name="label", type="category"),
]


def spec(**overrides: Any) -> TrainingSpec:
    body: dict[str, Any] = {
        "name": "toy",
        "model": "toy-model",
        "dataset": "toy",
        "target": "label",
        "features": ["a_per_b", "is_red", "a_band", "b"],
        "derived": DERIVED,
        "task": "classification",
        "estimator": {"name": "RandomForestClassifier", "params": {"n_estimators": 10, "max_depth": 4}},
        "split": {"holdout_fraction": 0.25, "seed": 5},
    }
    return TrainingSpec.model_validate(body | overrides)


def test_spec_refuses_derived_features_named_twice_or_as_the_target() -> None:
    with pytest.raises(ValidationError, match="derived feature names must be unique"):
        spec(derived=[*DERIVED, DERIVED[0]])
    with pytest.raises(ValidationError, match="has the name of the target"):
        spec(derived=[{"name": "label", "expression": "a + 1", "type": "float"}], features=["a"])


def test_spec_without_derived_features_validates_as_before() -> None:
    plain = spec(derived=[], features=["a", "b", "c"])
    assert plain.derived == []
    assert TrainingSpec.model_validate(plain.model_dump(exclude={"derived"})) == plain


def test_check_spec_names_the_target_when_an_expression_reads_it() -> None:
    bad = spec(derived=[{"name": "leak", "expression": "lower(label) == 'yes'", "type": "bool"}], features=["leak"])
    with pytest.raises(InvalidInput, match="the target 'label' is never an input"):
        derived.check_spec(bad, COLUMNS)


def test_prepare_computes_derived_columns_with_the_compiled_graph() -> None:
    # Given a table and a spec deriving three features from raw columns
    table = classification_table()
    prepared = tr.prepare(spec(), table, COLUMNS)
    # Then the pipeline takes the spec's features (derived and raw), typed
    assert [(f.name, f.type) for f in prepared.features] == [
        ("a_per_b", "float"),
        ("is_red", "bool"),
        ("a_band", "int"),
        ("b", "int"),
    ]
    assert prepared.derivation is not None
    assert [f.name for f in prepared.derivation.raw_features] == ["a", "b", "c"]
    # and its derived columns are exactly the graph's outputs over the raw rows (nulls as NaN)
    graph = derive_columns(prepared.derivation.transformation, table)
    for name in ("a_per_b", "is_red", "a_band"):
        np.testing.assert_array_equal(prepared.frame[name].to_numpy(), graph[name])
    assert np.isnan(prepared.frame["a_per_b"].to_numpy()).any()  # a null `a` stays null
    b0 = np.asarray(table.column("b").to_numpy()) == 0
    a_valid = np.asarray(table.column("a").is_valid().to_numpy(zero_copy_only=False))
    assert (prepared.frame["a_per_b"].to_numpy()[b0 & a_valid] == -1).all()  # safe division's default


def test_export_merges_the_transformations_in_front_and_takes_raw_fields() -> None:
    table = classification_table()
    prepared = tr.prepare(spec(), table, COLUMNS)
    fitted = tr.fit(spec(), prepared)
    graph_inputs = tr.graph_inputs_for(prepared.features)
    merged = tr.export_onnx(fitted, prepared.features, graph_inputs, prepared.derivation)
    assert prepared.derivation is not None
    raw_inputs = prepared.derivation.raw_inputs
    assert raw_inputs == {"a": "raw0", "b": "raw1", "c": "raw2"}
    model = onnx.load_from_string(merged)
    assert [i.name for i in model.graph.input] == ["raw0", "raw1", "raw2"]
    # the whole graph on raw rows answers what the pipeline answers on the derived columns
    holdout = table.take(prepared.holdout_idx)
    feeds = derived.raw_feeds(prepared.derivation.raw_features, raw_inputs, holdout)
    labels, probabilities, *fed = TransformRunner(merged).session.run(None, feeds)
    frame = prepared.frame.iloc[prepared.holdout_idx]
    assert labels.astype(str).tolist() == fitted.pipeline.predict(frame).astype(str).tolist()
    np.testing.assert_allclose(probabilities, fitted.pipeline.predict_proba(frame), atol=1e-5)
    # and, after the pipeline's outputs, the derived values it fed the pipeline (what serving captures)
    derived_names = [f.name for f in prepared.features if f.name in {"a_per_b", "is_red", "a_band"}]
    assert [o.name for o in model.graph.output][2:] == derived_names
    for name, values in zip(derived_names, fed, strict=True):
        np.testing.assert_array_equal(values.reshape(-1), frame[name].to_numpy().astype(np.float32))


def test_export_without_derived_features_is_unchanged() -> None:
    # Given a spec without derived features, exported as before (skl2onnx's default opsets)
    from skl2onnx import __max_supported_opset__

    plain = spec(derived=[], features=["a", "b", "c"])
    prepared = tr.prepare(plain, classification_table(), COLUMNS)
    assert prepared.derivation is None
    fitted = tr.fit(plain, prepared)
    graph_inputs = tr.graph_inputs_for(prepared.features)
    model = onnx.load_from_string(tr.export_onnx(fitted, prepared.features, graph_inputs))
    # Then it takes the pipeline's positional inputs, at the default opset
    assert [i.name for i in model.graph.input] == ["f0", "f1", "f2"]
    assert {o.domain: o.version for o in model.opset_import}[""] <= __max_supported_opset__


def test_training_refuses_a_derived_feature_clashing_with_a_column_outside_the_contract() -> None:
    table = classification_table()
    bad = spec(derived=[{"name": "b", "expression": "a + 1", "type": "float"}], features=["b"])
    with pytest.raises(tr.TrainingFailed, match="has the name of an input field"):
        tr.prepare(bad, table, [])


def test_string_derived_feature_is_one_hot_encoded_and_served_by_the_merged_graph() -> None:
    # Given a derived string feature (case-folded colour) and a raw numeric one
    text = spec(
        derived=[{"name": "colour", "expression": "lower(c)", "type": "string"}],
        features=["colour", "a"],
    )
    table = classification_table()
    prepared = tr.prepare(text, table, COLUMNS)
    assert [(f.name, f.type) for f in prepared.features] == [("colour", "string"), ("a", "float")]
    fitted = tr.fit(text, prepared)
    merged = tr.export_onnx(fitted, prepared.features, tr.graph_inputs_for(prepared.features), prepared.derivation)
    assert prepared.derivation is not None
    # When the merged graph runs on raw rows, colours in upper case included
    raw = table.set_column(2, "c", pc_upper(table.column("c")))
    feeds = derived.raw_feeds(prepared.derivation.raw_features, prepared.derivation.raw_inputs, raw)
    labels, probabilities, colour = TransformRunner(merged).session.run(None, feeds)
    # Then it answers what the pipeline answers on the derived (lower-cased) column
    assert labels.astype(str).tolist() == fitted.pipeline.predict(prepared.frame).astype(str).tolist()
    np.testing.assert_allclose(probabilities, fitted.pipeline.predict_proba(prepared.frame), atol=1e-5)
    # and outputs that column as it fed the pipeline
    assert colour.reshape(-1).tolist() == prepared.frame["colour"].tolist()


def pc_upper(column: Any) -> Any:
    import pyarrow.compute as pc

    return pc.utf8_upper(column)
