"""Evaluation records the candidate's holdout outputs in the reference profile the registered
version points to (the reference of prediction drift)."""

from __future__ import annotations

import numpy as np

from functions.dal import artifacts as artifacts_dal
from functions.dal import registry as registry_dal
from functions.models.profile import NumericProfile, ReferenceProfile
from tests.integration.conftest import Stores
from tests.integration.lifecycle_support import run_steps, seed_dataset, seed_spec, start_state
from tests.integration.test_lifecycle_handlers import toy_spec
from tests.unit.lifecycle_data import classification_table


def test_evaluate_records_holdout_outputs_in_the_registered_reference_profile(stores: Stores) -> None:
    # Given a validated dataset and a classification spec
    table = classification_table()
    dataset = seed_dataset(stores, "toy", table, "label")
    spec = seed_spec(stores, toy_spec())
    # When train, evaluate and register run
    state = run_steps(start_state(spec, dataset))
    # Then the registered profile (sha256 verified) holds the training features and the holdout outputs
    version = registry_dal.get_version(stores.registry_table, "toy-model", 1)
    assert version is not None
    assert version.artifacts["profile"].model_dump(mode="json") == state["evaluation"]["profile"]
    assert version.artifacts["profile"].uri.endswith("/profile-outputs.json")
    profile = ReferenceProfile.from_bytes(artifacts_dal.get_artifact(version.artifacts["profile"], "profile"))
    assert [f.name for f in profile.features] == ["a", "b", "c"]
    outputs = profile.outputs
    assert outputs is not None and outputs.task == "classification" and outputs.class_labels == ["no", "yes"]
    assert outputs.row_count == state["train"]["holdout_rows"]
    label, score = outputs.features
    assert label.name == "prediction" and label.count == outputs.row_count
    assert isinstance(score, NumericProfile) and score.name == "probability:yes"
    assert 0.0 <= score.min <= score.max <= 1.0 and int(np.sum(score.counts)) == outputs.row_count
