"""Monitoring of derived features through the real handlers on moto: the reference profile covers
the derived features the pipeline took; serving captures the raw fields AND the derived values the
served graph computed (the same run that answered); the drift check tests derived features like
inputs."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import boto3
import numpy as np
import pyarrow as pa
import pytest

from functions.dal import artifacts
from functions.dal import registry as registry_dal
from functions.dal import specs as specs_dal
from functions.handlers import drift as drift_handler
from functions.handlers import predict
from functions.logic import training as tr
from functions.logic.serving import Serving
from functions.models.profile import ReferenceProfile
from functions.models.settings import get_settings
from tests.integration.conftest import Stores
from tests.integration.lifecycle_support import run_steps, seed_dataset, start_state
from tests.integration.test_lifecycle_derived import MODEL, _instances, api_call, predict_call, spend_spec, spend_table
from tests.integration.test_predict_support import put_model
from tests.lambda_context import FakeContext

DERIVED_NAMES = ["per_visit", "log_amount", "amount_band", "signup_hour"]
RAW_NAMES = ["amount", "segment", "signup", "visits"]


@pytest.fixture
def capturing() -> Iterator[None]:
    """Serving that writes its capture buffer before every invocation returns."""
    predict.reset(Serving(get_settings().model_copy(update={"capture_flush_seconds": 0.0})))
    yield
    predict.reset(None)


def captured_lines(stores: Stores) -> list[dict[str, Any]]:
    s3 = boto3.client("s3")
    keys = [
        o["Key"] for o in s3.list_objects_v2(Bucket=stores.data_bucket, Prefix=f"captures/{MODEL}/").get("Contents", [])
    ]
    out = []
    for key in sorted(keys):
        body = gzip.decompress(s3.get_object(Bucket=stores.data_bucket, Key=key)["Body"].read())
        out += [json.loads(line) for line in body.decode().splitlines() if line]
    return out


def test_drift_derived_features_are_profiled_captured_as_served_and_checked_like_inputs(
    stores: Stores, capturing: None
) -> None:
    # Given a model trained through the real handlers with four derived features
    table = spend_table(1_200)
    dataset = seed_dataset(stores, "spend", table, "churned")
    status, stored = api_call("PUT", "/v1/specs/spend", spend_spec())
    assert status == 201, stored
    state = run_steps(start_state(specs_dal.get_spec(stores.metadata_table, "spend"), dataset))
    assert state["registered"]["status"] == "PENDING_APPROVAL", state["registered"]
    version = registry_dal.get_version(stores.registry_table, MODEL, 1)
    assert version is not None
    # Then its reference profile covers the raw fields and the derived features the pipeline took
    profile = ReferenceProfile.from_bytes(artifacts.get_artifact(version.artifacts["profile"], what="profile"))
    kinds = {f.name: f.type for f in profile.features}
    assert sorted(kinds) == sorted(RAW_NAMES + DERIVED_NAMES)
    assert all(kinds[n] == "float" for n in DERIVED_NAMES)
    reference = {f.name: f for f in profile.features}
    assert reference["per_visit"].count + reference["per_visit"].null_count == profile.row_count

    # When it serves raw rows whose amount is five times what it was trained on
    put_model(stores, MODEL, production=1)
    shifted = table.slice(0, 600)
    shifted = shifted.set_column(0, "amount", pa.compute.multiply(shifted.column("amount"), 5.0))
    instances = _instances(shifted)
    for start in range(0, len(instances), 100):
        status, reply = predict_call({"instances": instances[start : start + 100]})
        assert status == 200, reply

    # Then each capture holds the raw fields and the derived values the served graph computed,
    # equal to what the training path computes for the same rows (nulls in the same places)
    lines = captured_lines(stores)
    assert len(lines) == 600
    assert sorted(lines[0]["features"]) == sorted(RAW_NAMES + DERIVED_NAMES)
    training_path = tr.production_table(shifted.drop_columns(["churned"]), version)
    for name in DERIVED_NAMES:
        expected = [None if np.isnan(v) else float(v) for v in training_path.column(name).to_numpy()]
        assert [line["features"][name] for line in lines] == expected, name
    assert [line["features"]["amount"] for line in lines[:5]] == shifted.column("amount").to_pylist()[:5]

    # When the drift check runs over the window
    reply = drift_handler.lambda_handler(
        {"model": MODEL, "window_hours": 1, "retrain": False, "config": {"min_rows": 100}}, FakeContext()
    )
    # Then the derived features are checked like inputs: the ones amount feeds drift, the others do not
    report = json.loads(
        boto3.client("s3")
        .get_object(Bucket=stores.artifacts_bucket, Key=reply["report_json"].split("/", 3)[3])["Body"]
        .read()
    )
    checked = {f["name"]: f for f in report["features"]}
    assert set(DERIVED_NAMES) <= set(checked)
    assert all(checked[n]["kind"] == "numeric" and checked[n]["current_count"] > 0 for n in DERIVED_NAMES)
    assert {"per_visit", "log_amount", "amount_band", "amount"} <= set(reply["drifted_features"]), reply
    assert checked["signup_hour"]["verdict"] == "no_drift", checked["signup_hour"]
