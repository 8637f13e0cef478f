"""Governance in the synthesized template: audit items append-only for every role, the Object Lock
audit archive and its daily export, the retired-artifacts lifecycle rule, the governance routes."""

from __future__ import annotations

from typing import Any

from functions.dal.lineage import RETIRED_TAG
from infra import constants as c
from infra.constructs.governance import AUDIT_EXPORT_HANDLER, AUDIT_MUTATIONS, GOVERNANCE_ROUTES

MUTATING = {*AUDIT_MUTATIONS, "dynamodb:*", "dynamodb:PutItem"}


def _of_type(resources: dict[str, dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in resources.items() if v["Type"] == kind}


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _metadata_table(resources: dict[str, Any]) -> str:
    (logical_id,) = [k for k in _of_type(resources, "AWS::DynamoDB::Table") if k.startswith(c.METADATA_ID)]
    return logical_id


def _touches(resource: Any, table: str) -> bool:
    return resource == "*" or table in repr(resource)


def _statements_by_role(resources: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    by_role: dict[str, list[dict[str, Any]]] = {k: [] for k in _of_type(resources, "AWS::IAM::Role")}
    for policy in _of_type(resources, "AWS::IAM::Policy").values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        for role in policy["Properties"].get("Roles", []):
            by_role.setdefault(role["Ref"], []).extend(statements)
    for managed in _of_type(resources, "AWS::IAM::ManagedPolicy").values():
        statements = managed["Properties"]["PolicyDocument"]["Statement"]
        for role in managed["Properties"].get("Roles", []):
            by_role.setdefault(role["Ref"], []).extend(statements)
    for logical_id, role in _of_type(resources, "AWS::IAM::Role").items():
        for inline in role["Properties"].get("Policies", []):
            by_role[logical_id].extend(inline["PolicyDocument"]["Statement"])
    return by_role


def _denies_audit_mutations(statements: list[dict[str, Any]], table: str) -> bool:
    for s in statements:
        if s.get("Effect") != "Deny" or not set(AUDIT_MUTATIONS) <= set(_listed(s["Action"])):
            continue
        keys = s.get("Condition", {}).get("ForAnyValue:StringLike", {}).get("dynamodb:LeadingKeys", [])
        if "AUDIT#*" in _listed(keys) and any(_touches(r, table) for r in _listed(s["Resource"])):
            return True
    return False


def test_governance_no_role_may_update_or_delete_audit_items(resources: dict[str, Any]) -> None:
    # Given every role's statements
    table = _metadata_table(resources)
    roles = _statements_by_role(resources)
    function_roles = {
        fn["Properties"]["Role"]["Fn::GetAtt"][0] for fn in _of_type(resources, "AWS::Lambda::Function").values()
    }
    assert function_roles and function_roles <= set(roles)
    for logical_id, statements in roles.items():
        allows = [
            s
            for s in statements
            if s.get("Effect") == "Allow"
            and set(_listed(s["Action"])) & set(AUDIT_MUTATIONS) | ({"dynamodb:*"} & set(_listed(s["Action"])))
            and any(_touches(r, table) for r in _listed(s["Resource"]))
        ]
        # Then any role that could reach the metadata table's items with UpdateItem/DeleteItem
        # carries the explicit Deny on AUDIT# items (and every function role does regardless)
        if allows or logical_id in function_roles:
            assert _denies_audit_mutations(statements, table), logical_id


def test_governance_audit_archive_has_object_lock_in_governance_mode(resources: dict[str, Any]) -> None:
    archives = [
        b
        for k, b in _of_type(resources, "AWS::S3::Bucket").items()
        if k.startswith(c.AUDIT_ARCHIVE_ID) and b["Properties"].get("ObjectLockEnabled")
    ]
    assert len(archives) == 1
    props = archives[0]["Properties"]
    rule = props["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
    assert props["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"
    assert rule["Mode"] == "GOVERNANCE" and rule["Days"] >= 365
    assert props["VersioningConfiguration"]["Status"] == "Enabled"
    assert props["PublicAccessBlockConfiguration"]["BlockPublicAcls"] is True


def test_governance_audit_export_runs_daily_with_the_data_layer(resources: dict[str, Any]) -> None:
    (export_id,) = [
        k
        for k, f in _of_type(resources, "AWS::Lambda::Function").items()
        if f["Properties"].get("Handler") == AUDIT_EXPORT_HANDLER
    ]
    fn = resources[export_id]["Properties"]
    assert fn["Layers"][0]["Ref"].startswith(c.DATA_LAYER_ID)
    assert c.ENV_AUDIT_ARCHIVE_BUCKET in fn["Environment"]["Variables"]
    rules = [
        r["Properties"]
        for r in _of_type(resources, "AWS::Events::Rule").values()
        if any(export_id in repr(t["Arn"]) for t in r["Properties"].get("Targets", []))
    ]
    assert len(rules) == 1 and rules[0]["ScheduleExpression"].startswith("cron(15 0 ")


def test_governance_retired_artifacts_move_to_a_colder_class(resources: dict[str, Any]) -> None:
    assert RETIRED_TAG == c.RETIRED_TAG
    (artifacts,) = [b for k, b in _of_type(resources, "AWS::S3::Bucket").items() if k.startswith(c.ARTIFACT_STORE_ID)]
    rules = artifacts["Properties"]["LifecycleConfiguration"]["Rules"]
    (retired,) = [r for r in rules if r.get("TagFilters")]
    assert retired["TagFilters"] == [{"Key": RETIRED_TAG, "Value": "true"}]
    (transition,) = retired["Transitions"]
    assert transition["StorageClass"] == "GLACIER_IR" and transition["TransitionInDays"] == 30


def test_governance_routes_are_iam_authorized(resources: dict[str, Any]) -> None:
    methods = _of_type(resources, "AWS::ApiGateway::Method")
    declared = {(m["Properties"]["HttpMethod"], m["Properties"]["AuthorizationType"]) for m in methods.values()}
    assert {(method, "AWS_IAM") for method, _ in GOVERNANCE_ROUTES} <= declared
    paths = {r["Properties"]["PathPart"] for r in _of_type(resources, "AWS::ApiGateway::Resource").values()}
    assert {"audit", "export", "explain", "lineage", "card", "retire", "restore"} <= paths
