"""Monitoring: the drift Lambda on an hourly EventBridge schedule (every model with a production
version), its least-privilege grants, the on-demand route, alarms to an SNS topic, a dashboard.

The drift function uses the stack's data layer (layers/data: pyarrow, numpy, Powertools, pydantic),
built once and shared with ingestion and governance. Alarms: any model drifted (DriftedModels), any
performance drop on labelled traffic (PerformanceDrops), drift-check errors, a canary rolled back by
the release workflow (CanaryRollbacks), inference errors and inference p99 latency. Per-model drift
share is on the dashboard (a SEARCH over the Model dimension); per-model alarms need the model
names, which only exist at run time.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra import constants as c
from infra.constructs.api import Api
from infra.constructs.function import FunctionFactory, dead_letter_async_invokes
from infra.grants import StartableWorkflow, allow_workflow_start, logical_arn
from infra.nag import acknowledge

DRIFT_HANDLER = "functions.handlers.drift.lambda_handler"
DRIFT_MEMORY_MB = 1769  # one full vCPU; memory use is the profile plus one column chunk
DRIFT_TIMEOUT = Duration.minutes(15)
DRIFT_ROUTES = (
    ("POST", "/v1/models/{name}/drift"),
    ("PUT", "/v1/models/{name}/drift/settings"),
    ("GET", "/v1/models/{name}/drift/settings"),
)
NAMESPACE = "Stepwise"
SERVICE_DIMENSION = {"service": "stepwise"}
HOURLY = Duration.hours(1)


class Monitoring(Construct):
    """Exposes `function`, `rule`, `dead_letters`, `topic`, `alarms` (name -> Alarm), `dashboard`."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        functions: FunctionFactory,
        layer: lambda_.ILayerVersion,
        data_bucket: s3.IBucket,
        artifacts_bucket: s3.IBucket,
        registry_table: dynamodb.ITable,
        metadata_table: dynamodb.ITable,
        lifecycle: StartableWorkflow | None = None,
        api: Api | None = None,
        api_function: lambda_.Function | None = None,
        serving_function: lambda_.IFunction | None = None,
        schedule: Duration = HOURLY,
        window_hours: float = 1.0,
        alarm_topic: sns.ITopic | None = None,
        memory_mb: int = DRIFT_MEMORY_MB,
    ) -> None:
        super().__init__(scope, id_)
        self._data, self._artifacts = data_bucket, artifacts_bucket
        self._registry, self._metadata = registry_table, metadata_table
        self.function = functions(
            c.DRIFT_FUNCTION_ID,
            DRIFT_HANDLER,
            layers=[layer],
            memory_mb=memory_mb,
            timeout=DRIFT_TIMEOUT,
            description="Monitoring: compact captures, drift check, reports, retraining decision",
        )
        self._grant(lifecycle)

        # asynchronous invokes (schedule, API route): retried, then recorded in a queue
        self.dead_letters = dead_letter_async_invokes(
            self, self.function, max_event_age=Duration.hours(2), retry_attempts=1
        )
        self.rule = events.Rule(
            self,
            "Schedule",
            description="Hourly drift check of every model with a production version",
            schedule=events.Schedule.rate(schedule),
            targets=[
                targets.LambdaFunction(
                    self.function,
                    event=events.RuleTargetInput.from_object(
                        # the scheduled time names the checks (the drift handler's idempotency key)
                        {"all_models": True, "window_hours": window_hours, "time": events.EventField.time}
                    ),
                    retry_attempts=2,
                    dead_letter_queue=self.dead_letters,
                )
            ],
        )
        if api is not None and api_function is not None:
            api_function.add_environment(c.ENV_DRIFT_FUNCTION, self.function.function_name)
            api_function.add_to_role_policy(  # the function itself, not its versions (grant_invoke adds :*)
                iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[self.function.function_arn])
            )
            api_function.add_to_role_policy(  # drift settings items; models are read from the registry
                iam.PolicyStatement(
                    actions=["dynamodb:GetItem", "dynamodb:PutItem"], resources=[metadata_table.table_arn]
                )
            )
            api_function.add_to_role_policy(
                iam.PolicyStatement(actions=["dynamodb:GetItem"], resources=[registry_table.table_arn])
            )
            for method, path in DRIFT_ROUTES:
                api.add_route(method, path, api_function)

        self.topic = alarm_topic or sns.Topic(
            self,
            "AlarmTopic",
            display_name="Stepwise monitoring alarms",
            # encrypted with the stack's KMS key (infra/constructs/encryption.py)
            enforce_ssl=True,
        )
        self.alarms = self._alarms(serving_function)
        for alarm in self.alarms.values():
            alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
        self.dashboard = self._dashboard(serving_function)
        stack = Stack.of(self)
        CfnOutput(stack, c.OUT_DRIFT_FUNCTION, value=self.function.function_name)
        CfnOutput(stack, c.OUT_ALARM_TOPIC_ARN, value=self.topic.topic_arn)
        CfnOutput(stack, c.OUT_DASHBOARD, value=self.dashboard.dashboard_name)
        self._acknowledge()

    # -- grants -----------------------------------------------------------------------------
    def _grant(self, lifecycle: StartableWorkflow | None) -> None:
        fn, data, artifacts = self.function, self._data, self._artifacts
        fn.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[data.bucket_arn],
                conditions={
                    "StringLike": {
                        "s3:prefix": [f"{c.PREFIX_CAPTURES}*", f"{c.PREFIX_MONITORING}*", f"{c.PREFIX_FEEDBACK}*"]
                    }
                },
            )
        )
        self._objects(data, c.PREFIX_CAPTURES, ["s3:GetObject"], "reads captured objects")
        self._objects(data, c.PREFIX_FEEDBACK, ["s3:GetObject"], "reads feedback labels")
        self._objects(data, c.PREFIX_MONITORING, ["s3:GetObject", "s3:PutObject"], "compacted captures")
        self._objects(artifacts, c.PREFIX_MODELS, ["s3:GetObject"], "reads reference profiles")
        self._objects(artifacts, c.PREFIX_DRIFT_REPORTS, ["s3:PutObject"], "writes drift reports")
        fn.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:Query"],
                resources=[self._registry.table_arn, f"{self._registry.table_arn}/index/*"],
            )
        )
        fn.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem"],
                resources=[self._metadata.table_arn],
            )
        )
        fn.add_to_role_policy(  # Powertools idempotency records of drift checks, and only those
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
                resources=[self._metadata.table_arn],
                conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["idempotency#drift-check"]}},
            )
        )
        if lifecycle is not None:
            allow_workflow_start(fn, lifecycle)

    def _objects(self, bucket: s3.IBucket, prefix: str, actions: list[str], why: str) -> None:
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=actions, resources=[bucket.arn_for_objects(f"{prefix}*")])
        )
        acknowledge(
            self.function.role,  # type: ignore[arg-type]
            f"AwsSolutions::AwsSolutions-IAM5[Resource::{logical_arn(bucket, self)}/{prefix}*]",
            f"The drift function {why} under {prefix} only; keys are per model and hour.",
        )

    # -- alarms and dashboard --------------------------------------------------------------------
    @staticmethod
    def _metric(name: str, statistic: str, period: Duration = HOURLY) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=NAMESPACE,
            metric_name=name,
            dimensions_map=SERVICE_DIMENSION,
            statistic=statistic,
            period=period,
        )

    def _alarm(
        self,
        id_: str,
        description: str,
        metric: cloudwatch.IMetric,
        threshold: float,
        *,
        periods: int = 1,
        comparison: cloudwatch.ComparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    ) -> cloudwatch.Alarm:
        """An alarm that stays quiet without data (no traffic, no checks)."""
        return cloudwatch.Alarm(
            self,
            id_,
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            evaluation_periods=periods,
            comparison_operator=comparison,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def _alarms(self, serving: lambda_.IFunction | None) -> dict[str, cloudwatch.Alarm]:
        alarms = {
            "DriftedModels": self._alarm(
                "DriftAlarm",
                "A drift check found a model drifted (see the drift report in the artifacts bucket)",
                self._metric("DriftedModels", "Maximum"),
                1,
            ),
            "PerformanceDrops": self._alarm(
                "PerformanceAlarm",
                "A model's accuracy/F1 or RMSE/MAE on labelled traffic is worse than at registration",
                self._metric("PerformanceDrops", "Maximum"),
                1,
            ),
            "CanaryRollbacks": self._alarm(
                "CanaryRollbackAlarm",
                "A canary failed its check (errors, latency, quality or no traffic) or its release step and was "
                "rolled back; production kept serving (see the lifecycle execution and the audit trail)",
                self._metric("CanaryRollbacks", "Sum", Duration.minutes(5)),
                1,
            ),
            "DriftCheckErrors": self._alarm(
                "DriftCheckErrorsAlarm",
                "The drift Lambda failed (see its logs and the dead-letter queue)",
                self.function.metric_errors(period=Duration.hours(1), statistic="Sum"),
                1,
            ),
        }
        if serving is not None:
            alarms["InferenceErrors"] = self._alarm(
                "InferenceErrorsAlarm",
                "The inference Lambda failed invocations (5 or more in 5 minutes)",
                serving.metric_errors(period=Duration.minutes(5), statistic="Sum"),
                5,
            )
            alarms["InferenceP99"] = self._alarm(
                "InferenceLatencyAlarm",
                "Inference p99 duration above 1 s for 3 of 3 five-minute periods",
                serving.metric_duration(period=Duration.minutes(5), statistic="p99"),
                1_000,
                periods=3,
                comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            )
        return alarms

    def _dashboard(self, serving: lambda_.IFunction | None) -> cloudwatch.Dashboard:
        dashboard = cloudwatch.Dashboard(self, "Dashboard", default_interval=Duration.days(7))
        share = cloudwatch.MathExpression(
            expression=f"SEARCH('{{{NAMESPACE},Model,service}} MetricName=\"DriftShare\"', 'Maximum', 3600)",
            using_metrics={},
            label="",
            period=Duration.hours(1),
        )
        scores = cloudwatch.MathExpression(
            expression=f"SEARCH('{{{NAMESPACE},Feature,Model}} MetricName=\"FeatureDriftScore\"', 'Maximum', 3600)",
            using_metrics={},
            label="",
            period=Duration.hours(1),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Drift share per model (%)", left=[share], width=12),
            cloudwatch.GraphWidget(title="Feature drift score (KS D / JS distance)", left=[scores], width=12),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Drift checks",
                left=[
                    self._metric("DriftedModels", "Sum"),
                    self._metric("PerformanceDrops", "Sum"),
                    self._metric("DriftChecks", "Sum"),
                ],
                right=[self.function.metric_errors(period=Duration.hours(1), statistic="Sum")],
                width=12,
            ),
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms.values()), width=12),
        )
        if serving is not None:
            dashboard.add_widgets(
                cloudwatch.GraphWidget(
                    title="Inference invocations and errors",
                    left=[serving.metric_invocations(period=Duration.minutes(5), statistic="Sum")],
                    right=[serving.metric_errors(period=Duration.minutes(5), statistic="Sum")],
                    width=12,
                ),
                cloudwatch.GraphWidget(
                    title="Inference duration p50 / p99 (ms)",
                    left=[
                        serving.metric_duration(period=Duration.minutes(5), statistic="p50"),
                        serving.metric_duration(period=Duration.minutes(5), statistic="p99"),
                    ],
                    width=12,
                ),
            )
        return dashboard

    def _acknowledge(self) -> None:
        acknowledge(
            self.dead_letters,
            "AwsSolutions::AwsSolutions-SQS3",
            "This queue is the dead-letter destination itself (drift schedule target and async invokes).",
        )
        acknowledge(
            self.dead_letters,
            "Serverless::Serverless-SQSRedrivePolicy",
            "This queue is the terminal dead-letter queue; its messages are inspected, not redriven.",
        )
        acknowledge(
            self.function,
            "Serverless::Serverless-LambdaDLQ",
            "Failed asynchronous invocations go to the SQS on-failure destination (EventInvokeConfig).",
        )
        acknowledge(
            self.function.role,  # type: ignore[arg-type]
            f"AwsSolutions::AwsSolutions-IAM5[Resource::{logical_arn(self._registry, self)}/index/*]",
            "Query on the registry's own secondary index (gsi1: the list of models).",
        )
