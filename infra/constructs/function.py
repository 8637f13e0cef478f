"""One Lambda function of the shared functions code asset, with our defaults:
latest Python runtime, configured architecture, X-Ray, JSON logs to a retained log group."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.nag import acknowledge

RUNTIME = lambda_.Runtime.PYTHON_3_14
RUNTIME_VERSION = "3.14"

ARCHITECTURES = {"arm64": lambda_.Architecture.ARM_64, "x86_64": lambda_.Architecture.X86_64}


class ObservedFunction(Construct):
    """What every function of ours shares, zip or image: its own retained log group, a role that
    may write only to it (no AWS-managed policy), X-Ray, JSON logs, Powertools' names."""

    def __init__(self, scope: Construct, id_: str, *, log_retention: logs.RetentionDays) -> None:
        super().__init__(scope, id_)
        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=RemovalPolicy.RETAIN)
        self.role = iam.Role(
            self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=f"{id_} Lambda"
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[self.log_group.log_group_arn]
            )
        )
        acknowledge(
            self.role,
            "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
            "X-Ray's PutTraceSegments and PutTelemetryRecords support no resource-level permissions.",
        )

    def settings(self, environment: Mapping[str, str], description: str) -> dict[str, Any]:
        """Keyword arguments every lambda_.Function / DockerImageFunction of ours takes."""
        return {
            "environment": {
                "POWERTOOLS_SERVICE_NAME": "stepwise",
                "POWERTOOLS_METRICS_NAMESPACE": "Stepwise",
                **environment,
            },
            "tracing": lambda_.Tracing.ACTIVE,
            "logging_format": lambda_.LoggingFormat.JSON,
            "application_log_level_v2": lambda_.ApplicationLogLevel.INFO,
            "system_log_level_v2": lambda_.SystemLogLevel.WARN,
            "log_group": self.log_group,
            "role": self.role,
            "description": description,
        }


class StepwiseFunction(ObservedFunction):
    """A zip function of the shared functions code asset, on the newest Python runtime."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        code: lambda_.Code,
        handler: str,
        layers: Sequence[lambda_.ILayerVersion],
        environment: Mapping[str, str],
        architecture: str,
        log_retention_days: int,
        memory_mb: int = 256,
        timeout: Duration | None = None,
        description: str = "",
    ) -> None:
        super().__init__(scope, id_, log_retention=_retention(log_retention_days))
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=RUNTIME,
            architecture=ARCHITECTURES[architecture],
            code=code,
            handler=handler,
            layers=list(layers),
            memory_size=memory_mb,
            timeout=timeout or Duration.seconds(30),
            **self.settings(environment, description),
        )


def dead_letter_async_invokes(
    scope: Construct, function: lambda_.IFunction, *, max_event_age: Duration, retry_attempts: int
) -> sqs.Queue:
    """Asynchronous invokes of `function` (S3, schedules, async API calls): retried, bounded in age,
    then recorded in a retained, encrypted, SSL-only queue (`<scope>/DeadLetters`)."""
    queue = sqs.Queue(
        scope,
        "DeadLetters",
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=Duration.days(14),
        removal_policy=RemovalPolicy.RETAIN,
    )
    function.configure_async_invoke(
        max_event_age=max_event_age,
        retry_attempts=retry_attempts,
        on_failure=destinations.SqsDestination(queue),
    )
    return queue


_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
}


def _retention(days: int) -> logs.RetentionDays:
    """The shortest supported retention that keeps logs at least `days` days."""
    for value in sorted(_RETENTION):
        if value >= days:
            return _RETENTION[value]
    return logs.RetentionDays.ONE_YEAR
