"""Data store, artifact store, access logs and audit archive: hardened S3 buckets."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra import constants as c
from infra.nag import acknowledge

REPORTS_PREFIX = "reports/"  # artifacts bucket: validation and drift reports (reports/validation/, reports/drift/)


def hardened_bucket(
    scope: Construct,
    id_: str,
    *,
    access_logs: s3.IBucket | None,
    log_prefix: str,
    extra_rules: list[s3.LifecycleRule] | None = None,
    noncurrent_days: int = 90,
    lifecycle_rules: list[s3.LifecycleRule] | None = None,
    object_ownership: s3.ObjectOwnership = s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
) -> s3.Bucket:
    """A versioned, SSL-only, private, access-logged, retained bucket. Its noncurrent versions
    expire after `noncurrent_days` (and incomplete uploads after 7 days), plus `extra_rules`;
    `lifecycle_rules` replaces those rules outright."""
    return s3.Bucket(
        scope,
        id_,
        versioned=True,
        # SSE-S3 here; the stack's KMS key replaces it for every bucket but the access-log bucket
        # (infra/constructs/encryption.py), which S3 logging can only deliver to under SSE-S3
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=object_ownership,
        server_access_logs_bucket=access_logs,
        server_access_logs_prefix=log_prefix if access_logs else None,
        removal_policy=RemovalPolicy.RETAIN,
        lifecycle_rules=lifecycle_rules
        or [
            s3.LifecycleRule(
                id="expire-noncurrent",
                noncurrent_version_expiration=Duration.days(noncurrent_days),
                abort_incomplete_multipart_upload_after=Duration.days(7),
            ),
            *(extra_rules or []),
        ],
    )


def _expire(rule_id: str, prefix: str, days: int | None) -> list[s3.LifecycleRule]:
    """Current objects under `prefix` expire after `days` (then noncurrent-version expiry removes them)."""
    return [] if days is None else [s3.LifecycleRule(id=rule_id, prefix=prefix, expiration=Duration.days(days))]


class AccessLogs(Construct):
    """The bucket that receives the other buckets' server access logs."""

    def __init__(self, scope: Construct, id_: str) -> None:
        super().__init__(scope, id_)
        self.bucket = hardened_bucket(self, "Bucket", access_logs=None, log_prefix="")
        acknowledge(
            self.bucket,
            "AwsSolutions-S1",
            "This is the access-log bucket itself; logging it into itself would loop.",
        )


class DataStore(Construct):
    """raw/ (uploads), validated/, quarantine/, captures/."""

    def __init__(
        self, scope: Construct, id_: str, *, access_logs: s3.IBucket, capture_expiration_days: int | None = None
    ) -> None:
        super().__init__(scope, id_)
        self.bucket = hardened_bucket(
            self,
            "Bucket",
            access_logs=access_logs,
            log_prefix="data/",
            extra_rules=_expire("expire-captures", c.PREFIX_CAPTURES, capture_expiration_days),
        )


class ArtifactStore(Construct):
    """Models, reports, reference profiles."""

    def __init__(
        self, scope: Construct, id_: str, *, access_logs: s3.IBucket, report_expiration_days: int | None = None
    ) -> None:
        super().__init__(scope, id_)
        self.bucket = hardened_bucket(
            self,
            "Bucket",
            access_logs=access_logs,
            log_prefix="artifacts/",
            extra_rules=_expire("expire-reports", REPORTS_PREFIX, report_expiration_days),
        )


class AuditArchive(Construct):
    """The audit trail's daily exports, locked (Object Lock, governance mode) for `retention_days`."""

    def __init__(self, scope: Construct, id_: str, *, access_logs: s3.IBucket, retention_days: int) -> None:
        super().__init__(scope, id_)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            versioned=True,
            object_lock_enabled=True,
            object_lock_default_retention=s3.ObjectLockRetention.governance(Duration.days(retention_days)),
            encryption=s3.BucketEncryption.S3_MANAGED,  # then the stack's KMS key (infra/constructs/encryption.py)
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix="audit-archive/",
            removal_policy=RemovalPolicy.RETAIN,
        )
