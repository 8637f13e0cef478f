"""The grant helpers every component uses: explicit actions on one prefix or one table, each
wildcard acknowledged for cdk-nag under the name cdk-nag gives it (`<LogicalId.Arn>/prefix*` for a
resource of the policy's own stack, `<export name>/prefix*` for a store of the stores stack).

One module for them so components import grants, never each other or the stack.
"""

from __future__ import annotations

from typing import Protocol

from aws_cdk import ArnFormat, CfnResource, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from constructs import IConstruct

from infra import constants as c
from infra.nag import acknowledge


class StartableWorkflow(Protocol):
    """What a starter of a workflow needs of it (infra/constructs/lifecycle.py Lifecycle)."""

    @property
    def state_machine(self) -> sfn.StateMachine: ...
    @property
    def executions_arn(self) -> str: ...
    @property
    def executions_nag_id(self) -> str: ...


def logical_arn(resource: IConstruct, within: IConstruct) -> str:
    """How cdk-nag names `resource`'s ARN in a finding on a policy of `within`'s stack: <LogicalId.Arn>
    when the resource is in that stack; when it is in another one, the name of the export the policy
    imports the ARN by (cdk-nag flattens {"Fn::ImportValue": name} to the name). The export is the
    one CDK makes for the cross-stack reference itself (same scope, same name), so nothing is added."""
    owner, user = Stack.of(resource), Stack.of(within)
    cfn = resource.node.default_child
    assert isinstance(cfn, CfnResource), f"{resource.node.path} has no CloudFormation resource of its own"
    if owner is user:
        return f"<{owner.resolve(owner.get_logical_id(cfn))}.Arn>"
    imported = user.resolve(owner.export_value(cfn.get_att("Arn")))
    return str(imported["Fn::ImportValue"])


def allow_objects(fn: lambda_.IFunction, bucket: s3.IBucket, prefix: str, actions: list[str], why: str) -> None:
    """Explicit object actions under one prefix (no wildcard actions), acknowledged for cdk-nag."""
    fn.add_to_role_policy(iam.PolicyStatement(actions=actions, resources=[bucket.arn_for_objects(f"{prefix}*")]))
    assert fn.role is not None
    acknowledge(
        fn.role,
        f"AwsSolutions::AwsSolutions-IAM5[Resource::{logical_arn(bucket, fn)}/{prefix}*]",
        f"Objects under {prefix} only ({why}); object keys are per dataset, model and run.",
    )


def allow_table(fn: lambda_.IFunction, table: dynamodb.ITable, actions: list[str], *, index: bool = False) -> None:
    """Explicit item actions on one table (and its indexes for Query when `index`)."""
    resources = [table.table_arn]
    if index:
        resources.append(f"{table.table_arn}/index/*")
        assert fn.role is not None
        acknowledge(
            fn.role,
            f"AwsSolutions::AwsSolutions-IAM5[Resource::{logical_arn(table, fn)}/index/*]",
            "Query on the table's own secondary indexes (gsi1).",
        )
    fn.add_to_role_policy(iam.PolicyStatement(actions=actions, resources=resources))


def synchronous_only(fn: lambda_.IFunction) -> None:
    """A function invoked only synchronously needs no dead-letter queue (acknowledged)."""
    acknowledge(
        fn,
        "Serverless::Serverless-LambdaDLQ",
        "Invoked synchronously (API Gateway or Step Functions); the caller sees and retries errors, "
        "so there is no asynchronous event to dead-letter.",
    )


def grant_health_probes(fn: lambda_.IFunction, *, buckets: list[s3.IBucket], tables: list[dynamodb.ITable]) -> None:
    """HeadBucket (s3:ListBucket on the bucket) and DescribeTable on the tables, nothing more."""
    fn.add_to_role_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[b.bucket_arn for b in buckets]))
    fn.add_to_role_policy(
        iam.PolicyStatement(actions=["dynamodb:DescribeTable"], resources=[t.table_arn for t in tables])
    )


def allow_workflow_start(fn: lambda_.Function, workflow: StartableWorkflow) -> None:
    """A function that starts the lifecycle workflow: its ARN in the environment, and the grant."""
    machine = workflow.state_machine
    fn.add_environment(c.ENV_LIFECYCLE_SM_ARN, machine.state_machine_arn)
    machine.grant_start_execution(fn)
    fn.add_to_role_policy(
        iam.PolicyStatement(actions=["states:DescribeExecution"], resources=[workflow.executions_arn])
    )
    assert fn.role is not None
    acknowledge(
        fn.role,
        f"AwsSolutions::AwsSolutions-IAM5[Resource::{workflow.executions_nag_id}]",
        "DescribeExecution on the lifecycle workflow's executions (one per run), to tell a new start from a "
        "repeated one.",
    )


def _leading_keys(*prefixes: str) -> dict[str, dict[str, list[str]]]:
    return {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{p}*" for p in prefixes]}}


def grant_release_access(
    fn: lambda_.IFunction,
    *,
    registry: dynamodb.ITable,
    metadata: dynamodb.ITable,
    artifacts: s3.IBucket | None = None,
    write_registry: bool = True,
) -> None:
    """What approval/release code needs: registry reads and (`write_registry`) status/alias updates;
    metadata reads, approval items put/updated, audit items put only (no UpdateItem/DeleteItem
    reach AUDIT#)."""
    registry_actions = ["dynamodb:GetItem", "dynamodb:Query"] + (["dynamodb:UpdateItem"] if write_registry else [])
    statements = [
        iam.PolicyStatement(actions=registry_actions, resources=[registry.table_arn]),
        iam.PolicyStatement(
            actions=["dynamodb:GetItem", "dynamodb:Query"],
            resources=[metadata.table_arn, f"{metadata.table_arn}/index/*"],
        ),
        iam.PolicyStatement(
            actions=["dynamodb:PutItem"],
            resources=[metadata.table_arn],
            conditions=_leading_keys("AUDIT#", "APPROVAL#"),
        ),
        iam.PolicyStatement(
            actions=["dynamodb:UpdateItem"],
            resources=[metadata.table_arn],
            conditions=_leading_keys("APPROVAL#"),
        ),
    ]
    if artifacts is not None:  # promote, canary and rollback verify the version's ONNX sha256
        statements.append(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[artifacts.arn_for_objects("models/*")])
        )
    for statement in statements:
        fn.add_to_role_policy(statement)
    role = fn.role
    if role is not None:
        acknowledge(
            role,
            f"AwsSolutions::AwsSolutions-IAM5[Resource::{logical_arn(metadata, fn)}/index/*]",
            "Queries the metadata table's gsi1 (pending approvals, audit by time).",
        )
        if artifacts is not None:
            acknowledge(
                role,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{logical_arn(artifacts, fn)}/models/*]",
                "Reads model artifacts to verify their sha256 before a release step serves them.",
            )


def grant_canary_metrics(fn: lambda_.IFunction) -> None:
    fn.add_to_role_policy(iam.PolicyStatement(actions=["cloudwatch:GetMetricData"], resources=["*"]))
    policy = fn.role.node.try_find_child("DefaultPolicy") if fn.role is not None else None
    if policy is not None:  # the finding is on this policy; its reason names both kinds of action
        acknowledge(
            policy,
            "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
            "X-Ray's PutTraceSegments/PutTelemetryRecords and CloudWatch GetMetricData (the canary check reads "
            "the canary's metrics) support no resource-level permissions.",
        )


def model_alarm_prefix(scope: IConstruct) -> str:
    """The stack's prefix for per-model alarm names (functions/logic/model_alarms.py)."""
    return f"{Stack.of(scope).stack_name}-model-"


def _grant_prefixed_alarms(
    fn: lambda_.IFunction, *, prefix: str, actions: list[str], env_prefix: str, topic_arn: str, why: str
) -> None:
    """`actions` on CloudWatch alarms named with `prefix` only (the alarm ARN carries the name),
    the prefix (as `env_prefix`) and `topic_arn` in the function's environment, and the cdk-nag
    acknowledgement of the name wildcard (`why`)."""
    fn.add_to_role_policy(
        iam.PolicyStatement(
            actions=actions,
            resources=[
                Stack.of(fn).format_arn(
                    service="cloudwatch",
                    resource="alarm",
                    resource_name=f"{prefix}*",
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
            ],
        )
    )
    if isinstance(fn, lambda_.Function):
        fn.add_environment(env_prefix, prefix)
        fn.add_environment(c.ENV_ALARM_TOPIC_ARN, topic_arn)
    assert fn.role is not None
    acknowledge(
        fn.role,
        "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:cloudwatch:<AWS::Region>:<AWS::AccountId>:"
        f"alarm:{prefix}*]",
        why,
    )


def grant_model_alarms(fn: lambda_.IFunction, *, topic_arn: str) -> None:
    """Create, read and delete CloudWatch alarms named with the stack's model-alarm prefix only
    (the alarm ARN carries the name), notifying `topic_arn`; the prefix and topic go to the
    function's environment."""
    _grant_prefixed_alarms(
        fn,
        prefix=model_alarm_prefix(fn),
        actions=["cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"],
        env_prefix=c.ENV_MODEL_ALARM_PREFIX,
        topic_arn=topic_arn,
        why="Per-model alarms: only alarm names under the stack's model-alarm prefix; the model names exist only "
        "at run time.",
    )


def view_alarm_prefix(scope: IConstruct) -> str:
    """The stack's prefix for per-view alarm names (functions/logic/view_alarms.py)."""
    return f"{Stack.of(scope).stack_name}-view-"


def grant_view_alarms(fn: lambda_.Function, *, topic_arn: str) -> None:
    """Create and read CloudWatch alarms named with the stack's view-alarm prefix only (the alarm ARN
    carries the name), notifying `topic_arn`; the prefix and topic go to the function's environment.
    Views are never deleted, so neither are their alarms."""
    _grant_prefixed_alarms(
        fn,
        prefix=view_alarm_prefix(fn),
        actions=["cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms"],
        env_prefix=c.ENV_VIEW_ALARM_PREFIX,
        topic_arn=topic_arn,
        why="Per-view alarms: only alarm names under the stack's view-alarm prefix; the view names exist only at "
        "run time.",
    )


def grant_decisions(fn: lambda_.IFunction, state_machine: sfn.IStateMachine) -> None:
    """The API answers waiting approval tasks of the lifecycle workflow (and nothing else)."""
    fn.add_to_role_policy(
        iam.PolicyStatement(
            actions=["states:SendTaskSuccess", "states:SendTaskFailure"],
            resources=[state_machine.state_machine_arn],
        )
    )
