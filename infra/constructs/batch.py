"""Batch scoring: the batch function (the training image), the batch workflow and the batch routes.

    POST /v1/models/{name}/batch -> API function: resolve the version and input, store the job,
         start the workflow (named after the job)
    Plan -> Chunks (Distributed Map: one ScoreChunk per chunk) -> Finish -> Concluded? -> done | failed
    GET  /v1/models/{name}/batch/{job} -> the job record
    GET  /v1/models/{name}/batch/{job}/rows/{row} -> batch function: a scored row explained

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

from aws_cdk import ArnFormat, CfnOutput, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra import constants as c
from infra.constructs.api import Api
from infra.constructs.chunked import chunked_map_workflow
from infra.constructs.function import FunctionFactory
from infra.constructs.lifecycle import ImageFunction
from infra.grants import allow_objects, allow_table, synchronous_only
from infra.nag import acknowledge

BATCH_HANDLER = "functions.handlers.batch.lambda_handler"
BATCH_ROUTES = (
    ("POST", "/v1/models/{name}/batch"),
    ("GET", "/v1/models/{name}/batch"),
    ("GET", "/v1/models/{name}/batch/{job}"),
)
# served by the batch function: explaining a row reads Parquet parts (the API function has no pyarrow)
BATCH_FUNCTION_ROUTES = (("GET", "/v1/models/{name}/batch/{job}/rows/{row}"),)
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
        allow_objects(fn, data_bucket, c.PREFIX_CAPTURES, ["s3:PutObject"], "capture samples of capturing jobs")
        allow_objects(fn, artifacts_bucket, c.PREFIX_MODELS, ["s3:GetObject"], "the job's verified ONNX artifact")
        allow_objects(fn, artifacts_bucket, c.PREFIX_OFFLINE, ["s3:GetObject"], "feature views' offline layouts")
        allow_table(fn, registry_table, ["dynamodb:GetItem"])
        allow_table(fn, metadata_table, JOB_ACTIONS)  # job records and their audit events
        # a chunk that still fails is not scored: Finish finds its report missing and names it
        self.state_machine = chunked_map_workflow(
            self,
            fn,
            errors=TRANSIENT_ERRORS,
            fail_id="BatchFailed",
            run={"model.$": "$.model", "job_id.$": "$.job_id"},
            chunk_id="ScoreChunk",
            concurrency=CHUNK_CONCURRENCY,
            log_group_id="BatchLogs",
            log_retention=functions.log_retention,
            what="batch",
        )
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
        for method, path in BATCH_FUNCTION_ROUTES:
            api.add_route(method, path, fn)
        CfnOutput(stack, c.OUT_BATCH_SM_ARN, value=self.state_machine.state_machine_arn)
        CfnOutput(stack, c.OUT_BATCH_FUNCTION, value=fn.function_name)
