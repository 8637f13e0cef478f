"""Materialization in the synthesized template: the online table's settings, the only role that
may write it (the materialization function, UpdateItem only), its workflow (Plan -> Distributed Map
of MaterializeChunk -> Finish), who may start it, its routes and the one freshness alarm."""

from __future__ import annotations

import json
from typing import Any

from infra import constants as c
from infra.config import StackConfig
from infra.constructs.materialize import MATERIALIZE_HANDLER, MATERIALIZE_ROUTES
from tests.infra.test_lifecycle_template import _flat
from tests.infra.test_reproduction import _of_type, _one
from tests.infra.test_workflow_failures import _payload


def _definition(resources: dict[str, Any]) -> dict[str, Any]:
    _, machine = _one(resources, "AWS::StepFunctions::StateMachine", "MaterializeWorkflow")
    return json.loads(_flat(machine["Properties"]["DefinitionString"]))  # type: ignore[no-any-return]


def _online_table(resources: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return _one(resources, "AWS::DynamoDB::Table", "OnlineStoreTable")


def _names(value: Any, logical_id: str) -> bool:
    return f'"{logical_id}"' in json.dumps(value)


def test_materialize_online_table_is_on_demand_recoverable_protected_retained_and_encrypted(
    resources: dict[str, Any],
) -> None:
    # Given the online table
    _, table = _online_table(resources)
    props = table["Properties"]
    # Then it is keyed by pk alone, on demand, PITR, deletion-protected, retained and KMS-encrypted
    assert props["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["DeletionProtectionEnabled"] is True
    assert table["DeletionPolicy"] == "Retain" and table["UpdateReplacePolicy"] == "Retain"
    sse = props["SSESpecification"]
    assert sse["SSEEnabled"] is True and sse.get("SSEType") == "KMS" and "KMSMasterKeyId" in sse
    assert "TimeToLiveSpecification" not in props  # TTL is applied at read


def test_materialize_only_the_materialization_function_writes_the_online_table_with_updateitem(
    resources: dict[str, Any],
) -> None:
    # Given every IAM statement that names the online table
    table_id, _ = _online_table(resources)
    function_id, function = _one(resources, "AWS::Lambda::Function", c.MATERIALIZE_FUNCTION_ID)
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    grants: dict[str, set[str]] = {}
    for policy in _of_type(resources, "AWS::IAM::Policy").values():
        roles = {r["Ref"] for r in policy["Properties"]["Roles"]}
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if _names(statement["Resource"], table_id):
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                for r in roles:
                    grants.setdefault(r, set()).update(actions)
    # Then the materialization function's role is the only one that writes, with UpdateItem alone, on
    # that table alone, and its UpdateItem names nothing but that table (the inference function's
    # reads are checked in test_iam_least_privilege.py)
    reads = {"dynamodb:GetItem", "dynamodb:BatchGetItem"}
    assert {r: a - reads for r, a in grants.items() if a - reads} == {role: {"dynamodb:UpdateItem"}}
    for policy in _of_type(resources, "AWS::IAM::Policy").values():
        if {"Ref": role} not in policy["Properties"]["Roles"]:
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if _names(statement["Resource"], table_id) or "dynamodb:UpdateItem" in actions:
                assert actions == ["dynamodb:UpdateItem"] and _names(statement["Resource"], table_id)
                assert len(statement["Resource"] if isinstance(statement["Resource"], list) else [1]) == 1
    assert function["Properties"]["Handler"] == MATERIALIZE_HANDLER
    env = function["Properties"]["Environment"]["Variables"]
    assert _names(env[c.ENV_ONLINE_TABLE], table_id)
    assert c.ENV_MATERIALIZE_SM_ARN in env and c.ENV_MATERIALIZE_FUNCTION not in env
    assert function_id.startswith(c.MATERIALIZE_FUNCTION_ID)


def test_materialize_workflow_plans_maps_every_chunk_and_finishes(resources: dict[str, Any]) -> None:
    # Given the materialization workflow's definition
    definition = _definition(resources)
    states = definition["States"]
    # Then it is Plan -> Chunks -> Finish, the chunks a Distributed Map over the plan's items
    assert definition["StartAt"] == "Plan" and states["Plan"]["Next"] == "Chunks"
    assert states["Chunks"]["Next"] == "Finish" and states["Finish"]["End"] is True
    chunks = states["Chunks"]
    assert chunks["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"}
    assert chunks["ItemsPath"] == "$.plan.chunks"
    inner = chunks["ItemProcessor"]["States"]
    write = inner["MaterializeChunk"]
    assert inner[write["Catch"][0]["Next"]]["Type"] == "Pass"
    assert {"Throttled", "StoreUnavailable"} <= {e for r in write["Retry"] for e in r["ErrorEquals"]}
    # and each step that still fails is recorded on the run by the `fail` step before the Fail state
    for name in ("Plan", "Chunks", "Finish"):
        record = states[states[name]["Catch"][0]["Next"]]
        assert _payload(record)["step"] == "fail" and _payload(record)["view.$"] == "$.view"
        assert states[record["Next"]]["Type"] == "Fail"


def test_materialize_api_and_validation_may_start_runs_and_the_routes_reach_the_api(
    resources: dict[str, Any],
) -> None:
    # Given the functions that start runs
    mat_id, _ = _one(resources, "AWS::Lambda::Function", c.MATERIALIZE_FUNCTION_ID)
    for starter in (c.API_FUNCTION_ID, c.VALIDATE_FUNCTION_ID, c.VALIDATE_CHUNKS_FUNCTION_ID):
        (found,) = [
            (k, v)
            for k, v in _of_type(resources, "AWS::Lambda::Function").items()
            if k.startswith(starter) and (starter != c.VALIDATE_FUNCTION_ID or "Chunks" not in k)
        ]
        env = found[1]["Properties"]["Environment"]["Variables"]
        # Then each names the materialization function
        assert _names(env[c.ENV_MATERIALIZE_FUNCTION], mat_id), starter
    # and every route is in the API
    paths = {r["Properties"]["PathPart"] for r in _of_type(resources, "AWS::ApiGateway::Resource").values()}
    assert {"materialize", "materializations", "{materialization_id}"} <= paths
    assert len(MATERIALIZE_ROUTES) == 3


def test_materialize_one_freshness_alarm_on_the_oldest_view_with_the_stack_threshold(
    resources: dict[str, Any],
) -> None:
    # Given the stack's alarms on the features namespace
    alarms = [
        r["Properties"]
        for r in _of_type(resources, "AWS::CloudWatch::Alarm").values()
        if r["Properties"].get("Namespace") == "Stepwise/Features"
    ]
    # Then there is one, on the Maximum of the dimensionless age, with the configured threshold
    (alarm,) = alarms
    assert alarm["MetricName"] == "OnlineFeatureAgeMaxSeconds" and alarm["Statistic"] == "Maximum"
    assert alarm["Threshold"] == StackConfig().online_freshness_alarm_seconds
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "stepwise"}]
    assert alarm["AlarmActions"]
