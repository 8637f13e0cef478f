"""Data safety, read from the synthesized template: nothing that holds data is deleted with the
stack, buckets and tables are protected, logs are kept for a bounded time, and captured traffic
and old reports expire.

Documented exceptions: SNS topics store no messages (delivery is immediate; subscriptions live in
the template), so deleting one loses no data (STATELESS_BY_DESIGN); a bucket with S3 Object Lock
(the audit archive) keeps noncurrent versions by design, so it needs no noncurrent-expiry rule.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from infra import constants as c
from infra.config import StackConfig
from stepwise.local.assembly import Assembly

Template = dict[str, Any]

STATEFUL = {"AWS::S3::Bucket", "AWS::DynamoDB::Table", "AWS::Logs::LogGroup", "AWS::SQS::Queue", "AWS::SNS::Topic"}
STATELESS_BY_DESIGN = {"AWS::SNS::Topic": "stores no messages; subscriptions are in the template"}


def _of_type(template: Template, kind: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == kind}


def _is_access_log_bucket(template: Template, logical_id: str) -> bool:
    """The bucket other buckets' LoggingConfiguration points at."""
    return any(
        b["Properties"].get("LoggingConfiguration", {}).get("DestinationBucketName") == {"Ref": logical_id}
        for b in _of_type(template, "AWS::S3::Bucket").values()
    )


def _bucket_policy_statements(template: Template, logical_id: str) -> list[dict[str, Any]]:
    return [
        s
        for p in _of_type(template, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": logical_id}
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def _stack_keys(template: Template) -> set[str]:
    """The customer-managed KMS keys of the stack that rotate."""
    return {
        lid for lid, key in _of_type(template, "AWS::KMS::Key").items() if key["Properties"].get("EnableKeyRotation")
    }


def _key_of(value: Any) -> str | None:
    """The logical id of the key a KMS key property points at (Fn::GetAtt Key.Arn or Ref Key)."""
    if isinstance(value, dict):
        if "Fn::GetAtt" in value:
            return str(value["Fn::GetAtt"][0])
        if "Ref" in value:
            return str(value["Ref"])
    return None


def check_data_safety(template: Template) -> list[str]:
    problems: list[str] = []
    keys = _stack_keys(template)
    if not keys:
        problems.append("no customer-managed KMS key with rotation")

    def under_stack_key(lid: str, value: Any, what: str) -> None:
        if _key_of(value) not in keys:
            problems.append(f"{lid}: {what} not under the stack's rotating KMS key ({value!r})")

    for lid, res in template["Resources"].items():
        if res["Type"] not in STATEFUL or res["Type"] in STATELESS_BY_DESIGN:
            continue
        for policy in ("DeletionPolicy", "UpdateReplacePolicy"):
            if res.get(policy) != "Retain":
                problems.append(f"{lid} ({res['Type']}): {policy} is {res.get(policy)!r}, not Retain")

    for lid, bucket in _of_type(template, "AWS::S3::Bucket").items():
        props = bucket["Properties"]
        if props.get("VersioningConfiguration", {}).get("Status") != "Enabled":
            problems.append(f"{lid}: versioning is not enabled")
        block = props.get("PublicAccessBlockConfiguration", {})
        flags = ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
        if not all(block.get(f) is True for f in flags):
            problems.append(f"{lid}: public access is not fully blocked: {block}")
        if not props.get("BucketEncryption"):
            problems.append(f"{lid}: no default encryption")
        elif not _is_access_log_bucket(template, lid):  # S3 delivers access logs only to SSE-S3 buckets
            (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            default = rule["ServerSideEncryptionByDefault"]
            under_stack_key(lid, default.get("KMSMasterKeyID"), f"default encryption {default['SSEAlgorithm']}")
        ssl_only = any(
            s.get("Effect") == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
            for s in _bucket_policy_statements(template, lid)
        )
        if not ssl_only:
            problems.append(f"{lid}: no bucket policy denying requests without TLS")
        if not props.get("LoggingConfiguration") and not _is_access_log_bucket(template, lid):
            problems.append(f"{lid}: server access logging is off")
        rules = props.get("LifecycleConfiguration", {}).get("Rules", [])
        locked = props.get("ObjectLockEnabled") is True  # an audit archive: versions are kept by design
        if not locked and not any(r.get("NoncurrentVersionExpiration") and r.get("Status") == "Enabled" for r in rules):
            problems.append(f"{lid}: noncurrent versions never expire")

    for lid, table in _of_type(template, "AWS::DynamoDB::Table").items():
        props = table["Properties"]
        if props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is not True:
            problems.append(f"{lid}: point-in-time recovery is off")
        if props.get("DeletionProtectionEnabled") is not True:
            problems.append(f"{lid}: deletion protection is off")
        if props.get("SSESpecification", {}).get("SSEEnabled") is not True:
            problems.append(f"{lid}: not encrypted with a KMS key (SSESpecification.SSEEnabled)")
        under_stack_key(lid, props.get("SSESpecification", {}).get("KMSMasterKeyId"), "table encryption")

    for lid, group in _of_type(template, "AWS::Logs::LogGroup").items():
        if not group["Properties"].get("RetentionInDays"):
            problems.append(f"{lid}: log group kept forever (no RetentionInDays)")
        under_stack_key(lid, group["Properties"].get("KmsKeyId"), "log group")

    for lid, fn in _of_type(template, "AWS::Lambda::Function").items():
        if "LogGroup" not in fn["Properties"].get("LoggingConfig", {}):
            problems.append(f"{lid}: logs to an implicit log group (no retention, not retained by the stack)")

    for lid, queue in _of_type(template, "AWS::SQS::Queue").items():
        props = queue["Properties"]
        if not (props.get("SqsManagedSseEnabled") or props.get("KmsMasterKeyId")):
            problems.append(f"{lid}: queue not encrypted")
    for lid, topic in _of_type(template, "AWS::SNS::Topic").items():
        under_stack_key(lid, topic["Properties"].get("KmsMasterKeyId"), "topic")
    return problems


def _expiring_prefixes(bucket: dict[str, Any]) -> dict[str, int]:
    rules = bucket["Properties"].get("LifecycleConfiguration", {}).get("Rules", [])
    return {
        r.get("Prefix", r.get("Filter", {}).get("Prefix", "")): r["ExpirationInDays"]
        for r in rules
        if r.get("Status") == "Enabled" and "ExpirationInDays" in r
    }


def _output_bucket(template: Template, output: str) -> dict[str, Any]:
    ref = template["Outputs"][output]["Value"]["Ref"]
    return template["Resources"][ref]  # type: ignore[no-any-return]


# -- tests ---------------------------------------------------------------------------------------
def test_stateful_resources_are_retained_protected_and_bounded(assembly: Assembly) -> None:
    # Given the synthesized template
    # When every stateful resource is checked
    problems = check_data_safety(assembly.template)
    # Then none is deleted with the stack, unprotected, or kept forever
    assert problems == [], "\n".join(problems)


def test_data_safety_covers_every_kind_of_stateful_resource(assembly: Assembly) -> None:
    # Given the template
    kinds = {r["Type"] for r in assembly.template["Resources"].values()}
    # Then the check saw buckets, tables, log groups and queues (a rename would hollow it out)
    assert {"AWS::S3::Bucket", "AWS::DynamoDB::Table", "AWS::Logs::LogGroup", "AWS::SQS::Queue"} <= kinds


def test_data_safety_check_catches_a_bucket_set_to_destroy(assembly: Assembly) -> None:
    # Given a copy of the template where the data bucket is deleted with the stack
    destroyed = copy.deepcopy(assembly.template)
    bucket = destroyed["Outputs"][c.OUT_DATA_BUCKET]["Value"]["Ref"]
    destroyed["Resources"][bucket]["DeletionPolicy"] = "Delete"
    destroyed["Resources"][bucket]["UpdateReplacePolicy"] = "Delete"
    # When the check runs
    problems = check_data_safety(destroyed)
    # Then it names the bucket
    assert f"{bucket} (AWS::S3::Bucket): DeletionPolicy is 'Delete', not Retain" in problems, problems


def test_data_safety_check_catches_an_unprotected_table_and_an_unbounded_log_group(assembly: Assembly) -> None:
    # Given a copy where the registry table loses PITR and a log group loses its retention
    weakened = copy.deepcopy(assembly.template)
    table = weakened["Outputs"][c.OUT_REGISTRY_TABLE]["Value"]["Ref"]
    weakened["Resources"][table]["Properties"].pop("PointInTimeRecoverySpecification")
    group = next(iter(_of_type(weakened, "AWS::Logs::LogGroup")))
    weakened["Resources"][group]["Properties"].pop("RetentionInDays")
    # When the check runs
    problems = check_data_safety(weakened)
    # Then both are named
    assert f"{table}: point-in-time recovery is off" in problems, problems
    assert f"{group}: log group kept forever (no RetentionInDays)" in problems, problems


def test_data_safety_check_catches_a_store_off_the_key_and_a_key_without_rotation(assembly: Assembly) -> None:
    # Given a copy where the artifacts bucket falls back to SSE-S3 and the metadata table to an AWS key
    weakened = copy.deepcopy(assembly.template)
    bucket = weakened["Outputs"][c.OUT_ARTIFACTS_BUCKET]["Value"]["Ref"]
    weakened["Resources"][bucket]["Properties"]["BucketEncryption"] = {
        "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
    }
    table = weakened["Outputs"][c.OUT_METADATA_TABLE]["Value"]["Ref"]
    weakened["Resources"][table]["Properties"]["SSESpecification"] = {"SSEEnabled": True}
    # When the check runs, Then both are named
    problems = check_data_safety(weakened)
    assert any(p.startswith(f"{bucket}: default encryption AES256 not under") for p in problems), problems
    assert any(p.startswith(f"{table}: table encryption not under") for p in problems), problems
    # And a key that stops rotating leaves every store off a rotating key
    for key in _of_type(weakened, "AWS::KMS::Key").values():
        key["Properties"]["EnableKeyRotation"] = False
    assert "no customer-managed KMS key with rotation" in check_data_safety(weakened)


def test_data_bucket_captures_expire_after_the_configured_days(assembly: Assembly) -> None:
    # Given the data bucket and the default stack settings
    expiring = _expiring_prefixes(_output_bucket(assembly.template, c.OUT_DATA_BUCKET))
    # Then captured traffic expires after capture_retention_days
    assert expiring.get(c.PREFIX_CAPTURES) == StackConfig.model_validate({}).capture_retention_days, expiring


def test_artifacts_bucket_old_reports_expire_and_models_never_do(assembly: Assembly) -> None:
    # Given the artifacts bucket's lifecycle rules
    expiring = _expiring_prefixes(_output_bucket(assembly.template, c.OUT_ARTIFACTS_BUCKET))
    # Then validation and drift reports expire after report_retention_days
    assert expiring.get("reports/") == StackConfig.model_validate({}).report_retention_days, expiring
    assert c.PREFIX_VALIDATION_REPORTS.startswith("reports/")
    assert c.PREFIX_DRIFT_REPORTS.startswith("reports/")
    # And no rule expires current model artifacts (a registered version must keep its artifact)
    assert not any(c.PREFIX_MODELS.startswith(prefix) for prefix in expiring), expiring


def test_capture_retention_is_a_stack_setting() -> None:
    # Given a stack setting of 30 days for captures
    config = StackConfig.model_validate({"capture_retention_days": 30, "report_retention_days": 400})
    # Then it is kept as given
    assert (config.capture_retention_days, config.report_retention_days) == (30, 400)
    assert json.loads(config.model_dump_json())["capture_retention_days"] == 30
