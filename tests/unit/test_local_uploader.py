"""The local cloud's S3 notifications name the uploader (stepwise/local/uploader.py), as S3's do:
moto's carry no principal, and four-eyes needs the starter of an upload-started run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.s3 import notifications

from stepwise.local import uploader

FN_ARN = "arn:aws:lambda:us-east-1:123456789012:function:validate"


@pytest.fixture
def delivered(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """A bucket notifying a Lambda on raw/ uploads; the events moto would deliver, captured."""
    events: list[dict[str, Any]] = []
    monkeypatch.setattr(notifications, "_invoke_awslambda", lambda _a, body, _arn, _r: events.append(body))
    uploader.install()
    try:
        with mock_aws():
            s3 = boto3.client("s3", region_name="us-east-1")
            s3.create_bucket(Bucket="data")
            s3.put_bucket_notification_configuration(
                Bucket="data",
                NotificationConfiguration={
                    "LambdaFunctionConfigurations": [
                        {
                            "Id": "raw",
                            "LambdaFunctionArn": FN_ARN,
                            "Events": ["s3:ObjectCreated:*"],
                            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "raw/"}]}},
                        }
                    ]
                },
            )
            yield events
    finally:
        uploader.uninstall()


def _client_as(access_key: str) -> Any:
    return boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id=access_key, aws_secret_access_key="local-secret"
    )


def test_local_uploader_notification_names_the_uploading_principal(delivered: list[dict[str, Any]]) -> None:
    # When two local users upload
    _client_as("LOCALana").put_object(Bucket="data", Key="raw/churn/a.csv", Body=b"x\n1\n")
    _client_as("LOCALbob").put_object(Bucket="data", Key="raw/churn/b.csv", Body=b"x\n1\n")
    # Then each notification names its uploader as S3 does (AWS:<id>), the id the local API gives the caller
    principals = [e["Records"][0]["userIdentity"]["principalId"] for e in delivered]
    assert principals == ["AWS:ana", "AWS:bob"]


def test_local_uploader_uninstalled_leaves_moto_as_it_was(delivered: list[dict[str, Any]]) -> None:
    uploader.uninstall()
    _client_as("LOCALana").put_object(Bucket="data", Key="raw/churn/a.csv", Body=b"x\n1\n")
    assert "userIdentity" not in delivered[0]["Records"][0]
