"""Governance: lineage/audit/retirement routes and their grants, the artifacts bucket's rule for
retired artifacts, the daily export to the audit archive (Object Lock, governance mode; a store,
infra/constructs/storage.py AuditArchive), and the guard that keeps audit items append-only.

Audit items stay in the metadata table (pk=AUDIT#<target>), written in the same transaction as the
change they record. No function may update or delete them: an explicit Deny of UpdateItem,
DeleteItem and BatchWriteItem on items whose partition key starts with AUDIT# is attached to every
role in the stack through one customer-managed policy (`AppendOnlyAudit`, attached by an Aspect, so
roles added later are covered too). An explicit Deny overrides any Allow, including table-wide
UpdateItem grants other components need for their own items; the roles' own policies stay Allow-only.
"""

from __future__ import annotations

import jsii
from aws_cdk import Aspects, CfnOutput, Duration, IAspect, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct, IConstruct

from infra import constants as c
from infra.constructs.api import Api
from infra.constructs.function import FunctionFactory, dead_letter_async_invokes
from infra.grants import logical_arn
from infra.nag import acknowledge

AUDIT_EXPORT_HANDLER = "functions.handlers.audit_export.lambda_handler"
AUDIT_LEADING_KEY = "AUDIT#*"
AUDIT_MUTATIONS = ["dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"]
GOVERNANCE_ROUTES = (
    ("GET", "/v1/audit"),
    ("GET", "/v1/explain/{request_id}"),
    ("GET", "/v1/models/{name}/versions/{version}/lineage"),
    ("GET", "/v1/models/{name}/versions/{version}/card"),
    ("POST", "/v1/models/{name}/versions/{version}/retire"),
    ("POST", "/v1/models/{name}/versions/{version}/restore"),
    ("POST", "/v1/audit/export"),
)


def audit_deny_statement(table: dynamodb.ITable) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        effect=iam.Effect.DENY,
        actions=AUDIT_MUTATIONS,
        resources=[table.table_arn],
        conditions={"ForAnyValue:StringLike": {"dynamodb:LeadingKeys": [AUDIT_LEADING_KEY]}},
    )


@jsii.implements(IAspect)
class AppendOnlyAudit:
    """Every IAM role in scope is attached to the customer-managed policy holding the Deny."""

    def __init__(self, policy: iam.ManagedPolicy) -> None:
        self.policy = policy

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, iam.Role):
            self.policy.attach_to_role(node)


class Governance(Construct):
    """Exposes `archive` (audit archive bucket), `export_function`, `rule` (daily export), `dead_letters`."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        functions: FunctionFactory,
        layer: lambda_.ILayerVersion,
        api: Api,
        api_function: lambda_.Function,
        audit_archive_bucket: s3.IBucket,
        data_bucket: s3.IBucket,
        artifacts_bucket: s3.Bucket,
        registry_table: dynamodb.ITable,
        metadata_table: dynamodb.ITable,
        register_function: lambda_.Function | None = None,
        retired_transition_days: int = 30,
        export_schedule: events.Schedule | None = None,
    ) -> None:
        super().__init__(scope, id_)
        stack = Stack.of(self)
        self._data, self._artifacts = data_bucket, artifacts_bucket
        self._registry, self._metadata = registry_table, metadata_table
        self._routes(api, api_function)
        if register_function is not None:
            self._registration_cards(register_function)
        artifacts_bucket.add_lifecycle_rule(
            id="retired-artifacts-colder",
            tag_filters={c.RETIRED_TAG: "true"},
            transitions=[
                s3.Transition(
                    storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,  # still readable: restore, explain
                    transition_after=Duration.days(retired_transition_days),
                )
            ],
        )
        self.archive = audit_archive_bucket
        self.export_function = functions(
            c.AUDIT_EXPORT_FUNCTION_ID,
            AUDIT_EXPORT_HANDLER,
            layers=[layer],
            memory_mb=1024,
            timeout=Duration.minutes(5),
            environment={c.ENV_AUDIT_ARCHIVE_BUCKET: self.archive.bucket_name},
            description="Governance: daily export of the audit trail to the Object Lock archive (Parquet)",
        )
        # asynchronous invokes (the schedule): retried, then recorded in a queue
        self.dead_letters = dead_letter_async_invokes(
            self, self.export_function, max_event_age=Duration.hours(6), retry_attempts=2
        )
        self.export_function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:Query"],
                resources=[f"{metadata_table.table_arn}/index/*"],
            )
        )
        self.export_function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"], resources=[self.archive.arn_for_objects(f"{c.PREFIX_AUDIT_EXPORT}*")]
            )
        )
        self.export_function.add_to_role_policy(  # Powertools idempotency records of exported days only
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
                resources=[metadata_table.table_arn],
                conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["idempotency#audit-export"]}},
            )
        )
        role = self.export_function.role
        assert role is not None
        acknowledge(
            role,
            f"AwsSolutions::AwsSolutions-IAM5[Resource::{logical_arn(metadata_table, self)}/index/*]",
            "Queries the metadata table's gsi1 (audit events by time) and nothing else.",
        )
        acknowledge(
            role,
            f"AwsSolutions::AwsSolutions-IAM5[Resource::{logical_arn(self.archive, self)}/{c.PREFIX_AUDIT_EXPORT}*]",
            "Writes audit exports under audit/ (one object per day and export) in the Object Lock archive.",
        )
        self.rule = events.Rule(
            self,
            "DailyExport",
            description="Daily export of yesterday's audit events to the audit archive (Parquet, Object Lock)",
            schedule=export_schedule or events.Schedule.cron(minute="15", hour="0"),
            targets=[
                targets.LambdaFunction(self.export_function, retry_attempts=2, dead_letter_queue=self.dead_letters)
            ],
        )
        acknowledge(
            self.dead_letters,
            "AwsSolutions::AwsSolutions-SQS3",
            "This queue is the dead-letter destination itself (export schedule target and async invokes).",
        )
        acknowledge(
            self.dead_letters,
            "Serverless::Serverless-SQSRedrivePolicy",
            "This queue is the terminal dead-letter queue; its messages are inspected, not redriven.",
        )
        acknowledge(
            self.export_function,
            "Serverless::Serverless-LambdaDLQ",
            "Failed asynchronous invocations go to the SQS on-failure destination (EventInvokeConfig).",
        )
        # one customer-managed policy with the Deny, attached to every role (the grants stay Allow-only)
        self.append_only_audit = iam.ManagedPolicy(
            self,
            "AppendOnlyAudit",
            description="Audit events are append-only: no UpdateItem/DeleteItem/BatchWriteItem on AUDIT# items",
            statements=[audit_deny_statement(metadata_table)],
        )
        Aspects.of(stack).add(AppendOnlyAudit(self.append_only_audit))
        # on demand: the API's POST /v1/audit/export invokes the export function (it, not its versions)
        api_function.add_environment(c.ENV_AUDIT_EXPORT_FUNCTION, self.export_function.function_name)
        api_function.add_to_role_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[self.export_function.function_arn])
        )
        CfnOutput(stack, c.OUT_AUDIT_ARCHIVE_BUCKET, value=self.archive.bucket_name)
        CfnOutput(stack, c.OUT_AUDIT_EXPORT_FUNCTION, value=self.export_function.function_name)

    def _registration_cards(self, fn: lambda_.Function) -> None:
        """Registration writes the version's model card: it reads the lineage (audit events by
        query, validation report) and writes cards/.../card.{md,html}."""
        assert fn.role is not None
        fn.add_to_role_policy(iam.PolicyStatement(actions=["dynamodb:Query"], resources=[self._metadata.table_arn]))
        for bucket_prefix, actions, why in (
            (c.PREFIX_VALIDATION_REPORTS, ["s3:GetObject"], "reads validation reports"),
            (c.PREFIX_CARDS, ["s3:PutObject"], "writes model cards"),
        ):
            fn.add_to_role_policy(
                iam.PolicyStatement(actions=actions, resources=[self._artifacts.arn_for_objects(f"{bucket_prefix}*")])
            )
            artifacts_arn = logical_arn(self._artifacts, self)
            acknowledge(
                fn.role,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{artifacts_arn}/{bucket_prefix}*]",
                f"Registration {why} under {bucket_prefix} only.",
            )

    def _routes(self, api: Api, fn: lambda_.Function) -> None:
        """Lineage and explain read captures, reports and model artifacts; retire tags artifacts and
        writes cards; restore registers a version (registry Put/Update)."""
        data, artifacts = self._data, self._artifacts
        fn.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[data.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{c.PREFIX_CAPTURES}*"]}},
            )
        )
        grants = (
            (data, c.PREFIX_CAPTURES, ["s3:GetObject"], "reads capture lines to find a request id (explain)"),
            (artifacts, c.PREFIX_VALIDATION_REPORTS, ["s3:GetObject"], "reads validation reports"),
            (
                artifacts,
                c.PREFIX_MODELS,
                ["s3:GetObject", "s3:PutObjectTagging"],
                "verifies and tags retired artifacts",
            ),
            (artifacts, c.PREFIX_CARDS, ["s3:PutObject"], "writes model cards"),
        )
        for bucket, prefix, actions, why in grants:
            fn.add_to_role_policy(
                iam.PolicyStatement(actions=actions, resources=[bucket.arn_for_objects(f"{prefix}*")])
            )
            assert fn.role is not None
            acknowledge(
                fn.role,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{logical_arn(bucket, self)}/{prefix}*]",
                f"The API {why} under {prefix} only.",
            )
        fn.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem"],
                resources=[self._registry.table_arn],
            )
        )
        for method, path in GOVERNANCE_ROUTES:
            api.add_route(method, path, fn)
