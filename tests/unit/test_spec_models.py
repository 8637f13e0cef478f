from __future__ import annotations

import pytest
from pydantic import ValidationError

from functions.models.approvals import ReleaseStrategy
from functions.models.runs import execution_name
from functions.models.specs import EstimatorName, Metric, TrainingSpec


def spec(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "churn",
        "model": "churn-model",
        "dataset": "churn",
        "target": "label",
        "features": ["a", "b"],
        "task": "classification",
        "estimator": {"name": "LogisticRegression", "params": {"C": 0.5}},
    }
    return base | overrides


def test_spec_defaults_metrics_and_primary_from_the_task() -> None:
    # Given a classification spec without metrics; When parsed
    parsed = TrainingSpec.model_validate(spec())
    # Then the task's default metrics apply and the first is primary
    assert parsed.metrics[0] == Metric.ACCURACY
    assert parsed.primary == Metric.ACCURACY
    assert parsed.split.seed == 0 and parsed.compute == "lambda"


def test_spec_refuses_an_estimator_outside_the_allow_list() -> None:
    with pytest.raises(ValidationError, match=r"estimator\.name"):
        TrainingSpec.model_validate(spec(estimator={"name": "SVC"}))


def test_spec_refuses_parameters_the_estimator_does_not_allow_here() -> None:
    # random_state comes from the split seed, never from params
    with pytest.raises(ValidationError, match="random_state"):
        TrainingSpec.model_validate(spec(estimator={"name": "LogisticRegression", "params": {"random_state": 3}}))


def test_spec_refuses_an_estimator_of_the_other_task() -> None:
    with pytest.raises(ValidationError, match="not a classification estimator"):
        TrainingSpec.model_validate(spec(estimator={"name": EstimatorName.RIDGE.value}))


def test_spec_refuses_metrics_of_the_other_task_and_mismatched_gates() -> None:
    with pytest.raises(ValidationError, match="do not apply"):
        TrainingSpec.model_validate(spec(metrics=["rmse"]))
    with pytest.raises(ValidationError, match="max_primary"):
        TrainingSpec.model_validate(spec(metrics=["log_loss"], gates={"min_primary": 0.2}))


def test_spec_refuses_target_among_features_and_unknown_fields() -> None:
    with pytest.raises(ValidationError, match="cannot also be a feature"):
        TrainingSpec.model_validate(spec(features=["a", "label"]))
    with pytest.raises(ValidationError, match="extra"):
        TrainingSpec.model_validate(spec(surprise=1))


def test_execution_name_fits_step_functions_limit() -> None:
    assert execution_name("churn-model", 7, 3) == "churn-model-7-3"
    assert len(execution_name("m" * 63, 123456789, 123456789)) <= 80


def test_execution_name_of_a_retraining_names_its_trigger_and_still_fits() -> None:
    assert execution_name("churn-model", 7, 3, "rabc123") == "churn-model-7-3-rabc123"
    assert execution_name("churn-model", 7, 3, "rabc123") != execution_name("churn-model", 7, 3)
    assert len(execution_name("m" * 63, 123456789, 123456789, "r" + "f" * 16)) <= 80


def test_spec_release_strategy_defaults_to_all_at_once_and_takes_a_canary() -> None:
    assert TrainingSpec.model_validate(spec()).release.kind == "all_at_once"
    canary = TrainingSpec.model_validate(spec(release={"kind": "canary", "weight": 0.1, "bake_seconds": 60}))
    assert (canary.release.kind, canary.release.weight, canary.release.bake_seconds) == ("canary", 0.1, 60)
    with pytest.raises(ValidationError, match="release"):
        TrainingSpec.model_validate(spec(release={"kind": "blue-green"}))


def test_spec_canary_without_traffic_fails_unless_the_spec_opts_into_pass() -> None:
    # Given a canary spec that says nothing about "no data", Then a canary no request reached fails
    canary = TrainingSpec.model_validate(spec(release={"kind": "canary"}))
    assert canary.release.check.on_no_data == "fail"
    assert ReleaseStrategy().check.on_no_data == "fail"
    # and only an explicit "pass" lets it through
    lenient = TrainingSpec.model_validate(spec(release={"kind": "canary", "check": {"on_no_data": "pass"}}))
    assert lenient.release.check.on_no_data == "pass"
    with pytest.raises(ValidationError, match="on_no_data"):
        TrainingSpec.model_validate(spec(release={"kind": "canary", "check": {"on_no_data": "maybe"}}))
