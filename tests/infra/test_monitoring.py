"""Monitoring in the synthesized template: drift function, schedule, grants, route, alarms, dashboard."""

from __future__ import annotations

import json
from typing import Any

from infra import constants as c
from infra.constructs.monitoring import DRIFT_HANDLER


def _of_type(resources: dict[str, dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in resources.items() if v["Type"] == kind}


def _drift(resources: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    found = [
        (k, v)
        for k, v in _of_type(resources, "AWS::Lambda::Function").items()
        if v["Properties"].get("Handler") == DRIFT_HANDLER
    ]
    assert len(found) == 1
    return found[0]


def test_monitoring_drift_function_uses_the_data_layer(resources: dict[str, Any]) -> None:
    logical_id, fn = _drift(resources)
    assert logical_id.startswith(c.DRIFT_FUNCTION_ID)
    props = fn["Properties"]
    (layer,) = props["Layers"]
    assert layer["Ref"].startswith(c.DATA_LAYER_ID)
    assert props["Timeout"] == 900 and props["MemorySize"] >= 1769
    assert len([k for k in _of_type(resources, "AWS::Lambda::LayerVersion") if k.startswith(c.DATA_LAYER_ID)]) == 1


def _fleet(resources: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    found = [
        (k, v)
        for k, v in _of_type(resources, "AWS::StepFunctions::StateMachine").items()
        if k.startswith(f"{c.MONITORING_ID}Fleet")
    ]
    assert len(found) == 1
    return found[0]


def _definition(machine: dict[str, Any]) -> dict[str, Any]:
    """The definition with its tokens replaced by placeholders (only its shape is asserted)."""
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    return json.loads("".join(p if isinstance(p, str) else "TOKEN" for p in parts))  # type: ignore[no-any-return]


def test_monitoring_schedule_is_hourly_and_starts_a_fleet_round(resources: dict[str, Any]) -> None:
    fleet_id, _ = _fleet(resources)
    rules = [
        r
        for r in _of_type(resources, "AWS::Events::Rule").values()
        if any(t["Arn"] == {"Ref": fleet_id} for t in r["Properties"]["Targets"])
    ]
    assert len(rules) == 1
    rule = rules[0]["Properties"]
    assert rule["ScheduleExpression"] == "rate(1 hour)"
    (target,) = rule["Targets"]
    # the scheduled time goes in the round's input: it names the round and its checks
    transformer = target["InputTransformer"]
    assert transformer["InputPathsMap"] == {"time": "$.time"}
    assert json.loads(transformer["InputTemplate"].replace("<time>", '"2026-01-01T00:00:00Z"')) == {
        "window_hours": 1,
        "time": "2026-01-01T00:00:00Z",
    }
    assert "DeadLetterConfig" in target and target["RetryPolicy"]["MaximumRetryAttempts"] == 2
    # no schedule invokes the drift function itself (one sequential sweep) any more
    logical_id, _ = _drift(resources)
    assert not [
        r
        for r in _of_type(resources, "AWS::Events::Rule").values()
        if any(t["Arn"] == {"Fn::GetAtt": [logical_id, "Arn"]} for t in r["Properties"]["Targets"])
    ]


def test_monitoring_fleet_checks_each_model_in_a_limited_map_with_retries_and_dead_letters(
    resources: dict[str, Any],
) -> None:
    _, machine = _fleet(resources)
    states = _definition(machine)["States"]
    fan_out = states["CheckModels"]
    assert fan_out["Type"] == "Map" and fan_out["MaxConcurrency"] == 10
    assert fan_out["ItemsPath"] == "$.page.checks"
    inner = fan_out["ItemProcessor"]["States"]
    check = inner["Check"]
    assert check["Resource"] == "TOKEN"  # the drift function, invoked directly with the model's request
    (retry,) = check["Retry"]
    assert "StoreUnavailable" in retry["ErrorEquals"] and retry["MaxAttempts"] == 2
    assert check["Catch"][0]["ErrorEquals"] == ["States.ALL"] and check["Catch"][0]["Next"] == "DeadLetter"
    assert inner["DeadLetter"]["Resource"] == "arn:TOKEN:states:::sqs:sendMessage"
    assert inner["DeadLetter"]["Next"] == "Failed" and inner["Failed"]["Parameters"]["status"] == "failed"
    assert states["LastPage"]["Type"] == "Choice" and states["NextPage"]["Next"] == "ListPage"
    assert "LoggingConfiguration" in machine["Properties"]
    assert machine["Properties"]["TracingConfiguration"] == {"Enabled": True}


def test_monitoring_grants_are_scoped_to_prefixes(resources: dict[str, Any]) -> None:
    _, fn = _drift(resources)
    role_id = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = [
        s
        for res in _of_type(resources, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in res["Properties"]["Roles"]
        for s in res["Properties"]["PolicyDocument"]["Statement"]
    ]
    text = json.dumps(statements)
    for prefix in ("/captures/*", "/feedback/*", "/monitoring/*", "/models/*", "/reports/drift/*"):
        assert prefix in text
    # governance adds Denies; DeleteItem/UpdateItem only on Powertools' idempotency items (LeadingKeys)
    allowed = [s for s in statements if s.get("Effect", "Allow") == "Allow" and "Condition" not in s]
    actions = {a for s in allowed for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert "s3:DeleteObject" not in actions and "dynamodb:DeleteItem" not in actions
    assert "states:StartExecution" in actions
    assert all("*" not in a for a in actions)
    listing = next(s for s in statements if s["Action"] == "s3:ListBucket")
    assert listing["Condition"]["StringLike"]["s3:prefix"] == ["captures/*", "monitoring/*", "feedback/*"]


def test_monitoring_alarms_notify_the_topic(resources: dict[str, Any]) -> None:
    alarms = _of_type(resources, "AWS::CloudWatch::Alarm")
    names = {v["Properties"].get("MetricName") for v in alarms.values()}
    assert {"DriftedModels", "PerformanceDrops", "CanaryRollbacks", "Errors", "Duration"} <= names
    ours = [a for k, a in alarms.items() if k.startswith(c.MONITORING_ID)]
    machines = _of_type(resources, "AWS::StepFunctions::StateMachine")
    assert len(ours) == 9 + 3 * len(machines)  # and each state machine's failed, timed out, throttled
    rounds = next(a for k, a in alarms.items() if k.startswith(f"{c.MONITORING_ID}DriftRoundsFailedAlarm"))
    assert {m["Id"] for m in rounds["Properties"]["Metrics"]} >= {"failed", "timedout"}
    canary = next(a for a in ours if a["Properties"].get("MetricName") == "CanaryRollbacks")
    assert (canary["Properties"]["Namespace"], canary["Properties"]["Dimensions"]) == (
        "Stepwise",
        [{"Name": "service", "Value": "stepwise"}],
    )
    assert canary["Properties"]["Threshold"] == 1
    for alarm in ours:
        (action,) = alarm["Properties"]["AlarmActions"]
        assert action["Ref"].startswith(f"{c.MONITORING_ID}AlarmTopic")
    p99 = next(a for a in ours if a["Properties"].get("ExtendedStatistic") == "p99")
    assert p99["Properties"]["MetricName"] == "Duration"


def test_monitoring_dashboard_and_route(resources: dict[str, Any], assembly: Any) -> None:
    (dashboard,) = _of_type(resources, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    assert "DriftShare" in body and "FeatureDriftScore" in body
    paths = {v["Properties"]["PathPart"] for v in _of_type(resources, "AWS::ApiGateway::Resource").values()}
    assert {"drift", "settings", "rounds"} <= paths
    outputs = assembly.template["Outputs"]
    assert {c.OUT_DRIFT_FUNCTION, c.OUT_ALARM_TOPIC_ARN, c.OUT_DASHBOARD} <= set(outputs)


def test_monitoring_fleet_concurrency_is_a_bounded_stack_setting() -> None:
    import aws_cdk as cdk
    import pytest
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk import aws_sqs as sqs
    from pydantic import ValidationError

    from infra.config import StackConfig
    from infra.constructs.drift_fleet import DriftFleet

    assert StackConfig().drift_concurrency == 10
    assert StackConfig.model_validate({"drift_concurrency": "3"}).drift_concurrency == 3
    for bad in (0, -1, 1_001):
        with pytest.raises(ValidationError, match="drift_concurrency"):
            StackConfig.model_validate({"drift_concurrency": bad})
    stack = cdk.Stack(cdk.App(), "FleetOnly", env=cdk.Environment(account="123456789012", region="us-east-1"))
    fn = lambda_.Function.from_function_arn(stack, "Fn", "arn:aws:lambda:us-east-1:123456789012:function:drift")
    queue = sqs.Queue.from_queue_arn(stack, "Q", "arn:aws:sqs:us-east-1:123456789012:dlq")
    fleet = DriftFleet(stack, "Fleet", function=fn, dead_letters=queue, concurrency=3)
    definition = json.dumps(stack.resolve(fleet.state_machine.node.default_child.definition_string))  # type: ignore[union-attr]
    assert '\\"MaxConcurrency\\":3' in definition
