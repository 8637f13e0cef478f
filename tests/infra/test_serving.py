"""Serving in the synthesized template: the inference function, its layer, grants and routes;
and its settings (reserved concurrency, alias TTL) from CDK context."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Match, Template

from infra import constants as c
from infra.app import build_app


def _inference(resources: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    found = [
        (k, v)
        for k, v in resources.items()
        if v["Type"] == "AWS::Lambda::Function"
        and v["Properties"].get("Handler") == "functions.handlers.predict.lambda_handler"
    ]
    assert len(found) == 1
    return found[0]


def _policy_statements(resources: dict[str, dict[str, Any]], role_id: str) -> list[dict[str, Any]]:
    statements = []
    for res in resources.values():
        if res["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in res["Properties"]["Roles"]:
            statements += res["Properties"]["PolicyDocument"]["Statement"]
    return statements


def test_serving_function_runs_the_inference_handler_with_its_own_layer(resources: dict[str, Any]) -> None:
    logical_id, fn = _inference(resources)
    assert logical_id.startswith(c.INFERENCE_FUNCTION_ID)
    props = fn["Properties"]
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert props["MemorySize"] == 1024 and props["Timeout"] == 29
    (layer,) = props["Layers"]
    assert layer["Ref"].startswith(c.INFERENCE_LAYER_ID)
    assert "ReservedConcurrentExecutions" not in props  # unreserved unless configured
    assert props["Environment"]["Variables"][c.ENV_ALIAS_CACHE_TTL] == "5.0"


def test_serving_grants_are_least_privilege(resources: dict[str, Any]) -> None:
    _, fn = _inference(resources)
    role_id = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = _policy_statements(resources, role_id)
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert actions == {
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",  # the online feature store only (test_iam_least_privilege.py)
        "s3:GetObject",
        "s3:PutObject",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }
    text = json.dumps(statements)
    assert "/models/*" in text and "/captures/*" in text and "/feedback/*" in text
    for s in statements:
        if s["Action"] in ("s3:GetObject", "s3:PutObject"):
            assert "*" not in json.dumps(s["Resource"]).replace("/models/*", "").replace("/captures/*", "").replace(
                "/feedback/*", ""
            )
    assert all(s["Effect"] == "Allow" for s in statements)


def test_serving_routes_are_iam_authorized_proxies_to_the_inference_function(resources: dict[str, Any]) -> None:
    fn_id, _ = _inference(resources)
    methods = [r for r in resources.values() if r["Type"] == "AWS::ApiGateway::Method"]
    ours = [m for m in methods if fn_id in json.dumps(m["Properties"]["Integration"])]
    assert len(ours) == 2
    for m in ours:
        assert m["Properties"]["HttpMethod"] == "POST"
        assert m["Properties"]["AuthorizationType"] == "AWS_IAM"
        assert m["Properties"]["Integration"]["Type"] == "AWS_PROXY"
    paths = {r["Properties"]["PathPart"] for r in resources.values() if r["Type"] == "AWS::ApiGateway::Resource"}
    assert {"models", "{name}", "predict", "feedback"} <= paths


def test_serving_alarms_on_refused_artifacts(resources: dict[str, Any]) -> None:
    alarms = [r for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert any(a["Properties"].get("MetricName") == "IntegrityFailures" for a in alarms)


def test_serving_reserved_concurrency_is_configurable(tmp_path: Any) -> None:
    context = {"stepwise:inference_reserved_concurrency": 7, "stepwise:inference_alias_cache_ttl_seconds": 1.5}
    _app, stack = build_app(outdir=str(tmp_path), context=context)
    template = Template.from_stack(stack)
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "functions.handlers.predict.lambda_handler",
            "ReservedConcurrentExecutions": 7,
            "Environment": {"Variables": Match.object_like({c.ENV_ALIAS_CACHE_TTL: "1.5"})},
        },
    )


def test_serving_alarms_on_dropped_capture_rows(resources: dict[str, Any]) -> None:
    # Given the synthesized template; Then one alarm fires on any captured row dropped in 5 minutes,
    # on the service-dimension metric the inference handler emits, and notifies the alarm topic
    (alarm,) = [
        dict(r["Properties"])  # a copy: the session's template is shared by every test
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"].get("MetricName") == "CaptureRowsDropped"
    ]
    (action,) = alarm.pop("AlarmActions")
    alarm.pop("Tags", None)  # the stack's own tags
    assert action["Ref"].startswith(f"{c.MONITORING_ID}AlarmTopic")
    assert alarm == {
        "AlarmDescription": "Captured inference rows were dropped: a capture write failed (see the inference logs)",
        "ComparisonOperator": "GreaterThanThreshold",
        "Dimensions": [{"Name": "service", "Value": "stepwise"}],
        "EvaluationPeriods": 1,
        "MetricName": "CaptureRowsDropped",
        "Namespace": "Stepwise",
        "Period": 300,
        "Statistic": "Sum",
        "Threshold": 0,
        "TreatMissingData": "notBreaching",
    }
