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
from layers.build.builder import build_layer
from layers.build.packaging import LAYER_METADATA

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
        super().__init__(scope, id_, log_retention=log_retention(log_retention_days))
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


class FunctionFactory:
    """Makes the stack's zip functions in one scope (so their logical ids do not depend on which
    component asks): the shared functions code asset, the default layers, the base environment
    (stack version, code version, store names), the architecture and the log retention.

    Components take a factory as a prop instead of reaching into the stack; `image_settings`
    gives the same defaults to the training image's functions.
    """

    def __init__(
        self,
        scope: Construct,
        *,
        code: lambda_.Code,
        layers: Sequence[lambda_.ILayerVersion],
        environment: Mapping[str, str],
        architecture: str,
        log_retention_days: int,
    ) -> None:
        self.scope = scope
        self.code = code
        self.layers = list(layers)
        self.environment = dict(environment)
        self.architecture = architecture
        self.log_retention_days = log_retention_days

    @property
    def log_retention(self) -> logs.RetentionDays:
        return log_retention(self.log_retention_days)

    def __call__(
        self,
        id_: str,
        handler: str,
        *,
        layers: Sequence[lambda_.ILayerVersion] | None = None,
        environment: Mapping[str, str] | None = None,
        memory_mb: int = 256,
        timeout: Duration | None = None,
        description: str = "",
    ) -> lambda_.Function:
        return StepwiseFunction(
            self.scope,
            id_,
            code=self.code,
            handler=handler,
            layers=list(layers) if layers is not None else self.layers,
            environment={**self.environment, **(environment or {})},
            architecture=self.architecture,
            log_retention_days=self.log_retention_days,
            memory_mb=memory_mb,
            timeout=timeout,
            description=description,
        ).function


def stepwise_layer(
    scope: Construct, id_: str, *, name: str, description: str, architecture: str
) -> lambda_.LayerVersion:
    """layers/<name> built (or reused from layers/.build) with pip for the configured architecture.

    A layer with no wheel for that architecture fails synthesis with a LayerBuildError naming
    the packages and whether the other architecture would do.
    """
    layer = lambda_.LayerVersion(
        scope,
        id_,
        code=lambda_.Code.from_asset(str(build_layer(name, architecture, RUNTIME_VERSION))),
        compatible_runtimes=[RUNTIME],
        compatible_architectures=[ARCHITECTURES[architecture]],
        description=description,
    )
    layer.node.add_metadata(LAYER_METADATA, name)  # which layers/<name> (tests/infra/test_packaging.py)
    return layer


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


def log_retention(days: int) -> logs.RetentionDays:
    """The shortest supported retention that keeps logs at least `days` days."""
    for value in sorted(_RETENTION):
        if value >= days:
            return _RETENTION[value]
    return logs.RetentionDays.ONE_YEAR
