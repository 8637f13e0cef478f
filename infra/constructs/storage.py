"""Data store and artifact store: hardened S3 buckets."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.nag import acknowledge


def _hardened_bucket(scope: Construct, id_: str, *, access_logs: s3.IBucket | None, log_prefix: str) -> s3.Bucket:
    return s3.Bucket(
        scope,
        id_,
        versioned=True,
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        server_access_logs_bucket=access_logs,
        server_access_logs_prefix=log_prefix if access_logs else None,
        removal_policy=RemovalPolicy.RETAIN,
        lifecycle_rules=[
            s3.LifecycleRule(
                id="expire-noncurrent",
                noncurrent_version_expiration=Duration.days(90),
                abort_incomplete_multipart_upload_after=Duration.days(7),
            )
        ],
    )


class AccessLogs(Construct):
    """The bucket that receives the other buckets' server access logs."""

    def __init__(self, scope: Construct, id_: str) -> None:
        super().__init__(scope, id_)
        self.bucket = _hardened_bucket(self, "Bucket", access_logs=None, log_prefix="")
        acknowledge(
            self.bucket,
            "AwsSolutions-S1",
            "This is the access-log bucket itself; logging it into itself would loop.",
        )


class DataStore(Construct):
    """raw/ (uploads), validated/, quarantine/, captures/."""

    def __init__(self, scope: Construct, id_: str, *, access_logs: s3.IBucket) -> None:
        super().__init__(scope, id_)
        self.bucket = _hardened_bucket(self, "Bucket", access_logs=access_logs, log_prefix="data/")


class ArtifactStore(Construct):
    """Models, reports, reference profiles."""

    def __init__(self, scope: Construct, id_: str, *, access_logs: s3.IBucket) -> None:
        super().__init__(scope, id_)
        self.bucket = _hardened_bucket(self, "Bucket", access_logs=access_logs, log_prefix="artifacts/")
