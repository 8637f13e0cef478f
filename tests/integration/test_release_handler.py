"""The release task handler on moto: canary check from CloudWatch metrics, expiry, SNS notice."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from functions.dal import audit
from functions.handlers import approval, release
from functions.logic import approvals, releases
from functions.models.approvals import ApprovalExpired, ApprovalTaskEvent, CanaryCheckFailed
from functions.models.audit import Actor, model_target
from functions.models.registry import VersionStatus as S
from functions.models.settings import get_settings
from functions.observability import NAMESPACE, SERVICE
from tests.integration.approval_support import Context
from tests.integration.conftest import Stores
from tests.integration.release_support import register

OPS = Actor(identity="ops")


def in_canary(stores: Stores) -> None:
    """Version 1 in production, version 2 in canary at 10%."""
    s = get_settings()
    for _ in range(2):
        v = register(stores, "churn")
        releases.approve(s, "churn", v.version, OPS, "ok")
    releases.promote(s, "churn", 1, OPS)
    releases.start_canary(s, "churn", 2, 0.1, OPS, "try")


def put_serving_metrics(version: int, *, ok: int, errors: int, latency_ms: float) -> None:
    dims = [
        {"Name": "service", "Value": SERVICE},
        {"Name": "model", "Value": "churn"},
        {"Name": "version", "Value": str(version)},
    ]
    data: list[dict[str, Any]] = [
        {"MetricName": "Latency", "Dimensions": dims, "Value": latency_ms, "Unit": "Milliseconds"} for _ in range(ok)
    ]
    if errors:
        data.append({"MetricName": "ServerErrors", "Dimensions": dims, "Value": errors, "Unit": "Count"})
    cw = boto3.client("cloudwatch")
    for i in range(0, len(data), 20):
        cw.put_metric_data(Namespace=NAMESPACE, MetricData=data[i : i + 20])


def task(action: str, version: int = 2, **extra: Any) -> dict[str, Any]:
    # moto's GetMetricData computes no percentiles: judge the Maximum latency here
    strategy = {"kind": "canary", "weight": 0.1, "bake_seconds": 60, "check": {"latency_stat": "Maximum"}}
    return {"action": action, "model": "churn", "version": version, "execution": "exec-1", "strategy": strategy} | extra


def test_release_check_canary_rolls_back_a_failing_candidate(stores: Stores) -> None:
    # Given a canary whose serving metrics show 10% errors
    in_canary(stores)
    put_serving_metrics(2, ok=45, errors=5, latency_ms=12.0)
    # When the workflow's check runs
    with pytest.raises(CanaryCheckFailed, match="error rate"):
        release.lambda_handler(task("check_canary"), Context())
    # Then the previous production serves alone, the candidate is ROLLED_BACK with the reason
    state = releases.read_state(get_settings(), "churn")
    assert (state.record.production_version, state.record.candidate_version) == (1, None)
    assert state.versions[2].status == S.ROLLED_BACK
    assert "error rate 10.00%" in state.versions[2].reasons[-1]
    trail = [
        (e.action, e.version, e.who) for e in audit.list_events(stores.metadata_table, target=model_target("churn"))
    ]
    assert ("version.canary", 2, "ops") in trail and ("version.rollback", 2, "workflow:exec-1") in trail


def test_release_check_canary_passes_a_healthy_candidate(stores: Stores) -> None:
    in_canary(stores)
    put_serving_metrics(2, ok=50, errors=0, latency_ms=12.0)
    result = release.lambda_handler(task("check_canary"), Context())
    assert result["verdict"] == "pass" and result["candidate_version"] == 2


def emf_lines(out: str, name: str) -> list[dict[str, Any]]:
    """The EMF records (what Lambda's stdout turns into CloudWatch metrics) that carry `name`."""
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"_aws"' in line]
    return [line for line in lines if name in line]


def test_release_check_canary_without_data_passes_only_when_the_spec_says_so(
    stores: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given no metrics at all (no request reached the candidate)
    in_canary(stores)
    # When the check's on_no_data is explicitly "pass", Then it passes, saying so
    lenient = {"kind": "canary", "bake_seconds": 60, "check": {"on_no_data": "pass", "latency_stat": "Maximum"}}
    assert release.lambda_handler(task("check_canary", strategy=lenient), Context())["verdict"] == "no_data"
    assert releases.read_state(get_settings(), "churn").versions[2].status == S.CANARY
    capsys.readouterr()
    # When the check says nothing about it (the default), Then the canary is rolled back
    with pytest.raises(CanaryCheckFailed, match="0 requests"):
        release.lambda_handler(task("check_canary"), Context())
    assert releases.read_state(get_settings(), "churn").versions[2].status == S.ROLLED_BACK
    # and the rollback counts the metric the canary alarm watches (service dimension only)
    (rollback,) = emf_lines(capsys.readouterr().out, "CanaryRollbacks")
    assert rollback["CanaryRollbacks"] == [1.0] or rollback["CanaryRollbacks"] == 1.0
    assert rollback["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]


def test_release_rollback_canary_records_the_caught_error(stores: Stores) -> None:
    in_canary(stores)
    error = {"Error": "States.Timeout", "Cause": "check took too long"}
    result = release.lambda_handler(task("rollback_canary", error=error), Context())
    assert (result["production_version"], result["candidate_version"]) == (1, None)
    assert "States.Timeout: check took too long" in releases.read_state(get_settings(), "churn").versions[2].reasons[-1]


def test_release_expire_rejects_the_version_and_raises_typed(stores: Stores) -> None:
    # Given a pending approval request
    register(stores, "churn")
    approvals.request_approval(get_settings(), ApprovalTaskEvent(token="t", model="churn", version=1))
    # When the workflow's timeout path runs (twice: retries are harmless)
    for _ in range(2):
        with pytest.raises(ApprovalExpired):
            release.lambda_handler(task("expire", version=1), Context())
    # Then the request is EXPIRED and the version REJECTED (expired), audited once
    assert approvals.get_request(get_settings(), "churn-1").status == "EXPIRED"
    version = releases.read_state(get_settings(), "churn").versions[1]
    assert version.status == S.REJECTED and version.reasons[0].startswith("REJECTED: approval expired")
    actions = [e.action for e in audit.list_events(stores.metadata_table, target=model_target("churn"))]
    assert actions.count("approval.expire") == 1 and actions.count("version.reject") == 1


def test_approval_request_is_published_to_the_topic(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an approvals topic with a queue subscribed
    topic = boto3.client("sns").create_topic(Name="approvals")["TopicArn"]
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    monkeypatch.setenv("STEPWISE_APPROVALS_TOPIC_ARN", topic)
    get_settings.cache_clear()
    register(stores, "churn", metrics={"auc": 0.9})
    # When the approval task runs
    reply = approval.lambda_handler(
        {"token": "secret-token", "model": "churn", "version": 1, "execution": "e"}, Context()
    )
    # Then approvers get the request (what, metrics, how to decide) and never the token
    (message,) = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    notice = json.loads(json.loads(message["Body"])["Message"])
    assert (notice["model"], notice["version"], notice["metrics"]) == ("churn", 1, {"auc": 0.9})
    assert notice["approve"].startswith("stepwise approve churn 1")
    assert "secret-token" not in message["Body"] and "secret-token" not in json.dumps(reply)


def test_approval_request_notice_is_text_for_people_and_json_for_machines(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an approvals topic with a queue subscribed, and the console's URL in its SSM parameter
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sns.models import sns_backends

    topic = boto3.client("sns").create_topic(Name="approvals")["TopicArn"]
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    boto3.client("ssm").put_parameter(
        Name="/stepwise/dev/console/url", Value="https://d1.cloudfront.net", Type="String"
    )
    monkeypatch.setenv("STEPWISE_APPROVALS_TOPIC_ARN", topic)
    monkeypatch.setenv("STEPWISE_CONSOLE_URL_PARAMETER", "/stepwise/dev/console/url")
    get_settings.cache_clear()
    register(stores, "churn", metrics={"auc": 0.9})
    execution = "arn:aws:states:us-east-1:123456789012:execution:Lifecycle:run-1"
    # When the approval task runs
    approval.lambda_handler(
        {"token": "secret-token", "model": "churn", "version": 1, "execution": execution}, Context()
    )
    # Then people (e-mail, the default) read text with the approval page and the execution's page
    region = boto3.session.Session().region_name
    (published,) = sns_backends[DEFAULT_ACCOUNT_ID][region].topics[topic].sent_notifications
    structure = json.loads(published[1])
    assert structure["email"] == structure["default"]
    assert "https://d1.cloudfront.net/#/approvals/churn-1" in structure["default"]
    assert "https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1#" in structure["default"]
    # And machines (the SQS subscriber) get the JSON with both links, never the token
    (message,) = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    notice = json.loads(json.loads(message["Body"])["Message"])
    assert notice["console_url"] == "https://d1.cloudfront.net/#/approvals/churn-1"
    assert notice["execution_url"].endswith(execution) and "secret-token" not in message["Body"]


def test_approval_request_notice_without_the_console_parameter_still_goes_out(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the console's parameter is named but missing (the console stack is not deployed yet)
    topic = boto3.client("sns").create_topic(Name="approvals")["TopicArn"]
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    monkeypatch.setenv("STEPWISE_APPROVALS_TOPIC_ARN", topic)
    monkeypatch.setenv("STEPWISE_CONSOLE_URL_PARAMETER", "/stepwise/dev/console/url")
    get_settings.cache_clear()
    register(stores, "churn")
    # When the approval task runs
    reply = approval.lambda_handler({"token": "t", "model": "churn", "version": 1, "execution": "e"}, Context())
    # Then the request is stored and published, without a console link
    (message,) = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    notice = json.loads(json.loads(message["Body"])["Message"])
    assert reply["id"] == notice["id"] == "churn-1" and notice["console_url"] == "" and notice["execution_url"] == ""


def test_approval_request_for_a_decided_version_is_refused(stores: Stores) -> None:
    register(stores, "churn")
    releases.approve(get_settings(), "churn", 1, OPS, "ok")
    from functions.models.errors import Conflict

    with pytest.raises(Conflict, match="not PENDING_APPROVAL"):
        approvals.request_approval(get_settings(), ApprovalTaskEvent(token="t", model="churn", version=1))


def test_approval_task_input_errors_never_echo_the_token(stores: Stores) -> None:
    from functions.models.errors import InvalidInput

    with pytest.raises(InvalidInput) as raised:
        approval.lambda_handler({"token": "secret-token", "model": "Not A Name", "version": 0}, Context())
    assert "secret-token" not in str(raised.value)
