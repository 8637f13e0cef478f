"""Serving: the inference Lambda behind `POST /v1/models/{name}/predict` and `.../feedback`.

Its own layer (layers/inference: ONNX Runtime, numpy, Powertools, pydantic; no scikit-learn),
least-privilege access (registry GetItem, online feature store GetItem/BatchGetItem for
prediction-time lookups, artifacts models/* read, data captures/* and feedback/* write),
configurable reserved concurrency, and alarms on artifacts that fail verification and on captured
rows that were dropped.
It adds its routes to the API (`routes`), and with prediction API clients, their usage plan.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra import constants as c
from infra.constructs.api import Api
from infra.constructs.function import FunctionFactory
from infra.grants import logical_arn, synchronous_only
from infra.nag import acknowledge

INFERENCE_HANDLER = "functions.handlers.predict.lambda_handler"


class Serving(Construct):
    """Exposes `function`, `layer`, `routes`, `integrity_alarm` and `capture_dropped_alarm`.

    `api_clients`: prediction clients that also need an API key (empty: none), each with the
    `client_*` throttle and daily quota (the stack settings prediction_client_*)."""

    routes: tuple[tuple[str, str], ...] = (
        ("POST", "/v1/models/{name}/predict"),
        ("POST", "/v1/models/{name}/feedback"),
    )

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        functions: FunctionFactory,
        layer: lambda_.ILayerVersion,
        api: Api,
        registry_table: dynamodb.ITable,
        online_table: dynamodb.ITable,
        artifacts_bucket: s3.IBucket,
        data_bucket: s3.IBucket,
        reserved_concurrency: int | None,
        memory_mb: int,
        environment: dict[str, str] | None = None,
        api_clients: Sequence[str],
        client_rate: float,
        client_burst: int,
        client_quota_per_day: int,
    ) -> None:
        super().__init__(scope, id_)
        self.layer = layer
        self.function = functions(
            c.INFERENCE_FUNCTION_ID,
            INFERENCE_HANDLER,
            layers=[self.layer],
            # serving knobs keep functions/models/settings.py defaults unless given here
            # (c.ENV_ALIAS_CACHE_TTL, ENV_MODEL_CACHE_SIZE, ENV_MAX_INSTANCES, ENV_CAPTURE_*)
            environment={**(environment or {}), c.ENV_ONLINE_TABLE: online_table.table_name},
            memory_mb=memory_mb,
            timeout=Duration.seconds(29),  # API Gateway's integration limit
            description="Inference: predictions (ONNX Runtime) and feedback",
        )
        if reserved_concurrency is not None:
            cfn = self.function.node.default_child
            assert isinstance(cfn, lambda_.CfnFunction)
            cfn.reserved_concurrent_executions = reserved_concurrency

        # least privilege: read registry items, read model artifacts, write captures and feedback
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["dynamodb:GetItem"], resources=[registry_table.table_arn])
        )
        # prediction-time feature lookups: reads of the online store's items, that table only (its
        # KMS key admits DynamoDB's use on the caller's behalf, as for the other tables)
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:BatchGetItem"], resources=[online_table.table_arn]
            )
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[artifacts_bucket.arn_for_objects(f"{c.PREFIX_MODELS}*")]
            )
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"],
                resources=[
                    data_bucket.arn_for_objects(f"{c.PREFIX_CAPTURES}*"),
                    data_bucket.arn_for_objects(f"{c.PREFIX_FEEDBACK}*"),
                ],
            )
        )

        for bucket, prefix, why in (
            (artifacts_bucket, c.PREFIX_MODELS, "reads model artifacts (ONNX) under models/ only"),
            (data_bucket, c.PREFIX_CAPTURES, "writes capture objects (new keys) under captures/ only"),
            (data_bucket, c.PREFIX_FEEDBACK, "writes feedback objects (new keys) under feedback/ only"),
        ):
            acknowledge(
                self.function.role,  # type: ignore[arg-type]
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{logical_arn(bucket, self)}/{prefix}*]",
                f"The inference function {why}; object keys are generated per request, so the "
                "grant is a prefix, not a list of objects.",
            )

        # an artifact that fails verification is never served; someone must look
        self.integrity_alarm = self._service_alarm(
            "IntegrityAlarm",
            "A model artifact failed sha256 verification and was refused (see the inference logs)",
            "IntegrityFailures",
            period=Duration.minutes(1),
            threshold=1,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        )
        # captured traffic that could not be written is lost to drift checks; someone must look
        self.capture_dropped_alarm = self._service_alarm(
            "CaptureDroppedAlarm",
            "Captured inference rows were dropped: a capture write failed (see the inference logs)",
            "CaptureRowsDropped",
            period=Duration.minutes(5),
            threshold=0,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        )

        synchronous_only(self.function)
        prediction_methods = [
            api.add_route(method, path, self.function, service=True, api_key=bool(api_clients))
            for method, path in self.routes
        ]
        if api_clients:
            api.add_clients(
                api_clients,
                rate=client_rate,
                burst=client_burst,
                quota_per_day=client_quota_per_day,
                methods=prediction_methods,
            )

    def _service_alarm(
        self,
        id_: str,
        description: str,
        metric_name: str,
        *,
        period: Duration,
        threshold: float,
        comparison: cloudwatch.ComparisonOperator,
    ) -> cloudwatch.Alarm:
        """An alarm on the Sum of a metric the inference function emits with the service dimension
        only (missing data is not breaching: no datapoint means nothing happened)."""
        return cloudwatch.Alarm(
            self,
            id_,
            alarm_description=description,
            metric=cloudwatch.Metric(
                namespace="Stepwise",
                metric_name=metric_name,
                dimensions_map={"service": "stepwise"},
                statistic="Sum",
                period=period,
            ),
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=comparison,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
