from __future__ import annotations

import json

import boto3
import pytest

from functions.dal import datasets as datasets_dal
from functions.logic.lifecycle_trigger import start_lifecycle
from functions.models.approvals import ReleaseStrategy
from functions.models.settings import get_settings
from infra import constants as c
from tests.integration.conftest import Stores
from tests.integration.lifecycle_support import seed_dataset, seed_spec
from tests.integration.test_lifecycle_handlers import toy_spec
from tests.unit.lifecycle_data import classification_table


@pytest.fixture
def machine(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> str:
    arn = boto3.client("stepfunctions").create_state_machine(
        name="lifecycle",
        definition=json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 3600, "End": True}}}),
        roleArn="arn:aws:iam::123456789012:role/sfn",
    )["stateMachineArn"]
    monkeypatch.setenv(c.ENV_LIFECYCLE_SM_ARN, arn)
    get_settings.cache_clear()
    return str(arn)


def test_lifecycle_trigger_starts_the_workflow_once_per_dataset_version(stores: Stores, machine: str) -> None:
    # Given a validated dataset version and the spec its contract names
    dataset = seed_dataset(stores, "toy", classification_table(), "label")
    seed_spec(stores, toy_spec())
    # When the validation stage triggers the lifecycle twice (a duplicate S3 event)
    first = start_lifecycle(dataset, "toy", "uploader")
    second = start_lifecycle(dataset, "toy", "uploader")
    # Then one execution, named <model>-<dataset version>-<spec version>, with the run's input
    assert first.status == "started" and first.execution_arn.endswith(":toy-model-1-1")
    assert second.status == "started" and "already exists" in second.reason
    sfn = boto3.client("stepfunctions")
    executions = sfn.list_executions(stateMachineArn=machine)["executions"]
    assert [e["name"] for e in executions] == ["toy-model-1-1"]
    payload = json.loads(sfn.describe_execution(executionArn=first.execution_arn)["input"])
    assert payload == {
        "spec": "toy",
        "spec_version": 1,
        "dataset": "toy",
        "dataset_version": 1,
        "started_by": "uploader",
        "release": ReleaseStrategy().model_dump(mode="json"),  # the spec's strategy, at $.release
    }
    # and the dataset version records it
    recorded = datasets_dal.get_version(stores.metadata_table, "toy", 1)
    assert recorded.training_status == "started" and recorded.training_execution == first.execution_arn


def test_lifecycle_trigger_records_a_failure_for_an_unknown_spec(stores: Stores, machine: str) -> None:
    dataset = seed_dataset(stores, "toy", classification_table(), "label")
    result = start_lifecycle(dataset, "missing", "uploader")
    assert result.status == "failed" and "NotFound" in result.reason
    assert datasets_dal.get_version(stores.metadata_table, "toy", 1).training_status == "failed"


def test_lifecycle_trigger_would_start_without_a_deployed_workflow(stores: Stores) -> None:
    dataset = seed_dataset(stores, "toy", classification_table(), "label")
    assert start_lifecycle(dataset, "toy", "uploader").status == "would_start"
