"""Template assertions on the synthesized stack: the stateful core is hardened from the start."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Match, Template

from functions.models.settings import Settings
from infra import constants as c
from stepwise.local.assembly import Assembly


def _of_type(resources: dict[str, dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in resources.items() if v["Type"] == kind}


def test_stack_buckets_are_versioned_encrypted_private_logged_and_retained(resources: dict[str, Any]) -> None:
    buckets = _of_type(resources, "AWS::S3::Bucket")
    assert len(buckets) >= 3  # data, artifacts, access logs
    for logical_id, bucket in buckets.items():
        props = bucket["Properties"]
        assert bucket["DeletionPolicy"] == "Retain", logical_id
        assert bucket["UpdateReplacePolicy"] == "Retain", logical_id
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}, logical_id
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"], logical_id
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, logical_id
    logged = [k for k, b in buckets.items() if "LoggingConfiguration" in b["Properties"]]
    assert any(k.startswith(c.DATA_STORE_ID) for k in logged)
    assert any(k.startswith(c.ARTIFACT_STORE_ID) for k in logged)


def test_stack_every_bucket_denies_plain_http(resources: dict[str, Any]) -> None:
    buckets = set(_of_type(resources, "AWS::S3::Bucket"))
    ssl_only = set()
    for policy in _of_type(resources, "AWS::S3::BucketPolicy").values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        if any(
            s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
            for s in statements
        ):
            ssl_only.add(policy["Properties"]["Bucket"]["Ref"])
    assert buckets == ssl_only


def test_stack_tables_are_on_demand_recoverable_protected_and_retained(resources: dict[str, Any]) -> None:
    assert not _of_type(resources, "AWS::DynamoDB::GlobalTable")
    tables = _of_type(resources, "AWS::DynamoDB::Table")
    assert {k.split("Table")[0] for k in tables} >= {c.REGISTRY_ID, c.METADATA_ID}
    for logical_id, table in tables.items():
        props = table["Properties"]
        assert table["DeletionPolicy"] == "Retain", logical_id
        assert props["BillingMode"] == "PAY_PER_REQUEST", logical_id
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True, logical_id
        assert props["DeletionProtectionEnabled"] is True, logical_id
        assert props["SSESpecification"]["SSEEnabled"] is True, logical_id


def test_stack_health_route_is_iam_authorized_on_a_lambda(template: Template) -> None:
    template.has_resource_properties("AWS::ApiGateway::Resource", {"PathPart": "health"})
    template.has_resource_properties(
        "AWS::ApiGateway::Method",
        {
            "HttpMethod": "GET",
            "AuthorizationType": "AWS_IAM",
            "Integration": Match.object_like({"Type": "AWS_PROXY"}),
        },
    )


def test_stack_functions_run_the_newest_runtime_with_tracing_and_retained_logs(resources: dict[str, Any]) -> None:
    functions = _of_type(resources, "AWS::Lambda::Function")
    ours = {k: f for k, f in functions.items() if "Handler" in f["Properties"] or "ImageConfig" in f["Properties"]}
    assert ours
    for logical_id, fn in ours.items():
        props = fn["Properties"]
        if "Runtime" in props:
            assert props["Runtime"] == "python3.14", logical_id
        assert props["TracingConfig"] == {"Mode": "Active"}, logical_id
        assert props["LoggingConfig"]["LogFormat"] == "JSON", logical_id
    for logical_id, group in _of_type(resources, "AWS::Logs::LogGroup").items():
        assert "RetentionInDays" in group["Properties"], logical_id
        assert group["DeletionPolicy"] == "Retain", logical_id


def test_stack_outputs_name_everything_a_client_needs(assembly: Assembly) -> None:
    outputs = assembly.template["Outputs"]
    for name in (
        c.OUT_DATA_BUCKET,
        c.OUT_ARTIFACTS_BUCKET,
        c.OUT_REGISTRY_TABLE,
        c.OUT_METADATA_TABLE,
        c.OUT_API_URL,
        c.OUT_VERSION,
    ):
        assert name in outputs, name


def test_stack_cdk_nag_has_no_unacknowledged_finding_and_every_acknowledgment_has_a_reason(
    assembly: Assembly,
) -> None:
    report = json.loads((assembly.outdir / "validation-report.json").read_text())
    plugins = {p["pluginName"]: p for p in report["pluginReports"]}
    assert {"AwsSolutions", "Serverless", "NIST.800.53.R5"} <= set(plugins)
    for name, plugin in plugins.items():
        assert plugin["violations"] == [], (name, plugin["violations"])
        assert plugin["conclusion"] == "success", name
        for suppressed in plugin.get("suppressedViolations", []):
            assert suppressed["reason"].strip(), suppressed["ruleName"]
            assert suppressed["acknowledgedId"], suppressed["ruleName"]


def test_stack_env_var_names_match_the_functions_settings(resources: dict[str, Any]) -> None:
    # Given the names infra sets and the aliases functions read
    aliases = {f.alias for f in Settings.model_fields.values() if f.alias}
    infra_names = {v for k, v in vars(c).items() if k.startswith("ENV_")}
    # Then every name infra sets is one the settings model reads
    assert infra_names <= aliases, infra_names - aliases
    # And every variable a function gets that is ours is a known setting
    for logical_id, fn in _of_type(resources, "AWS::Lambda::Function").items():
        variables = fn["Properties"].get("Environment", {}).get("Variables", {})
        ours = {k for k in variables if k.startswith("STEPWISE_")}
        assert ours <= aliases, (logical_id, ours - aliases)
