"""Materialization: the function that writes feature views' latest rows into the online store, its
workflow, its routes and the freshness alarm.

    POST /v1/feature-views/{name}/materialize -> API function: store the run, invoke the
         materialization function asynchronously ("start")
    validation of a new source version -> validation functions invoke it ("validated"): one run per
         view over that dataset
    start -> Plan -> Chunks (Distributed Map: one MaterializeChunk per chunk) -> Finish
    GET  /v1/feature-views/{name}/materializations[/{id}] -> the run records

The function runs with the data layer (pyarrow reads the source's chunks). It is the only role that
writes the online table, and only with PutItem (one conditional write per entity). Every task
retries transient errors; a step that still fails (Plan, the Map, Finish) is recorded on the run by
RecordFailure<Step> before the execution fails. A chunk whose task fails ends its item as {"index",
"failure"}; Finish finds its done marker missing and fails the run naming it.

Freshness: Finish emits each view's online age (seconds since the newest event time materialized)
per view (dimension `view`) and once more without it. The stack has one alarm, on the Maximum of the
dimensionless metric (the oldest view's age among the runs that finished in the period), with a
configurable threshold; views are data, not stack resources, so each view's own alarms (freshness,
lookup misses) are made at run time by the function after the view's first successful run
(functions/logic/view_alarms.py), under the stack's view-alarm prefix, the only alarm names its
grant allows.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import ArnFormat, CfnOutput, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra import constants as c
from infra.constructs.api import Api
from infra.constructs.chunked import chunked_map_workflow
from infra.constructs.function import FunctionFactory, dead_letter_async_invokes
from infra.grants import allow_objects, allow_table, grant_view_alarms
from infra.nag import acknowledge

MATERIALIZE_HANDLER = "functions.handlers.materialize.lambda_handler"
MATERIALIZE_ROUTES = (
    ("POST", "/v1/feature-views/{name}/materialize"),
    ("GET", "/v1/feature-views/{name}/materializations"),
    ("GET", "/v1/feature-views/{name}/materializations/{materialization_id}"),
)
MEMORY_MB = 2048
TIMEOUT = Duration.minutes(15)
CHUNK_BYTES = 32 * 1024**2  # source bytes per chunk (STEPWISE_MATERIALIZE_CHUNK_BYTES)
CHUNK_CONCURRENCY = 20  # chunk workers at once: bounds the online table's write rate
# Retried by every task besides Lambda's service errors: our typed store errors and Lambda's throttling.
TRANSIENT_ERRORS = ["StoreUnavailable", "Throttled", "Lambda.TooManyRequestsException"]
ONLINE_ACTIONS = ["dynamodb:UpdateItem"]  # one conditional UpdateItem per (view, entity): functions/dal/online_store.py
# runs, chunk markers, audit events (transactional Puts); views, dataset versions and contracts read;
# Query lists a view's runs and markers, and the views (gsi1) over a validated dataset
METADATA_ACTIONS = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"]
MACHINE_NAME_SUFFIX = "Materialize"
FRESHNESS_NAMESPACE = "Stepwise/Features"  # functions/models/materialize.py METRIC_NAMESPACE
FRESHNESS_MAX_METRIC = "OnlineFeatureAgeMaxSeconds"  # functions/models/materialize.py FRESHNESS_MAX_METRIC


class Materialize(Construct):
    """Exposes `function`, `state_machine`, `dead_letters`; `add_freshness_alarm` makes `freshness_alarm`."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        functions: FunctionFactory,
        layer: lambda_.ILayerVersion,
        data_bucket: s3.IBucket,
        metadata_table: dynamodb.ITable,
        online_table: dynamodb.ITable,
        api: Api,
        api_function: lambda_.Function,
        announcers: Sequence[lambda_.Function],
        log_retention: logs.RetentionDays,
    ) -> None:
        fn = functions(
            c.MATERIALIZE_FUNCTION_ID,
            MATERIALIZE_HANDLER,
            layers=[layer],
            environment={
                c.ENV_ONLINE_TABLE: online_table.table_name,
                c.ENV_MATERIALIZE_CHUNK_BYTES: str(CHUNK_BYTES),
            },
            memory_mb=MEMORY_MB,
            timeout=TIMEOUT,
            description="Features: materialize feature views into the online store (workflow tasks)",
        )
        super().__init__(scope, id_)
        self.function = fn
        allow_objects(fn, data_bucket, c.PREFIX_VALIDATED, ["s3:GetObject", "s3:GetObjectVersion"], "source versions")
        allow_table(fn, metadata_table, METADATA_ACTIONS, index=True)
        allow_table(fn, online_table, ONLINE_ACTIONS)
        # asynchronous starts (API, validation): retried once, then recorded in a queue
        self.dead_letters = dead_letter_async_invokes(self, fn, max_event_age=Duration.hours(6), retry_attempts=1)
        acknowledge(
            self.dead_letters,
            "AwsSolutions::AwsSolutions-SQS3",
            "This queue is the dead-letter destination itself (of the materialization function's async invokes).",
        )
        acknowledge(
            self.dead_letters,
            "Serverless::Serverless-SQSRedrivePolicy",
            "This queue is the terminal dead-letter queue; its messages are inspected, not redriven.",
        )
        acknowledge(
            fn,
            "Serverless::Serverless-LambdaDLQ",
            "Failed asynchronous invocations go to the SQS on-failure destination (EventInvokeConfig).",
        )
        # The function both runs the workflow's steps and starts it: the machine has a fixed name and
        # the function knows it by an ARN built from that name (a Ref would make a cycle: function ->
        # its policy -> the machine -> the function).
        stack = Stack.of(self)
        machine_name = f"{stack.stack_name}-{MACHINE_NAME_SUFFIX}"
        # a chunk that still fails has no done marker: Finish names it and fails the run
        self.state_machine = chunked_map_workflow(
            self,
            fn,
            errors=TRANSIENT_ERRORS,
            fail_id="MaterializationFailed",
            run={"view.$": "$.view", "materialization_id.$": "$.materialization_id"},
            chunk_id="MaterializeChunk",
            concurrency=CHUNK_CONCURRENCY,
            log_group_id="MaterializeLogs",
            log_retention=log_retention,
            what="materialization",
            state_machine_name=machine_name,
        )
        machine_arn = stack.format_arn(
            service="states",
            resource="stateMachine",
            resource_name=machine_name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        executions = stack.format_arn(
            service="states",
            resource="execution",
            resource_name=f"{machine_name}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        fn.add_environment(c.ENV_MATERIALIZE_SM_ARN, machine_arn)
        fn.add_to_role_policy(iam.PolicyStatement(actions=["states:StartExecution"], resources=[machine_arn]))
        fn.add_to_role_policy(iam.PolicyStatement(actions=["states:DescribeExecution"], resources=[executions]))
        assert fn.role is not None
        acknowledge(
            fn.role,
            "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:"
            f"<AWS::AccountId>:execution:{machine_name}:*]",
            "DescribeExecution on the materialization workflow's executions (one per run), to tell a new start "
            "from a repeated one.",
        )
        # who starts runs: the API (on demand) and validation (a new source version); the function
        # itself, not its versions (grant_invoke adds :*)
        for starter in (api_function, *announcers):
            starter.add_environment(c.ENV_MATERIALIZE_FUNCTION, fn.function_name)
            starter.add_to_role_policy(
                iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[fn.function_arn])
            )
        # the API function's run records and reads use the metadata grants it already holds
        for method, path in MATERIALIZE_ROUTES:
            api.add_route(method, path, api_function)
        CfnOutput(stack, c.OUT_MATERIALIZE_SM_ARN, value=self.state_machine.state_machine_arn)
        CfnOutput(stack, c.OUT_MATERIALIZE_FUNCTION, value=fn.function_name)

    def add_freshness_alarm(
        self, topic: sns.ITopic, threshold_seconds: int, lookup_miss_percent: float
    ) -> cloudwatch.Alarm:
        """The one alarm on the oldest view's online age, and the function's grant and settings for
        the per-view alarms it makes at run time (once the stack's alarm topic exists)."""
        grant_view_alarms(self.function, topic_arn=topic.topic_arn)
        self.function.add_environment(c.ENV_ONLINE_FRESHNESS_ALARM_SECONDS, str(threshold_seconds))
        self.function.add_environment(c.ENV_LOOKUP_MISS_ALARM_PERCENT, f"{lookup_miss_percent:g}")
        self.freshness_alarm = cloudwatch.Alarm(
            self,
            "OnlineFreshness",
            alarm_description=(
                "A feature view's online values are older than the threshold when its materialization "
                "finished (the oldest view's age; per-view ages are the OnlineFeatureAgeSeconds metric)"
            ),
            metric=cloudwatch.Metric(
                namespace=FRESHNESS_NAMESPACE,
                metric_name=FRESHNESS_MAX_METRIC,
                dimensions_map={"service": "stepwise"},
                statistic="Maximum",
                period=Duration.hours(1),
            ),
            threshold=threshold_seconds,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.freshness_alarm.add_alarm_action(cw_actions.SnsAction(topic))
        return self.freshness_alarm
