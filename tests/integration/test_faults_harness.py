"""The fault-injection harness (tests/faults.py) itself: the chosen call fails as AWS would fail
it, every other call reaches moto, and a recording names the calls a run makes."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from functions.dal.clients import client
from tests import faults
from tests.integration.conftest import Stores

ITEM = {"pk": {"S": "a"}, "sk": {"S": "b"}}


def test_faults_inject_fails_the_chosen_call_once_with_the_aws_error(stores: Stores) -> None:
    # Given a throttling fault on DynamoDB PutItem
    with faults.inject("dynamodb.PutItem", faults.THROTTLING) as rule:
        # When PutItem is called twice
        with pytest.raises(ClientError) as first:
            client("dynamodb").put_item(TableName=stores.metadata_table, Item=ITEM)
        client("dynamodb").put_item(TableName=stores.metadata_table, Item=ITEM)
    # Then the first fails with AWS's code and the second reaches moto
    assert first.value.response["Error"]["Code"] == "ThrottlingException"
    assert rule.fired == ["dynamodb.PutItem"]
    assert client("dynamodb").get_item(TableName=stores.metadata_table, Key=ITEM)["Item"] == ITEM


def test_faults_s3_errors_timeouts_and_crashes(stores: Stores) -> None:
    with faults.inject("s3.GetObject", faults.NO_SUCH_KEY), pytest.raises(client("s3").exceptions.NoSuchKey):
        client("s3").get_object(Bucket=stores.data_bucket, Key="x")
    with faults.inject("s3.PutObject", faults.TIMEOUT), pytest.raises(ReadTimeoutError):
        client("s3").put_object(Bucket=stores.data_bucket, Key="x", Body=b"1")
    with faults.inject("s3.PutObject", faults.THROTTLING), pytest.raises(ClientError) as slow:
        client("s3").put_object(Bucket=stores.data_bucket, Key="x", Body=b"1")
    assert slow.value.response["Error"]["Code"] == "SlowDown"
    # a crash is not an Exception: no `except Exception` in our code can swallow it
    assert not issubclass(faults.Crash, Exception)


def test_faults_inject_at_counts_the_calls_of_a_run_and_recording_names_them(stores: Stores) -> None:
    with faults.recording() as calls, faults.inject_at(1, faults.CRASH):
        client("s3").put_object(Bucket=stores.data_bucket, Key="x", Body=b"1")
        with pytest.raises(faults.Crash):
            client("s3").get_object(Bucket=stores.data_bucket, Key="x")
    assert calls == ["s3.PutObject", "s3.GetObject"]


def test_faults_where_narrows_to_one_table_and_reaches_clients_made_elsewhere(stores: Stores) -> None:
    on_registry = {"where": lambda r: r["body"].get("TableName") == stores.registry_table}
    with faults.inject("dynamodb.*", faults.ACCESS_DENIED, **on_registry):
        client("dynamodb").get_item(TableName=stores.metadata_table, Key=ITEM)
        with pytest.raises(ClientError):
            client("dynamodb").get_item(TableName=stores.registry_table, Key=ITEM)
    with faults.inject("s3.HeadBucket", faults.ACCESS_DENIED), pytest.raises(ClientError):
        boto3.client("s3").head_bucket(Bucket=stores.data_bucket)


def test_faults_reply_lost_takes_effect_but_the_caller_sees_a_timeout(stores: Stores) -> None:
    # Given a PutItem whose reply is lost
    with faults.inject("dynamodb.PutItem", faults.REPLY_LOST), pytest.raises(ReadTimeoutError):
        client("dynamodb").put_item(TableName=stores.metadata_table, Item=ITEM)
    # Then the item was written all the same
    assert client("dynamodb").get_item(TableName=stores.metadata_table, Key=ITEM)["Item"] == ITEM
