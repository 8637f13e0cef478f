"""The stack's customer-managed KMS key (rotated yearly, retained) and its use by every store.

`Encryption(stack, ...)` makes the key; `encrypt_stack()` adds an aspect that, at synthesis, puts
every bucket, table, SNS topic and log group of the stack under it, so a resource added by any
component (or by an app that extends the stack) is covered without a wiring change
(tests/infra/test_data_safety.py fails for one that is not). One exception, for an AWS reason:
the server-access-log bucket (S3 delivers access logs only to SSE-S3 buckets).

Who may use the key: the key policy lets principals of this account use it only *through* S3,
DynamoDB and SNS (`kms:ViaService`, `kms:CallerAccount`), the pattern of AWS managed keys. The IAM
grants on the buckets, tables and topics stay the only gate: a role that may read an object may
decrypt it, and nobody may call kms:Decrypt directly. CloudWatch Logs may encrypt its log groups
(condition on the log group ARN), and CloudWatch alarms may publish to the encrypted alarm topic
(AWS-managed SNS keys cannot be used by alarms at all). Administering the key is left to the
account (the key policy's default root statement).
"""

from __future__ import annotations

import jsii
from aws_cdk import Aspects, Aws, IAspect, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct, IConstruct

from infra.nag import NIST, acknowledge

ENCRYPTION_ID = "Encryption"
VIA_SERVICES = ("s3", "dynamodb", "sns")
USE_ACTIONS = ["kms:Decrypt", "kms:Encrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]


class Encryption(Construct):
    """Exposes `key` (kms.Key)."""

    def __init__(self, scope: Construct, id_: str, *, stage: str) -> None:
        super().__init__(scope, id_)
        self.key = kms.Key(
            self,
            "Key",
            description="Stepwise: buckets, tables, topics and logs",
            alias=f"alias/stepwise-{stage}",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="UseThroughStepwiseStores",
                principals=[iam.AnyPrincipal()],
                actions=[*USE_ACTIONS, "kms:CreateGrant"],
                resources=["*"],  # in a key policy, "*" is this key
                conditions={
                    "StringEquals": {"kms:CallerAccount": Aws.ACCOUNT_ID},
                    "ForAnyValue:StringEquals": {
                        "kms:ViaService": [f"{service}.{Aws.REGION}.amazonaws.com" for service in VIA_SERVICES]
                    },
                },
            )
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchLogs",
                principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.amazonaws.com")],
                actions=USE_ACTIONS,
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:*"
                        )
                    }
                },
            )
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AlarmsPublishToEncryptedTopics",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            )
        )

    def encrypt_stack(self, stack: Stack, *, except_buckets: dict[s3.IBucket, str]) -> None:
        """Every bucket (but `except_buckets`, bucket -> why), table, topic and log group in `stack`
        under the key, at synthesis."""
        skipped: set[str] = set()
        for bucket, why in except_buckets.items():
            resource = bucket.node.default_child
            assert resource is not None
            skipped.add(resource.node.path)
            acknowledge(resource, f"{NIST}S3DefaultEncryptionKMS", why)
        Aspects.of(stack).add(_EncryptWith(self.key.key_arn, skipped))


@jsii.implements(IAspect)
class _EncryptWith:
    def __init__(self, key_arn: str, skipped: set[str]) -> None:
        self.key_arn, self.skipped = key_arn, skipped  # skipped: construct paths of excepted buckets

    def visit(self, node: IConstruct) -> None:
        key_arn = self.key_arn
        if isinstance(node, s3.CfnBucket):
            if node.node.path in self.skipped:
                return
            node.bucket_encryption = s3.CfnBucket.BucketEncryptionProperty(
                server_side_encryption_configuration=[
                    s3.CfnBucket.ServerSideEncryptionRuleProperty(
                        server_side_encryption_by_default=s3.CfnBucket.ServerSideEncryptionByDefaultProperty(
                            sse_algorithm="aws:kms", kms_master_key_id=key_arn
                        ),
                        bucket_key_enabled=True,  # one data key per bucket and period: fewer KMS calls
                    )
                ]
            )
        elif isinstance(node, dynamodb.CfnTable):
            node.sse_specification = dynamodb.CfnTable.SSESpecificationProperty(
                sse_enabled=True, sse_type="KMS", kms_master_key_id=key_arn
            )
        elif isinstance(node, sns.CfnTopic):
            node.kms_master_key_id = key_arn
        elif isinstance(node, logs.CfnLogGroup):
            node.kms_key_id = key_arn
