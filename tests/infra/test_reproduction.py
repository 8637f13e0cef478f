"""Reproduction in the synthesized template: the reproduce function runs the training image with
its handler, reads only what retraining needs and writes only its records and audit events; its
asynchronous invokes are bounded and dead-lettered; the API invokes it (and only it, among image
functions) and serves both routes IAM-authorized."""

from __future__ import annotations

from typing import Any

from infra import constants as c
from infra.constructs.reproduction import REPRODUCE_HANDLER, REPRODUCE_ROUTES, WRITTEN_KEYS


def _of_type(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in resources.items() if v["Type"] == kind}


def _one(resources: dict[str, Any], kind: str, prefix: str) -> tuple[str, dict[str, Any]]:
    (found,) = [(k, v) for k, v in _of_type(resources, kind).items() if k.startswith(prefix)]
    return found


def _statements(resources: dict[str, Any], function_id: str) -> list[dict[str, Any]]:
    role = resources[function_id]["Properties"]["Role"]["Fn::GetAtt"][0]
    return [
        s
        for p in _of_type(resources, "AWS::IAM::Policy").values()
        if any(r.get("Ref") == role for r in p["Properties"]["Roles"])
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def _actions(statement: dict[str, Any]) -> set[str]:
    actions = statement["Action"]
    return set(actions if isinstance(actions, list) else [actions])


def test_reproduction_function_runs_the_training_image_with_its_handler(resources: dict[str, Any]) -> None:
    _, fn = _one(resources, "AWS::Lambda::Function", c.REPRODUCE_FUNCTION_ID)
    props = fn["Properties"]
    assert props["PackageType"] == "Image" and props["ImageConfig"]["Command"] == [REPRODUCE_HANDLER]
    assert props["Timeout"] == 900 and props["TracingConfig"]["Mode"] == "Active"
    assert {c.ENV_DATA_BUCKET, c.ENV_METADATA_TABLE, c.ENV_REGISTRY_TABLE} <= set(props["Environment"]["Variables"])


def test_reproduction_function_writes_only_its_records_and_audit_events(resources: dict[str, Any]) -> None:
    fn_id, _ = _one(resources, "AWS::Lambda::Function", c.REPRODUCE_FUNCTION_ID)
    statements = _statements(resources, fn_id)
    (put,) = [s for s in statements if "dynamodb:PutItem" in _actions(s)]
    assert _actions(put) == {"dynamodb:PutItem"}
    assert put["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": WRITTEN_KEYS}}
    assert not any(a.startswith("s3:Put") or a.startswith("s3:Delete") for s in statements for a in _actions(s))


def test_reproduction_async_invokes_are_bounded_and_dead_lettered(resources: dict[str, Any]) -> None:
    fn_id, _ = _one(resources, "AWS::Lambda::Function", c.REPRODUCE_FUNCTION_ID)
    (config,) = [
        v["Properties"]
        for v in _of_type(resources, "AWS::Lambda::EventInvokeConfig").values()
        if v["Properties"]["FunctionName"] == {"Ref": fn_id}
    ]
    assert config["MaximumRetryAttempts"] == 1 and config["MaximumEventAgeInSeconds"] == 1800
    assert "OnFailure" in config["DestinationConfig"]


def test_reproduction_api_invokes_the_function_and_serves_both_routes_iam_authorized(
    resources: dict[str, Any],
) -> None:
    fn_id, _ = _one(resources, "AWS::Lambda::Function", c.REPRODUCE_FUNCTION_ID)
    api_id, api = _one(resources, "AWS::Lambda::Function", c.API_FUNCTION_ID)
    assert api["Properties"]["Environment"]["Variables"][c.ENV_REPRODUCE_FUNCTION] == {"Ref": fn_id}
    invokes = [s for s in _statements(resources, api_id) if "lambda:InvokeFunction" in _actions(s)]
    assert {"Fn::GetAtt": [fn_id, "Arn"]} in [s["Resource"] for s in invokes]
    methods = _of_type(resources, "AWS::ApiGateway::Method")
    paths = _of_type(resources, "AWS::ApiGateway::Resource")
    reproduce_paths = {k: v for k, v in paths.items() if v["Properties"]["PathPart"] == "reproduce"}
    assert len(reproduce_paths) == 1
    served = {
        m["Properties"]["HttpMethod"]: m["Properties"]
        for m in methods.values()
        if m["Properties"]["ResourceId"] == {"Ref": next(iter(reproduce_paths))}
    }
    assert set(served) == {method for method, _ in REPRODUCE_ROUTES}
    assert all(p["AuthorizationType"] == "AWS_IAM" for p in served.values())
    assert all(api_id in repr(p["Integration"]["Uri"]) for p in served.values())
