"""Reproducibility on moto: a version trained by the lifecycle steps is retrained from its records
(dataset object, spec version, seed) with identical holdout predictions, retired or not."""

from __future__ import annotations

from functions.logic import retirement
from functions.logic.reproduce import reproduce
from functions.models.audit import Actor
from functions.models.settings import get_settings
from tests.integration.conftest import Stores
from tests.integration.lifecycle_support import run_steps, seed_dataset, seed_spec, start_state
from tests.integration.test_lifecycle_handlers import toy_spec
from tests.unit.lifecycle_data import classification_table


def test_reproduce_retired_version_gives_identical_holdout_predictions(stores: Stores) -> None:
    # Given version 1 trained by the lifecycle steps, then rejected and retired
    dataset = seed_dataset(stores, "toy", classification_table(), "label")
    spec = seed_spec(stores, toy_spec(gates={"min_primary": 1.01}))  # fails its gate: REJECTED
    assert run_steps(start_state(spec, dataset))["registered"]["status"] == "REJECTED"
    settings = get_settings()
    retirement.retire(settings, "toy-model", 1, Actor(identity="ops"), "never served")
    # When it is reproduced
    result = reproduce(settings, "toy-model", 1)
    # Then the retrained pipeline predicts the holdout exactly as the recorded artifact
    assert result.identical and result.label_mismatches == 0 and result.max_abs_diff == 0.0
    assert result.holdout_rows > 0 and result.seed == 5 and result.data_sha256 == dataset.sha256
