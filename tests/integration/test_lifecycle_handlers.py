from __future__ import annotations

from typing import Any

import boto3
import pytest

from functions.dal import audit as audit_dal
from functions.dal import registry as registry_dal
from functions.dal import runs as runs_dal
from functions.handlers import register, run_record, train
from functions.models.errors import IntegrityError, NotFound
from functions.models.registry import VersionStatus
from functions.models.settings import get_settings
from tests.integration.conftest import Stores
from tests.integration.lifecycle_support import Context, run_steps, seed_dataset, seed_spec, start_state
from tests.unit.lifecycle_data import classification_table


def toy_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "toy",
        "model": "toy-model",
        "dataset": "toy",
        "target": "label",
        "features": ["a", "b", "c"],
        "task": "classification",
        "estimator": {"name": "RandomForestClassifier", "params": {"n_estimators": 10, "max_depth": 4}},
        "split": {"holdout_fraction": 0.25, "seed": 5},
        "gates": {"min_primary": 0.5, "max_regression": 0.05},
        "latency_calls": 50,
    }
    return spec | overrides


def test_lifecycle_steps_register_a_pending_version_with_full_lineage(stores: Stores) -> None:
    # Given a validated dataset version and a spec
    dataset = seed_dataset(stores, "toy", classification_table(), "label")
    spec = seed_spec(stores, toy_spec())
    # When train, evaluate and register run
    state = run_steps(start_state(spec, dataset))
    # Then version 1 waits for approval, and its lineage leads back to the exact object
    assert state["registered"] == {"model": "toy-model", "version": 1, "status": "PENDING_APPROVAL", "reasons": []}
    version = registry_dal.get_version(stores.registry_table, "toy-model", 1)
    assert version is not None
    assert (version.data_key, version.data_version_id, version.data_sha256) == (
        dataset.key,
        dataset.version_id,
        dataset.sha256,
    )
    assert version.contract_version == dataset.contract_version and version.dataset_version == 1
    assert version.spec_name == "toy" and version.spec_version == 1 and version.started_by == "alice"
    assert set(version.artifacts) == {"skops", "onnx", "profile"}
    assert version.class_labels == ["no", "yes"] and version.primary_metric == "accuracy"
    assert {g.gate for g in version.gates} == {"onnx_parity", "primary_metric", "max_regression"}
    assert version.code_version == get_settings().code_version and version.parameters["random_state"] == 5
    # the artifacts are where the registry says, with the recorded sha256
    onnx = version.artifacts["onnx"]
    bucket, key = onnx.uri[5:].split("/", 1)
    body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    import hashlib

    assert hashlib.sha256(body).hexdigest() == onnx.sha256 and len(body) == onnx.size_bytes
    # the model record counts it; the audit trail has the registration
    model = registry_dal.get_model(stores.registry_table, "toy-model")
    assert model is not None and model.latest_version == 1 and model.production_version is None
    events = audit_dal.list_events(stores.metadata_table, target="model/toy-model")
    assert [(e.action, e.version) for e in events] == [
        ("run.start", None),
        ("version.register", 1),
        ("run.finish", None),
    ]
    assert {e.who for e in events if e.action.startswith("run.")} == {f"workflow:{state['run']['run_id']}"}
    # the run record shows every step with its outcome
    run = runs_dal.get_run(stores.metadata_table, "toy-model", state["run"]["run_id"])
    assert [(s.name, s.outcome) for s in run.steps] == [
        ("start", "succeeded"),
        ("train", "succeeded"),
        ("evaluate", "succeeded"),
        ("register", "succeeded"),
    ]
    assert all(s.ended_at is not None for s in run.steps)


def test_lifecycle_retraining_gives_identical_metrics(stores: Stores) -> None:
    # Given one dataset version and the same spec stored twice (two spec versions)
    dataset = seed_dataset(stores, "toy", classification_table(), "label")
    first = seed_spec(stores, toy_spec())
    second = seed_spec(stores, toy_spec())
    # When both train on it
    a = run_steps(start_state(first, dataset))
    b = run_steps(start_state(second, dataset))
    # Then two versions exist with identical metrics
    assert (a["registered"]["version"], b["registered"]["version"]) == (1, 2)
    assert a["evaluation"]["metrics"] == b["evaluation"]["metrics"]
    assert a["train"]["artifacts"]["onnx"]["sha256"] == b["train"]["artifacts"]["onnx"]["sha256"]


def test_lifecycle_failed_gate_registers_a_rejected_version_naming_the_gate(stores: Stores) -> None:
    dataset = seed_dataset(stores, "toy", classification_table(), "label")
    spec = seed_spec(stores, toy_spec(gates={"min_primary": 0.999}))
    state = run_steps(start_state(spec, dataset))
    assert state["registered"]["status"] == "REJECTED"
    assert state["registered"]["reasons"][0].startswith("gate primary_metric failed")
    version = registry_dal.get_version(stores.registry_table, "toy-model", 1)
    assert version is not None and version.status == VersionStatus.REJECTED
    # the run is finished as REJECTED with the typed error name
    finished = run_record.lambda_handler({"action": "finish", "state": state}, Context())
    assert finished["status"] == "REJECTED" and finished["error"] == "GateFailed"


def test_register_retried_returns_the_same_version(stores: Stores) -> None:
    # Given a run that registered version 1
    dataset = seed_dataset(stores, "toy", classification_table(), "label")
    spec = seed_spec(stores, toy_spec())
    state = run_steps(start_state(spec, dataset))
    # When Register runs again for the same run (a Step Functions retry after a timeout)
    again = register.lambda_handler(state, Context())
    # Then no second version is written
    assert again["version"] == 1
    assert len(registry_dal.list_versions(stores.registry_table, "toy-model")) == 1


def test_register_interleaved_registrations_get_distinct_numbers(stores: Stores) -> None:
    # Given two runs evaluated on the same data
    dataset = seed_dataset(stores, "toy", classification_table(), "label")
    spec_a = seed_spec(stores, toy_spec())
    spec_b = seed_spec(stores, toy_spec())
    a = run_steps(start_state(spec_a, dataset), until="evaluate")
    b = run_steps(start_state(spec_b, dataset), until="evaluate")
    # When A reads the counter, B registers, then A writes (interleaved steps, not threads)
    from functions.logic import registration
    from functions.models.errors import Conflict
    from functions.models.runs import LifecycleState

    settings = get_settings()
    state_a, state_b = LifecycleState.model_validate(a), LifecycleState.model_validate(b)
    stale = registration.plan(settings, state_a)
    assert stale.version.version == 1
    registration.register_candidate(settings, state_b)
    # Then A's stale write is refused whole, and A's registration (re-reading) gets number 2
    with pytest.raises(Conflict):
        registration.commit(settings, stale)
    assert [v.version for v in registry_dal.list_versions(stores.registry_table, "toy-model")] == [1]
    assert registration.register_candidate(settings, state_a).version == 2
    versions = registry_dal.list_versions(stores.registry_table, "toy-model")
    assert [(v.version, v.run_id) for v in versions] == [(1, state_b.run.run_id), (2, state_a.run.run_id)]  # type: ignore[union-attr]
    model = registry_dal.get_model(stores.registry_table, "toy-model")
    assert model is not None and model.latest_version == 2
    registered = audit_dal.list_events(stores.metadata_table, target="model/toy-model")
    assert len([e for e in registered if e.action == "version.register"]) == 2


def test_train_failure_is_recorded_on_the_run_with_step_and_error(stores: Stores) -> None:
    # Given a spec whose feature the dataset lacks
    dataset = seed_dataset(stores, "toy", classification_table(), "label")
    spec = seed_spec(stores, toy_spec(features=["a", "nope"]))
    state = start_state(spec, dataset)
    state["run"] = run_record.lambda_handler(
        {"action": "start", "state": state, "execution_name": "toy-model-1-1"}, Context()
    )
    # When train fails
    with pytest.raises(Exception) as failure:
        train.lambda_handler(state, Context())
    assert type(failure.value).__name__ == "TrainingFailed"
    # and the Catch records it
    state["error"] = {"Error": "TrainingFailed", "Cause": str(failure.value)}
    record = run_record.lambda_handler({"action": "fail", "step": "train", "state": state}, Context())
    # Then the run is FAILED naming the step and the error; nothing is in the registry
    assert record["status"] == "FAILED" and record["error"] == "TrainingFailed"
    assert [(s["name"], s["outcome"], s["error"]) for s in record["steps"]][-1] == ("train", "failed", "TrainingFailed")
    assert registry_dal.get_model(stores.registry_table, "toy-model") is None
    assert registry_dal.list_versions(stores.registry_table, "toy-model") == []


def test_evaluate_refuses_a_production_artifact_whose_bytes_do_not_match(stores: Stores) -> None:
    # Given version 1 in production, whose skops object was then overwritten
    dataset = seed_dataset(stores, "toy", classification_table(), "label")
    spec = seed_spec(stores, toy_spec())
    first = run_steps(start_state(spec, dataset))
    client = boto3.client("dynamodb")
    client.update_item(
        TableName=stores.registry_table,
        Key={"pk": {"S": "MODEL#toy-model"}, "sk": {"S": "MODEL"}},
        UpdateExpression="SET production_version = :v",
        ExpressionAttributeValues={":v": {"N": "1"}},
    )
    skops = first["train"]["artifacts"]["skops"]
    bucket, key = skops["uri"][5:].split("/", 1)
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=b"tampered")
    # When a new run evaluates against production
    spec2 = seed_spec(stores, toy_spec())
    # Then evaluation refuses to load it, saying why
    with pytest.raises(IntegrityError, match="refusing to load production toy-model v1 skops") as refused:
        run_steps(start_state(spec2, dataset), until="evaluate")
    assert "sha256" in str(refused.value)


def test_evaluate_compares_with_production_on_the_same_holdout(stores: Stores) -> None:
    dataset = seed_dataset(stores, "toy", classification_table(), "label")
    spec = seed_spec(stores, toy_spec())
    first = run_steps(start_state(spec, dataset))
    boto3.client("dynamodb").update_item(
        TableName=stores.registry_table,
        Key={"pk": {"S": "MODEL#toy-model"}, "sk": {"S": "MODEL"}},
        UpdateExpression="SET production_version = :v",
        ExpressionAttributeValues={":v": {"N": "1"}},
    )
    second = run_steps(start_state(seed_spec(stores, toy_spec()), dataset), until="evaluate")
    assert second["evaluation"]["production_version"] == 1
    assert second["evaluation"]["production_metrics"] == first["evaluation"]["metrics"]


def test_artifacts_refuse_bytes_that_do_not_match_the_recorded_sha256(stores: Stores) -> None:
    # Given an artifact stored with its sha256, then overwritten under the same key
    from functions.dal import artifacts

    stored = artifacts.put_artifact(stores.artifacts_bucket, "models/m/runs/r/model.onnx", b"model bytes")
    assert artifacts.get_artifact(stored) == b"model bytes"
    boto3.client("s3").put_object(Bucket=stores.artifacts_bucket, Key="models/m/runs/r/model.onnx", Body=b"evil")
    # When it is loaded; Then it is refused, naming both hashes
    with pytest.raises(IntegrityError) as refused:
        artifacts.get_artifact(stored, "candidate ONNX artifact")
    message = str(refused.value)
    assert message.startswith("refusing to load candidate ONNX artifact s3://stepwise-artifacts/models/m/runs/r/")
    assert stored.sha256 in message and "registry records" in message


def test_train_fails_when_the_dataset_object_version_is_gone(stores: Stores) -> None:
    dataset = seed_dataset(stores, "toy", classification_table(), "label")
    spec = seed_spec(stores, toy_spec())
    boto3.client("s3").delete_object(Bucket=dataset.bucket, Key=dataset.key, VersionId=dataset.version_id)
    with pytest.raises(NotFound, match="does not exist"):
        run_steps(start_state(spec, dataset), until="train")


def test_spec_put_is_in_the_audit_trail_with_who_stored_it(stores: Stores) -> None:
    # When two versions of a spec are stored
    first = seed_spec(stores, toy_spec())
    second = seed_spec(stores, toy_spec())
    # Then each is an audit event naming the version and who stored it
    events = audit_dal.list_events(stores.metadata_table, target=f"spec/{first.name}")
    assert [(e.action, e.version, e.who) for e in events] == [
        ("spec.put", first.version, "tester"),
        ("spec.put", second.version, "tester"),
    ]
