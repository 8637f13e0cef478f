"""Template assertions for approvals and release: topic, the approval state, grants, routes."""

from __future__ import annotations

import json
from typing import Any

from infra import constants as c
from stepwise.local.assembly import Assembly


def _of_type(resources: dict[str, dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in resources.items() if v["Type"] == kind}


def _flatten(value: Any) -> str:
    """A template string with its intrinsic parts replaced by placeholders."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        return value["Fn::Join"][0].join(_flatten(p) for p in value["Fn::Join"][1])
    return "TOKEN"


def _lifecycle_machine(resources: dict[str, Any]) -> str:
    """The lifecycle workflow's logical id (other components may add state machines)."""
    (logical_id,) = [
        k
        for k in _of_type(resources, "AWS::StepFunctions::StateMachine")
        if k.startswith(f"{c.LIFECYCLE_ID}StateMachine")
    ]
    return logical_id


def _lifecycle_definition(resources: dict[str, Any]) -> dict[str, Any]:
    machine = resources[_lifecycle_machine(resources)]
    return json.loads(_flatten(machine["Properties"]["DefinitionString"]))  # type: ignore[no-any-return]


def _policies_of(resources: dict[str, Any], function_id: str) -> list[dict[str, Any]]:
    """The statements of the inline policies attached to a StepwiseFunction's role."""
    statements = []
    for logical_id, policy in _of_type(resources, "AWS::IAM::Policy").items():
        if logical_id.startswith(function_id):
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return statements


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


def test_approvals_topic_is_encrypted_and_ssl_only(resources: dict[str, Any]) -> None:
    topics = {k: v for k, v in _of_type(resources, "AWS::SNS::Topic").items() if k.startswith(c.APPROVALS_ID)}
    (topic,) = topics.values()
    assert "KmsMasterKeyId" in topic["Properties"]
    policies = [
        p
        for p in _of_type(resources, "AWS::SNS::TopicPolicy").values()
        if any(t.startswith(c.APPROVALS_ID) for t in [r.get("Ref", "") for r in p["Properties"]["Topics"]])
    ]
    statements = [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]]
    assert any(
        s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        for s in statements
    )


def test_approvals_lifecycle_waits_for_a_task_token_with_a_timeout(resources: dict[str, Any]) -> None:
    # Given the lifecycle workflow as synthesized
    states = _lifecycle_definition(resources)["States"]
    # Then the approval state waits for a task token, with the configured timeout (7 days by default)
    request = states["RequestApproval"]
    assert request["Resource"].endswith(":states:::lambda:invoke.waitForTaskToken")
    assert request["TimeoutSeconds"] == 7 * 24 * 3600
    assert request["Parameters"]["Payload"]["token.$"] == "$$.Task.Token"
    assert request["Parameters"]["Payload"]["timeout_seconds"] == 7 * 24 * 3600
    # And a timeout expires the request, a rejection is recorded on the run then fails with the typed error
    catches = {tuple(c["ErrorEquals"]): c["Next"] for c in request["Catch"]}
    assert catches[("States.Timeout",)] == "ExpireApproval"
    recorded = states[catches[("ApprovalRejected",)]]
    assert recorded["Type"] == "Task" and recorded["Parameters"]["action"] == "fail"
    assert states[recorded["Next"]] | {} == {
        **states[recorded["Next"]],
        "Type": "Fail",
        "Error": "ApprovalRejected",
    }
    # And registration leads to it (after the gates passed)
    assert any(
        choice.get("Next") == "ReleaseStrategyGiven"
        for state in states.values()
        for choice in [*state.get("Choices", []), {"Next": state.get("Default")}]
    )
    # And the canary path bakes, checks and rolls back on a failed check
    assert states["BakeCanary"]["SecondsPath"] == "$.canary.bake_seconds"
    check = {tuple(c["ErrorEquals"]): c["Next"] for c in states["CheckCanary"]["Catch"]}
    assert check[("States.ALL",)] == "RollbackCanary"
    assert states[check[("CanaryCheckFailed",)]]["Next"] == "CanaryFailed"  # recorded on the run first


def test_approvals_api_may_answer_only_the_lifecycle_tasks(resources: dict[str, Any]) -> None:
    statements = _policies_of(resources, c.API_FUNCTION_ID)
    callbacks = [s for s in statements if any(a.startswith("states:SendTask") for a in _actions(s))]
    assert sorted(a for s in callbacks for a in _actions(s)) == ["states:SendTaskFailure", "states:SendTaskSuccess"]
    machine = _lifecycle_machine(resources)
    for s in callbacks:
        assert s["Resource"] == {"Ref": machine}


def test_approvals_functions_never_update_or_delete_audit_items(resources: dict[str, Any]) -> None:
    metadata = next(k for k in _of_type(resources, "AWS::DynamoDB::Table") if k.startswith(c.METADATA_ID))
    for function_id in (c.APPROVAL_FUNCTION_ID, c.RELEASE_FUNCTION_ID):
        for s in _policies_of(resources, function_id):
            resources_ = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
            on_metadata = any(json.dumps(r).find(metadata) >= 0 for r in resources_)
            writes = {"dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:PutItem"} & set(_actions(s))
            if on_metadata and writes:
                assert "dynamodb:DeleteItem" not in writes, function_id
                keys = s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
                if "dynamodb:UpdateItem" in writes:
                    assert keys == ["APPROVAL#*"], (function_id, keys)


def test_approvals_routes_are_iam_authorized(resources: dict[str, Any]) -> None:
    methods = _of_type(resources, "AWS::ApiGateway::Method")
    paths = {k: v for k, v in _of_type(resources, "AWS::ApiGateway::Resource").items()}
    parts = {k: v["Properties"]["PathPart"] for k, v in paths.items()}
    found = {
        (m["Properties"]["HttpMethod"], parts.get(m["Properties"]["ResourceId"]["Ref"]))
        for m in methods.values()
        if m["Properties"]["AuthorizationType"] == "AWS_IAM"
    }
    for expected in (("GET", "approvals"), ("POST", "approve"), ("POST", "reject"), ("POST", "rollback")):
        assert expected in found, expected


def test_approvals_topic_arn_is_an_output(assembly: Assembly) -> None:
    assert c.OUT_APPROVALS_TOPIC_ARN in assembly.template["Outputs"]
