"""Monitoring: the drift Lambda, an hourly EventBridge schedule starting the drift-fleet workflow
(one round: a drift check per due model, each its own invocation; infra/constructs/drift_fleet.py),
least-privilege grants, the on-demand routes, alarms to an SNS topic, a dashboard.

The drift function uses the stack's data layer (layers/data: pyarrow, numpy, Powertools, pydantic),
built once and shared with ingestion and governance. Alarms: any model drifted (DriftedModels), any
model's outputs drifted (OutputDriftedModels), captured inputs breaking the data contract above the
allowed rate (DataQualityFailures), any performance drop on labelled traffic (PerformanceDrops),
drift-check errors, a canary rolled back by the release workflow (CanaryRollbacks), inference errors
and inference p99 latency, and for each state machine of the stack (found when monitoring is built,
so built after them) executions that failed, timed out or were throttled, each also on the
dashboard. Per-model drift share and data-quality violation rate are on the dashboard (a SEARCH
over the Model dimension); per-model alarms need the model names, which only exist at run time.
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
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra import constants as c
from infra.constructs.api import Api
from infra.constructs.drift_fleet import DEFAULT_CONCURRENCY, DriftFleet
from infra.constructs.function import FunctionFactory, dead_letter_async_invokes
from infra.grants import StartableWorkflow, allow_objects, allow_workflow_start, logical_arn
from infra.nag import acknowledge

DRIFT_HANDLER = "functions.handlers.drift.lambda_handler"
DRIFT_MEMORY_MB = 1769  # one full vCPU; memory use is the profile plus one column chunk
DRIFT_TIMEOUT = Duration.minutes(15)
DRIFT_ROUTES = (
    ("POST", "/v1/models/{name}/drift"),
    ("PUT", "/v1/models/{name}/drift/settings"),
    ("GET", "/v1/models/{name}/drift/settings"),
    ("GET", "/v1/drift/rounds"),
    ("GET", "/v1/models/{name}/drift/checks"),
    ("GET", "/v1/models/{name}/drift/checks/{check_id}"),
)
ROUNDS_PK = "DRIFT_ROUNDS"  # functions/dal/monitoring.py: the scheduled rounds' summaries
NAMESPACE = "Stepwise"
SERVICE_DIMENSION = {"service": "stepwise"}
HOURLY = Duration.hours(1)


class Monitoring(Construct):
    """Exposes `function`, `fleet` (DriftFleet), `rule`, `dead_letters`, `topic`, `alarms` (name -> Alarm),
    `dashboard`."""

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
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
        concurrency: int = DEFAULT_CONCURRENCY,
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
        # the schedule starts a round: one check per due model, failures dead-lettered per model
        self.fleet = DriftFleet(
            self,
            "Fleet",
            function=self.function,
            dead_letters=self.dead_letters,
            log_retention=log_retention,
            concurrency=concurrency,
        )
        self.rule = events.Rule(
            self,
            "Schedule",
            description="Hourly drift round: a check of every model with a production version that is due",
            schedule=events.Schedule.rate(schedule),
            targets=[
                targets.SfnStateMachine(
                    self.fleet.state_machine,
                    input=events.RuleTargetInput.from_object(
                        # the scheduled time names the round and its checks (the drift handler's idempotency key)
                        {"window_hours": window_hours, "time": events.EventField.time}
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
            api_function.add_to_role_policy(  # drift settings items, rounds; models are read from the registry
                iam.PolicyStatement(
                    actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"],
                    resources=[metadata_table.table_arn],
                )
            )
            api_function.add_to_role_policy(
                iam.PolicyStatement(actions=["dynamodb:GetItem"], resources=[registry_table.table_arn])
            )
            # GET .../drift/checks/{check_id}: the check's JSON and HTML reports
            allow_objects(api_function, artifacts_bucket, c.PREFIX_DRIFT_REPORTS, ["s3:GetObject"], "drift reports")
            for method, path in DRIFT_ROUTES:
                api.add_route(method, path, api_function)

        self.topic = alarm_topic or sns.Topic(
            self,
            "AlarmTopic",
            display_name="Stepwise monitoring alarms",
            # encrypted with the stack's KMS key (infra/constructs/encryption.py)
            enforce_ssl=True,
        )
        self.workflows = _state_machines(Stack.of(self))
        self.alarms = {**self._alarms(serving_function), **self._workflow_alarms()}
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
        fn.add_to_role_policy(  # the scheduled rounds' summaries, and only those
            iam.PolicyStatement(
                actions=["dynamodb:UpdateItem"],
                resources=[self._metadata.table_arn],
                conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [ROUNDS_PK]}},
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
            "OutputDriftedModels": self._alarm(
                "OutputDriftAlarm",
                "A drift check found a model's outputs drifted from its holdout outputs (prediction drift)",
                self._metric("OutputDriftedModels", "Maximum"),
                1,
            ),
            "DataQualityFailures": self._alarm(
                "DataQualityAlarm",
                "Captured inputs broke a rule of the model's data contract above the allowed rate (see the "
                "drift report's data-quality section for the rule and example request ids)",
                self._metric("DataQualityFailures", "Maximum"),
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
            "DriftRoundsFailed": self._alarm(
                "DriftRoundsFailedAlarm",
                "A scheduled drift round failed or timed out as a whole (see the drift-fleet execution); "
                "single models' failures are in the round summary and the dead-letter queue",
                cloudwatch.MathExpression(
                    expression="failed + timedout",
                    using_metrics={
                        "failed": self.fleet.state_machine.metric_failed(period=HOURLY, statistic="Sum"),
                        "timedout": self.fleet.state_machine.metric_timed_out(period=HOURLY, statistic="Sum"),
                    },
                    period=HOURLY,
                ),
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

    def _workflow_alarms(self) -> dict[str, cloudwatch.Alarm]:
        """Per state machine: any execution failed, timed out or was throttled (5-minute sums)."""
        alarms = {}
        for name, machine in self.workflows.items():
            for kind, metric, what in (
                ("ExecutionsFailed", machine.metric_failed(), "failed (its record names the step and error)"),
                ("ExecutionsTimedOut", machine.metric_timed_out(), "timed out"),
                ("ExecutionThrottled", machine.metric_throttled(), "was throttled"),
            ):
                alarms[f"{name}{kind}"] = self._alarm(
                    f"{name}{kind}Alarm",
                    f"An execution of the {name} workflow {what}; see its execution history",
                    metric,
                    1,
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
        violations = cloudwatch.MathExpression(
            expression=(
                f"SEARCH('{{{NAMESPACE},Model,service}} MetricName=\"DataQualityViolationRate\"', 'Maximum', 3600)"
            ),
            using_metrics={},
            label="",
            period=Duration.hours(1),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Drift share per model (%)", left=[share], width=12),
            cloudwatch.GraphWidget(
                title="Feature and output drift score (KS D / JS distance)", left=[scores], width=12
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Data quality: most broken contract rule per model (% of captured rows)",
                left=[violations],
                width=12,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Drift checks",
                left=[
                    self._metric("DriftedModels", "Sum"),
                    self._metric("OutputDriftedModels", "Sum"),
                    self._metric("DataQualityFailures", "Sum"),
                    self._metric("PerformanceDrops", "Sum"),
                    self._metric("DriftChecks", "Sum"),
                ],
                right=[self.function.metric_errors(period=Duration.hours(1), statistic="Sum")],
                width=12,
            ),
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms.values()), width=12),
        )
        dashboard.add_widgets(
            *(
                cloudwatch.GraphWidget(
                    title=f"{name} workflow: executions failed, timed out, throttled",
                    left=[machine.metric_failed(), machine.metric_timed_out(), machine.metric_throttled()],
                    right=[machine.metric_succeeded()],
                    width=12,
                )
                for name, machine in self.workflows.items()
            )
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


def _state_machines(stack: Stack) -> dict[str, sfn.StateMachine]:
    """Every state machine built in the stack before monitoring, named by the construct that owns
    it and its id (LifecycleStateMachine, IngestionChunkedValidation); each gets its alarms."""
    found: dict[str, sfn.StateMachine] = {}
    for construct in stack.node.find_all():
        if isinstance(construct, sfn.StateMachine):
            owner = construct.node.scope
            prefix = owner.node.id if owner is not None and owner is not stack else ""
            found[f"{prefix}{construct.node.id}"] = construct
    return found
