from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from functions.logic import evaluation as ev
from functions.logic import training as tr
from functions.models.errors import IntegrityError
from functions.models.registry import Feature
from functions.models.specs import TrainingSpec
from tests.unit.lifecycle_data import classification_table, regression_table

SMALL = {
    "HistGradientBoostingClassifier": {"max_iter": 20},
    "RandomForestClassifier": {"n_estimators": 10, "max_depth": 5},
    "LogisticRegression": {},
    "HistGradientBoostingRegressor": {"max_iter": 20},
    "RandomForestRegressor": {"n_estimators": 10, "max_depth": 5},
    "Ridge": {},
}


def make_spec(estimator: str, **overrides: Any) -> TrainingSpec:
    regression = estimator in ("HistGradientBoostingRegressor", "RandomForestRegressor", "Ridge")
    base: dict[str, Any] = {
        "name": "toy",
        "model": "toy-model",
        "dataset": "toy",
        "target": "y" if regression else "label",
        "features": ["a", "b", "c"],
        "task": "regression" if regression else "classification",
        "estimator": {"name": estimator, "params": SMALL[estimator]},
        "split": {"holdout_fraction": 0.25, "seed": 3},
        "latency_calls": 50,
    }
    return TrainingSpec.model_validate(base | overrides)


def fit_and_export(spec: TrainingSpec) -> tuple[tr.Prepared, tr.Fitted, bytes]:
    table = regression_table() if spec.task == "regression" else classification_table()
    prepared = tr.prepare(spec, table, [])
    fitted = tr.fit(spec, prepared)
    return prepared, fitted, tr.export_onnx(fitted, prepared.features, tr.graph_inputs_for(prepared.features))


def feeds_of(frame: Any, features: list[Feature]) -> dict[str, np.ndarray]:
    """The frame as the ONNX inputs the lifecycle's export names."""
    return tr.onnx_feeds(frame, features, list(tr.graph_inputs_for(features).values()))


@pytest.mark.parametrize("estimator", sorted(SMALL))
def test_training_every_allowed_estimator_exports_to_onnx_with_parity(estimator: str) -> None:
    # Given a spec with each allowed estimator; When fitted and exported
    spec = make_spec(estimator)
    prepared, fitted, onnx_bytes = fit_and_export(spec)
    holdout = prepared.frame.iloc[prepared.holdout_idx]
    # Then ONNX predicts what scikit-learn predicts on the holdout
    reference = ev.sklearn_predictions(fitted.pipeline, holdout, spec.task)
    served = ev.onnx_predictions(ev.onnx_session(onnx_bytes), feeds_of(holdout, prepared.features), spec.task)
    result = ev.parity(reference, served, spec.gates.parity_tolerance)
    assert result.passed, result.reason
    assert result.label_mismatches == 0


def test_training_is_reproducible_for_the_same_spec_and_data() -> None:
    # Given the same spec and table; When trained twice
    spec = make_spec("RandomForestClassifier")
    first, fitted_1, onnx_1 = fit_and_export(spec)
    second, fitted_2, onnx_2 = fit_and_export(spec)
    holdout = first.frame.iloc[first.holdout_idx]
    # Then the split, the metrics and the predictions are identical to the byte
    assert np.array_equal(first.holdout_idx, second.holdout_idx)
    p1 = fitted_1.pipeline.predict_proba(holdout)
    p2 = fitted_2.pipeline.predict_proba(holdout)
    assert p1.tobytes() == p2.tobytes()
    feeds = feeds_of(holdout, first.features)
    o1 = ev.onnx_session(onnx_1).run(None, feeds)[1]
    o2 = ev.onnx_session(onnx_2).run(None, feeds)[1]
    assert o1.tobytes() == o2.tobytes()
    y = first.y[first.holdout_idx]
    m1 = ev.compute_metrics(
        spec.metrics, y, ev.sklearn_predictions(fitted_1.pipeline, holdout, spec.task), fitted_1.class_labels
    )
    m2 = ev.compute_metrics(
        spec.metrics, y, ev.sklearn_predictions(fitted_2.pipeline, holdout, spec.task), fitted_1.class_labels
    )
    assert m1 == m2 and set(m1) == {"accuracy", "f1", "roc_auc", "log_loss"}


def test_training_skops_round_trip_loads_only_trusted_types() -> None:
    # Given a fitted pipeline saved with skops
    spec = make_spec("HistGradientBoostingClassifier")
    prepared, fitted, _ = fit_and_export(spec)
    data = tr.dump_skops(fitted)
    # When loaded back; Then it predicts the same
    loaded = tr.load_skops(data)
    holdout = prepared.frame.iloc[prepared.holdout_idx]
    assert np.array_equal(loaded.predict_proba(holdout), fitted.pipeline.predict_proba(holdout))


def test_training_load_skops_refuses_untrusted_types() -> None:
    import skops.io as sio

    data = sio.dumps({"f": np.random.default_rng(0).bit_generator})  # not a model type we trust
    with pytest.raises(IntegrityError, match="untrusted types"):
        tr.load_skops(data)


def test_training_refuses_a_missing_feature_or_target() -> None:
    with pytest.raises(tr.TrainingFailed, match="not a column"):
        tr.prepare(make_spec("Ridge", features=["a", "zzz"]), regression_table(), [])
    with pytest.raises(tr.TrainingFailed, match="target"):
        tr.prepare(make_spec("Ridge", target="nope"), regression_table(), [])


def test_training_reference_profile_covers_the_features() -> None:
    spec = make_spec("Ridge")
    prepared = tr.prepare(spec, regression_table(), [])
    data = tr.reference_profile(prepared.table, prepared.features, datetime(2026, 1, 1, tzinfo=UTC))
    from functions.models.profile import ReferenceProfile

    profile = ReferenceProfile.from_bytes(data)
    assert [f.name for f in profile.features] == ["a", "b", "c"]
    assert profile.row_count == prepared.table.num_rows


def test_training_parameters_record_the_seed_and_estimator() -> None:
    spec = make_spec("RandomForestRegressor")
    _, fitted, _ = fit_and_export(spec)
    params = tr.pipeline_parameters(spec, fitted)
    assert params["estimator"] == "RandomForestRegressor"
    assert params["random_state"] == 3 and params["n_estimators"] == 10


def test_training_float32_alignment_keeps_predictions_and_fixes_onnx_parity() -> None:
    # Given the wine data (bundled with scikit-learn), where HistGradientBoosting thresholds
    # round onto training values in float32
    from stepwise.demo_data import wine_table

    table = wine_table()
    features = [n for n in table.column_names if n not in ("id", "label", "region")]
    spec = TrainingSpec.model_validate(
        {
            "name": "wine",
            "model": "wine-model",
            "dataset": "wine",
            "target": "label",
            "features": features,
            "task": "classification",
            "estimator": {"name": "HistGradientBoostingClassifier", "params": {"max_iter": 30}},
            "split": {"seed": 7, "holdout_fraction": 0.25},
        }
    )
    prepared = tr.prepare(spec, table, [])
    pipeline = tr.build_pipeline(spec, prepared.features)
    pipeline.fit(prepared.frame.iloc[prepared.train_idx], prepared.y[prepared.train_idx])
    before = pipeline.predict_proba(prepared.frame)
    # When its constants are aligned to float32
    tr.align_to_float32(pipeline)
    # Then scikit-learn predicts exactly as before, and ONNX now matches it
    assert np.array_equal(before, pipeline.predict_proba(prepared.frame))
    fitted = tr.Fitted(pipeline=pipeline, class_labels=[str(c) for c in pipeline.classes_], fit_seconds=0.0)
    holdout = prepared.frame.iloc[prepared.holdout_idx]
    served = ev.onnx_predictions(
        ev.onnx_session(tr.export_onnx(fitted, prepared.features, tr.graph_inputs_for(prepared.features))),
        feeds_of(holdout, prepared.features),
        "classification",
    )
    result = ev.parity(ev.sklearn_predictions(pipeline, holdout, "classification"), served, 1e-5)
    assert result.passed and result.max_abs_diff < 1e-6, result


def test_training_floor_float32_is_the_largest_float32_not_above() -> None:
    values = np.array([0.1, 1.0, -0.1, 1e-40, 3.4e38])
    floored = tr.floor_float32(values)
    assert np.all(floored <= values)
    assert np.all(floored.astype(np.float32).astype(np.float64) == floored)
    above = np.nextafter(floored.astype(np.float32), np.float32(np.inf)).astype(np.float64)
    assert np.all(above > values)
