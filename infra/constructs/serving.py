"""Serving: the inference Lambda behind `POST /v1/models/{name}/predict` and `.../feedback`.

Its own layer (layers/inference: ONNX Runtime, numpy, Powertools, pydantic; no scikit-learn),
least-privilege access (registry GetItem, artifacts models/* read, data captures/* and feedback/*
write), configurable reserved concurrency, and alarms on artifacts that fail verification and on
captured rows that were dropped.
The stack adds the API routes (`routes`) with Api.add_route.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra import constants as c
from infra.nag import acknowledge

if TYPE_CHECKING:
    from infra.stacks.core import StepwiseStack

INFERENCE_HANDLER = "functions.handlers.predict.lambda_handler"


class Serving(Construct):
    """Exposes `function`, `layer`, `routes`, `integrity_alarm` and `capture_dropped_alarm`."""

    routes: tuple[tuple[str, str], ...] = (
        ("POST", "/v1/models/{name}/predict"),
        ("POST", "/v1/models/{name}/feedback"),
    )

    def __init__(
        self,
        scope: StepwiseStack,
        id_: str,
        *,
        reserved_concurrency: int | None,
        memory_mb: int,
        environment: dict[str, str] | None = None,
    ) -> None:
        super().__init__(scope, id_)
        stack = scope
        self.layer = stack.layer(c.INFERENCE_LAYER_ID, "inference", "ONNX Runtime, numpy, Powertools, pydantic")
        self.function = stack.function(
            c.INFERENCE_FUNCTION_ID,
            INFERENCE_HANDLER,
            layers=[self.layer],
            # serving knobs keep functions/models/settings.py defaults unless given here
            # (c.ENV_ALIAS_CACHE_TTL, ENV_MODEL_CACHE_SIZE, ENV_MAX_INSTANCES, ENV_CAPTURE_*)
            environment=environment,
            memory_mb=memory_mb,
            timeout=Duration.seconds(29),  # API Gateway's integration limit
            description="Inference: predictions (ONNX Runtime) and feedback",
        ).function
        if reserved_concurrency is not None:
            cfn = self.function.node.default_child
            assert isinstance(cfn, lambda_.CfnFunction)
            cfn.reserved_concurrent_executions = reserved_concurrency

        # least privilege: read registry items, read model artifacts, write captures and feedback
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["dynamodb:GetItem"], resources=[stack.registry.table.table_arn])
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[stack.artifacts.bucket.arn_for_objects(f"{c.PREFIX_MODELS}*")]
            )
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"],
                resources=[
                    stack.data.bucket.arn_for_objects(f"{c.PREFIX_CAPTURES}*"),
                    stack.data.bucket.arn_for_objects(f"{c.PREFIX_FEEDBACK}*"),
                ],
            )
        )

        for bucket, prefix, why in (
            (stack.artifacts.bucket, c.PREFIX_MODELS, "reads model artifacts (ONNX) under models/ only"),
            (stack.data.bucket, c.PREFIX_CAPTURES, "writes capture objects (new keys) under captures/ only"),
            (stack.data.bucket, c.PREFIX_FEEDBACK, "writes feedback objects (new keys) under feedback/ only"),
        ):
            logical_id = stack.resolve(stack.get_logical_id(bucket.node.default_child))  # type: ignore[arg-type]
            acknowledge(
                self.function.role,  # type: ignore[arg-type]
                f"AwsSolutions::AwsSolutions-IAM5[Resource::<{logical_id}.Arn>/{prefix}*]",
                f"The inference function {why}; object keys are generated per request, so the "
                "grant is a prefix, not a list of objects.",
            )

        # an artifact that fails verification is never served; someone must look
        self.integrity_alarm = cloudwatch.Alarm(
            self,
            "IntegrityAlarm",
            alarm_description="A model artifact failed sha256 verification and was refused (see the inference logs)",
            metric=cloudwatch.Metric(
                namespace="Stepwise",
                metric_name="IntegrityFailures",
                dimensions_map={"service": "stepwise"},
                statistic="Sum",
                period=Duration.minutes(1),
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

        # captured traffic that could not be written is lost to drift checks; someone must look
        self.capture_dropped_alarm = cloudwatch.Alarm(
            self,
            "CaptureDroppedAlarm",
            alarm_description="Captured inference rows were dropped: a capture write failed (see the inference logs)",
            metric=cloudwatch.Metric(
                namespace="Stepwise",
                metric_name="CaptureRowsDropped",
                dimensions_map={"service": "stepwise"},
                statistic="Sum",
                period=Duration.minutes(5),
            ),
            threshold=0,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
