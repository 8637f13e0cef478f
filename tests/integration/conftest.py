"""Handlers on moto: the stores with the template's key schema and the functions' settings.

Whole-system tests deploy the real template instead (tests/e2e); these exercise one handler
at a time against the same kinds of resources.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from functions.models.settings import get_settings
from infra import constants as c

ARCHIVE = "stepwise-audit-archive"  # the audit export's Object Lock bucket (the `archive` fixture)
MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}


@dataclass
class Stores:
    data_bucket: str = "stepwise-data"
    artifacts_bucket: str = "stepwise-artifacts"
    registry_table: str = "stepwise-registry"
    metadata_table: str = "stepwise-metadata"


def create_table(name: str) -> None:
    boto3.client("dynamodb").create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in (c.PK, c.SK, c.GSI1_PK, c.GSI1_SK)],
        KeySchema=[{"AttributeName": c.PK, "KeyType": "HASH"}, {"AttributeName": c.SK, "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": c.GSI1,
                "KeySchema": [
                    {"AttributeName": c.GSI1_PK, "KeyType": "HASH"},
                    {"AttributeName": c.GSI1_SK, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )


def provision(s: Stores, setenv: Callable[[str, str], None]) -> None:
    """Inside a moto mock: the versioned buckets, the tables, and the env vars the functions read."""
    s3 = boto3.client("s3")
    for bucket in (s.data_bucket, s.artifacts_bucket):
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    create_table(s.registry_table)
    create_table(s.metadata_table)
    for env, value in (
        (c.ENV_DATA_BUCKET, s.data_bucket),
        (c.ENV_ARTIFACTS_BUCKET, s.artifacts_bucket),
        (c.ENV_REGISTRY_TABLE, s.registry_table),
        (c.ENV_METADATA_TABLE, s.metadata_table),
        (c.ENV_VERSION, "test"),
    ):
        setenv(env, value)
    get_settings.cache_clear()


def object_bytes(bucket: str, key: str, version_id: str = "") -> bytes | None:
    """An object's bytes (a given version), or None when S3 has none."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, **({"VersionId": version_id} if version_id else {})}
    try:
        return bytes(boto3.client("s3").get_object(**kwargs)["Body"].read())
    except ClientError:
        return None


@pytest.fixture
def stores(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stores]:
    """Buckets (versioned) and tables in moto, and the env vars the functions read."""
    s = Stores()
    with mock_aws(config=MOTO_CONFIG):  # type: ignore[arg-type]
        provision(s, monkeypatch.setenv)
        yield s
        get_settings.cache_clear()


@pytest.fixture
def archive(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> str:
    """The audit archive bucket (Object Lock, governance mode) and the env var naming it."""
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=ARCHIVE, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(
        Bucket=ARCHIVE,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 30}},
        },
    )
    monkeypatch.setenv(c.ENV_AUDIT_ARCHIVE_BUCKET, ARCHIVE)
    get_settings.cache_clear()
    return ARCHIVE


@pytest.fixture
def wine(stores: Stores) -> Stores:
    """The stores with the wine contract (tests/integration/test_validate_handler.py CONTRACT)."""
    from functions.dal import datasets
    from functions.models.contracts import DataContract
    from tests.integration.test_validate_handler import CONTRACT, NOW, OPERATOR

    datasets.put_contract(stores.metadata_table, "wine", DataContract.model_validate(CONTRACT), OPERATOR, NOW)
    return stores


@pytest.fixture
def served(stores: Stores) -> Iterator[Any]:
    """breast-cancer v1 (random forest) in production, a fresh execution environment."""
    from functions.handlers import predict
    from tests.integration.test_predict_support import serve_breast_cancer

    yield serve_breast_cancer(stores)
    predict.reset(None)


@pytest.fixture
def deliveries(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """The reproduce function in moto; its asynchronous events are queued here (as Lambda's queue
    holds them) until the test delivers them to the real handler
    (tests/integration/test_governance_reproduce.py `deliver`)."""
    from tests.integration.approval_support import lambdas_in_process
    from tests.integration.test_governance_reproduce import FUNCTION

    monkeypatch.setenv("STEPWISE_REPRODUCE_FUNCTION", FUNCTION)
    get_settings.cache_clear()
    queued: list[dict[str, Any]] = []
    with lambdas_in_process(monkeypatch, {FUNCTION: lambda event, context: queued.append(event)}):
        yield queued


@pytest.fixture
def parked_workflow(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> str:
    """A deployed lifecycle stand-in whose executions only wait: an accepted import starts one."""
    arn = boto3.client("stepfunctions").create_state_machine(
        name="lifecycle",
        definition=json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 3600, "End": True}}}),
        roleArn="arn:aws:iam::123456789012:role/sfn",
    )["stateMachineArn"]
    monkeypatch.setenv(c.ENV_LIFECYCLE_SM_ARN, arn)
    get_settings.cache_clear()
    return str(arn)
