"""Batch scoring: the batch function (the training image), the batch workflow and the batch routes.

    POST /v1/models/{name}/batch -> API function: resolve the version and input, store the job,
         start the workflow (named after the job)
    Plan -> Chunks (Distributed Map: one ScoreChunk per chunk) -> Finish -> Concluded? -> done | failed
    GET  /v1/models/{name}/batch/{job} -> the job record

The batch function runs every step from the training image: scoring needs ONNX Runtime and pyarrow
together, and the data layer (pyarrow, 176 MB arm64 / 187 MB x86_64) plus ONNX Runtime (57 MB)
leaves no room in Lambda's 250 MB unzipped limit on x86_64 (it fits on arm64 with 16 MB to spare),
while the image, already built for training, carries both with no size limit. The API function
keeps the base layer only: the input's columns are checked by Plan, which fails the job before any
chunk is scored.

Every task retries transient errors; a step that still fails (Plan, the Map, Finish) is recorded on
the job by RecordFailure<Step> before the execution fails. A chunk whose task fails ends its item
as {"index", "failure"}; Finish sees its report missing and fails the job naming the chunks a
resumed job scores.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import ArnFormat, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra import constants as c
from infra.constructs.api import Api
from infra.constructs.function import FunctionFactory
from infra.constructs.lifecycle import ImageFunction
from infra.grants import allow_objects, allow_table, logical_arn, synchronous_only
from infra.nag import acknowledge

BATCH_HANDLER = "functions.handlers.batch.lambda_handler"
BATCH_ROUTES = (
    ("POST", "/v1/models/{name}/batch"),
    ("GET", "/v1/models/{name}/batch"),
    ("GET", "/v1/models/{name}/batch/{job}"),
)
PREFIX_PREDICTIONS = "predictions/"  # functions/models/batch.py PREDICTIONS_PREFIX
INPUT_PREFIXES = (c.PREFIX_VALIDATED, c.PREFIX_RAW)  # functions/models/settings.py batch_input_prefixes
CHUNK_CONCURRENCY = 100
# Retried by every task besides Lambda's service errors: our typed store errors and Lambda's throttling.
TRANSIENT_ERRORS = ["StoreUnavailable", "Throttled", "Lambda.TooManyRequestsException"]
JOB_ACTIONS = ["dynamodb:GetItem", "dynamodb:PutItem"]  # job records and audit events: transactional Puts


class Batch(Construct):
    """Exposes `function` (the batch function, made in the factory's scope) and `state_machine`."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        functions: FunctionFactory,
        image_context: Path,
        data_bucket: s3.IBucket,
        artifacts_bucket: s3.IBucket,
        registry_table: dynamodb.ITable,
        metadata_table: dynamodb.ITable,
        api: Api,
        api_function: lambda_.Function,
    ) -> None:
        super().__init__(scope, id_)
        fn = ImageFunction(
            functions.scope,
            c.BATCH_FUNCTION_ID,
            context_dir=image_context,
            handler=BATCH_HANDLER,
            environment=functions.environment,
            architecture=functions.architecture,
            log_retention=functions.log_retention,
            description="Batch scoring: plan a job, score one chunk, finish with the manifest",
        ).function
        self.function = fn
        synchronous_only(fn)
        for prefix in INPUT_PREFIXES:
            allow_objects(fn, data_bucket, prefix, ["s3:GetObject", "s3:GetObjectVersion"], "batch inputs")
        allow_objects(fn, data_bucket, PREFIX_PREDICTIONS, ["s3:GetObject", "s3:PutObject"], "parts and reports")
        allow_objects(fn, artifacts_bucket, c.PREFIX_MODELS, ["s3:GetObject"], "the job's verified ONNX artifact")
        allow_table(fn, registry_table, ["dynamodb:GetItem"])
        allow_table(fn, metadata_table, JOB_ACTIONS)  # job records and their audit events
        self.state_machine = self._workflow(fn, functions.log_retention)
        stack = Stack.of(self)
        executions_arn = stack.format_arn(
            service="states",
            resource="execution",
            resource_name=f"{self.state_machine.state_machine_name}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        # the API resolves the input (HeadObject and its first bytes), stores the job, starts the workflow
        for prefix in INPUT_PREFIXES:
            allow_objects(api_function, data_bucket, prefix, ["s3:GetObject", "s3:GetObjectVersion"], "batch inputs")
        api_function.add_environment(c.ENV_BATCH_SM_ARN, self.state_machine.state_machine_arn)
        self.state_machine.grant_start_execution(api_function)
        api_function.add_to_role_policy(
            iam.PolicyStatement(actions=["states:DescribeExecution"], resources=[executions_arn])
        )
        machine_id = stack.get_logical_id(self.state_machine.node.default_child)  # type: ignore[arg-type]
        assert api_function.role is not None
        acknowledge(
            api_function.role,
            "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:"
            f"<AWS::AccountId>:execution:<{machine_id}.Name>:*]",
            "DescribeExecution on the batch workflow's executions (one per job), to tell a new start from a "
            "repeated one.",
        )
        for method, path in BATCH_ROUTES:
            api.add_route(method, path, api_function)
        CfnOutput(stack, c.OUT_BATCH_SM_ARN, value=self.state_machine.state_machine_arn)
        CfnOutput(stack, c.OUT_BATCH_FUNCTION, value=fn.function_name)

    def _workflow(self, fn: lambda_.IFunction, log_retention: logs.RetentionDays) -> sfn.StateMachine:
        failed = sfn.Fail(
            self,
            "BatchFailed",
            error_path=sfn.JsonPath.string_at("$.error.Error"),
            cause_path=sfn.JsonPath.string_at("$.error.Cause"),
        )

        def invoke(id_: str, payload: sfn.TaskInput | None, result_path: str | None = None) -> tasks.LambdaInvoke:
            task = tasks.LambdaInvoke(
                self,
                id_,
                lambda_function=fn,
                payload=payload,
                payload_response_only=True,
                retry_on_service_exceptions=True,
                result_path=result_path,
            )
            task.add_retry(errors=TRANSIENT_ERRORS, interval=Duration.seconds(5), max_attempts=3, backoff_rate=2)
            return task

        job = {"model.$": "$.model", "job_id.$": "$.job_id"}

        def record_failure(state: sfn.TaskStateBase | sfn.DistributedMap) -> None:
            record = invoke(
                f"RecordFailure{state.node.id}",
                sfn.TaskInput.from_object({"step": "fail", **job, "error.$": "$.error"}),
                result_path=sfn.JsonPath.DISCARD,
            )
            # If even the record cannot be written, the execution still fails with the step's error.
            record.add_catch(failed, result_path=sfn.JsonPath.DISCARD)
            record.next(failed)
            state.add_catch(record, result_path="$.error")

        plan = invoke("Plan", sfn.TaskInput.from_object({"step": "plan", **job}), result_path="$.plan")
        record_failure(plan)
        chunks = sfn.DistributedMap(
            self,
            "Chunks",
            items_path="$.plan.chunks",
            item_selector={"step": "chunk", "task.$": "$$.Map.Item.Value"},
            max_concurrency=CHUNK_CONCURRENCY,
            map_execution_type=sfn.StateMachineType.EXPRESS,
            result_path=sfn.JsonPath.DISCARD,
        )
        score = invoke("ScoreChunk", None)
        # a chunk that still fails is not scored: Finish finds its report missing and names it
        chunk_failed = sfn.Pass(self, "ChunkFailed", parameters={"index.$": "$.task.index", "failure.$": "$.error"})
        score.add_catch(chunk_failed, result_path="$.error")
        chunks.item_processor(score)
        record_failure(chunks)
        finish = invoke("Finish", sfn.TaskInput.from_object({"step": "finish", **job}), result_path="$.finish")
        record_failure(finish)
        log_group = logs.LogGroup(self, "BatchLogs", retention=log_retention, removal_policy=RemovalPolicy.RETAIN)
        machine = sfn.StateMachine(
            self,
            "Workflow",
            definition_body=sfn.DefinitionBody.from_chainable(plan.next(chunks).next(finish)),
            state_machine_type=sfn.StateMachineType.STANDARD,
            timeout=Duration.hours(12),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
        )
        assert machine.role is not None
        acknowledge(
            machine.role,
            f"AwsSolutions::AwsSolutions-IAM5[Resource::{logical_arn(fn, self)}:*]",
            "lambda:InvokeFunction on the batch function's versions and aliases (CDK's LambdaInvoke grant).",
        )
        acknowledge(
            machine.role,
            "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
            "X-Ray and CloudWatch Logs delivery actions support no resource-level permissions.",
        )
        machine_id = Stack.of(machine).get_logical_id(machine.node.default_child)  # type: ignore[arg-type]
        executions = (
            "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:"
            '{"Fn::Select":[6,{"Fn::Split":[":",{"Ref":"' + machine_id + '"}]}]}'
        )
        for suffix in (":*", "/*:*"):
            acknowledge(
                machine,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{executions}{suffix}]",
                "The Distributed Map's own child executions (their names are made by Step Functions).",
            )
        return machine
