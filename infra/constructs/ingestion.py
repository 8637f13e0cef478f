"""Ingestion: an object created under raw/ in the data bucket invokes the validation Lambda.

    data bucket (raw/*) --S3 notification, async--> validation Lambda --on failure--> SQS DLQ

The functions come from the stack's function factory (the shared code asset) with the data layer
(pyarrow, numpy, Powertools, pydantic); this construct makes them and their grants (least
privilege: read and delete raw/*, write validated/* and quarantine/*, write reports/validation/* in
the artifacts bucket, the metadata table, start the lifecycle), wires the notification, the
asynchronous-invocation settings and the dead-letter queue, and adds the dataset routes.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, CfnResource, Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra import constants as c
from infra.constructs.api import Api
from infra.constructs.chunked import ChunkedSteps, chunked_state_machine
from infra.constructs.function import RUNTIME, FunctionFactory, dead_letter_async_invokes
from infra.grants import (
    StartableWorkflow,
    allow_objects,
    allow_table,
    allow_workflow_start,
    synchronous_only,
)
from infra.nag import acknowledge

VALIDATE_HANDLER = "functions.handlers.validate.lambda_handler"
VALIDATE_MEMORY_MB = 3008  # a 256 MB chunk, its decoded columns and the report fit with room
VALIDATE_TIMEOUT = Duration.minutes(5)
CHUNK_HANDLER = "functions.handlers.validate.chunk_step_handler"
CHUNK_TIMEOUT = Duration.minutes(15)  # Finish streams the whole file once for its sha256
CHUNK_CONCURRENCY = 100
PREFIX_WORK = "work/validation/"  # artifacts bucket: partials (functions/logic/validation_upload.py WORK)
CHUNK_BYTES = 256 * 1024**2  # read whole up to this (STEPWISE_VALIDATE_CHUNK_BYTES)
MAX_BYTES = 50 * 1024**3  # refuse above this (STEPWISE_VALIDATE_MAX_BYTES)
MAX_EVENT_AGE = Duration.hours(6)
# Retried by the chunk tasks besides Lambda's service errors (retry_on_service_exceptions): our
# typed store errors (functions/models/errors.py) and Lambda's throttling.
CHUNK_TRANSIENT_ERRORS = ["StoreUnavailable", "Throttled", "Lambda.TooManyRequestsException"]
RETRY_ATTEMPTS = 2

ITEM_ACTIONS = [
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:Query",
]
DATASET_ROUTES = (
    ("GET", "/v1/datasets"),
    ("GET", "/v1/datasets/{name}"),
    ("PUT", "/v1/datasets/{name}/contract"),
    ("GET", "/v1/datasets/{name}/contract"),
    ("GET", "/v1/datasets/{name}/contracts"),
    ("GET", "/v1/datasets/{name}/versions"),
    ("GET", "/v1/datasets/{name}/versions/{version}"),
    ("GET", "/v1/datasets/{name}/reports"),
)


class Ingestion(Construct):
    """The validation and chunk functions and their grants, the notification from raw/ to the
    validation function, its retries and its DLQ, the chunked-validation state machine (Plan ->
    Distributed Map of CheckChunk -> Finish) that the validation function hands files bigger than
    CHUNK_BYTES to, and the dataset routes of the control API.

    Exposes `function`, `chunk_function`, `state_machine`, `dead_letters`."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        functions: FunctionFactory,
        layer: lambda_.ILayerVersion,
        data_bucket: s3.IBucket,
        artifacts_bucket: s3.IBucket,
        metadata_table: dynamodb.ITable,
        lifecycle: StartableWorkflow | None = None,
        api: Api | None = None,
        api_function: lambda_.Function | None = None,
    ) -> None:
        # The functions join the tree (in the factory's scope) before this construct does, so the
        # roles keep the order the audit guard's policy lists them in (governance.AppendOnlyAudit).
        limits = {c.ENV_VALIDATE_CHUNK_BYTES: str(CHUNK_BYTES), c.ENV_VALIDATE_MAX_BYTES: str(MAX_BYTES)}
        function = functions(
            c.VALIDATE_FUNCTION_ID,
            VALIDATE_HANDLER,
            layers=[layer],
            environment=limits,
            memory_mb=VALIDATE_MEMORY_MB,
            timeout=VALIDATE_TIMEOUT,
            description="Ingestion: validate uploads under raw/ against their data contract",
        )
        chunk_function = functions(
            c.VALIDATE_CHUNKS_FUNCTION_ID,
            CHUNK_HANDLER,
            layers=[layer],
            environment=limits,
            memory_mb=VALIDATE_MEMORY_MB,
            timeout=CHUNK_TIMEOUT,
            description="Ingestion: plan, check and conclude chunked validations (state machine tasks)",
        )
        super().__init__(scope, id_)
        synchronous_only(chunk_function)
        for each in (function, chunk_function):
            _grant_validation(
                each, data=data_bucket, artifacts=artifacts_bucket, metadata=metadata_table, lifecycle=lifecycle
            )
        allow_objects(
            chunk_function, artifacts_bucket, PREFIX_WORK, ["s3:GetObject", "s3:PutObject"], "partial results of chunks"
        )
        self.function = function
        self.chunk_function = chunk_function
        self.state_machine = self._chunked_validation(chunk_function, functions.log_retention)
        self.dead_letters = dead_letter_async_invokes(
            self, function, max_event_age=MAX_EVENT_AGE, retry_attempts=RETRY_ATTEMPTS
        )
        # The notification is applied from this (the function's) stack to the bucket as this stack
        # imports it, so the bucket's own stack never names the function.
        notified = s3.Bucket.from_bucket_attributes(
            self, "DataBucket", bucket_arn=data_bucket.bucket_arn, bucket_name=data_bucket.bucket_name
        )
        notified.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.LambdaDestination(function),
            s3.NotificationKeyFilter(prefix=c.PREFIX_RAW),
        )
        acknowledge(
            self.dead_letters,
            "AwsSolutions::AwsSolutions-SQS3",
            "This queue is the dead-letter destination itself (of the validation Lambda's async invokes).",
        )
        acknowledge(
            self.dead_letters,
            "Serverless::Serverless-SQSRedrivePolicy",
            "This queue is the terminal dead-letter queue; its messages are inspected, not redriven.",
        )
        acknowledge(
            function,
            "Serverless::Serverless-LambdaDLQ",
            "Failed asynchronous invocations go to the SQS on-failure destination (EventInvokeConfig), "
            "which records the event and the error; a DeadLetterConfig would send each failure twice.",
        )
        function.add_environment(c.ENV_VALIDATE_SM_ARN, self.state_machine.state_machine_arn)
        self.state_machine.grant_start_execution(function)
        stack = Stack.of(self)
        _acknowledge_notifications_handler(stack)
        CfnOutput(stack, c.OUT_VALIDATE_FUNCTION, value=function.function_name)
        CfnOutput(stack, c.OUT_VALIDATE_DLQ_URL, value=self.dead_letters.queue_url)
        CfnOutput(stack, c.OUT_VALIDATE_SM_ARN, value=self.state_machine.state_machine_arn)
        if api is not None and api_function is not None:
            # contracts and dataset versions (functions/handlers/routes/datasets.py); Query on gsi1 lists the datasets
            allow_table(api_function, metadata_table, ITEM_ACTIONS, index=True)
            # GET /v1/datasets/{name}/reports: lists and reads the uploads' validation reports
            api_function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["s3:ListBucket"],
                    resources=[artifacts_bucket.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{c.PREFIX_VALIDATION_REPORTS}*"]}},
                )
            )
            allow_objects(api_function, artifacts_bucket, c.PREFIX_VALIDATION_REPORTS, ["s3:GetObject"], "reports")
            for method, path in DATASET_ROUTES:
                api.add_route(method, path, api_function)

    def _chunked_validation(self, fn: lambda_.Function, log_retention: logs.RetentionDays) -> sfn.StateMachine:
        """Plan -> Chunks (Distributed Map of CheckChunk) -> Finish. Every task retries transient
        errors; a step that still fails (Plan, the Map, Finish) is recorded by RecordFailure<Step>
        as the upload's report (verdict "error", the error and its cause) before the execution
        fails with that error. A chunk whose check fails comes back as {"index", "failure"}, and
        Finish fails with ChunkCheckFailed naming it (never judging the file on a partial check)."""
        steps = ChunkedSteps(self, fn, errors=CHUNK_TRANSIENT_ERRORS, fail_id="ValidationFailed")
        upload = {"upload": "$.upload", "contract_version": "$.contract_version"}
        as_paths = {f"{k}.$": v for k, v in upload.items()}

        def step(id_: str, name: str, fields: dict[str, str]) -> tasks.LambdaInvoke:
            payload = sfn.TaskInput.from_object({"step": name, **{f"{k}.$": v for k, v in fields.items()}})
            task = steps.invoke(id_, payload)
            steps.record_failure(task, {"failed_step": name, **as_paths})
            return task

        plan = step("Plan", "plan", upload)
        chunks = sfn.DistributedMap(
            self,
            "Chunks",
            items_path="$.chunks",
            item_selector={
                "step": "check",
                "upload.$": "$.upload",
                "contract_version.$": "$.contract_version",
                "format.$": "$.format",
                "chunk.$": "$$.Map.Item.Value",
            },
            max_concurrency=CHUNK_CONCURRENCY,
            map_execution_type=sfn.StateMachineType.EXPRESS,
            result_path="$.results",
        )
        check = steps.invoke("CheckChunk", None)
        chunk_failed = sfn.Pass(
            self,
            "ChunkFailed",
            parameters={"index.$": "$.chunk.index", "failure.$": "$.error"},
        )
        check.add_catch(chunk_failed, result_path="$.error")
        chunks.item_processor(check)
        steps.record_failure(chunks, {"failed_step": "chunks", **as_paths})
        finish = step(
            "Finish",
            "finish",
            {**upload, "format": "$.format", "reason": "$.reason", "results": "$.results"},
        )
        return chunked_state_machine(
            self,
            "ChunkedValidation",
            fn=fn,
            definition=plan.next(chunks).next(finish),
            timeout=Duration.hours(6),
            log_group_id="ChunkedValidationLogs",
            log_retention=log_retention,
            what="chunk",
        )


def _grant_validation(
    fn: lambda_.Function,
    *,
    data: s3.IBucket,
    artifacts: s3.IBucket,
    metadata: dynamodb.ITable,
    lifecycle: StartableWorkflow | None,
) -> None:
    """What judging and concluding an upload needs (least privilege, explicit actions)."""
    allow_objects(fn, data, c.PREFIX_RAW, ["s3:GetObject", "s3:GetObjectVersion"], "read uploads")
    allow_objects(fn, data, c.PREFIX_RAW, ["s3:DeleteObject", "s3:DeleteObjectVersion"], "move bad uploads")
    allow_objects(
        fn,
        data,
        c.PREFIX_VALIDATED,
        ["s3:PutObject", "s3:GetObject", "s3:GetObjectVersion"],
        "copy passed uploads; read back a feature view source's for its offline layout",
    )
    allow_objects(fn, data, c.PREFIX_QUARANTINE, ["s3:PutObject"], "quarantine failed uploads with reports")
    allow_objects(fn, artifacts, c.PREFIX_VALIDATION_REPORTS, ["s3:PutObject"], "validation reports")
    # a passed version of a feature view's source gets its offline layout
    allow_objects(fn, artifacts, c.PREFIX_OFFLINE, ["s3:GetObject", "s3:PutObject"], "offline layouts")
    # items only (no index): contracts, versions, upload guards, idempotency records, audit events
    allow_table(fn, metadata, [*ITEM_ACTIONS, "dynamodb:DeleteItem"])
    if lifecycle is not None:  # a good upload may start the lifecycle workflow
        allow_workflow_start(fn, lifecycle)


def _acknowledge_notifications_handler(stack: Stack) -> None:
    """CDK's singleton Lambda behind Custom::S3BucketNotifications (one per stack): held to the
    stack's function standard (runtime, X-Ray, JSON logs), and its CDK-made grants acknowledged."""
    for child in stack.node.children:
        if child.node.id.startswith("BucketNotificationsHandler"):
            function = child.node.find_child("Resource")
            assert isinstance(function, CfnResource)
            function.add_property_override("Runtime", RUNTIME.name)
            function.add_property_override("TracingConfig", {"Mode": "Active"})
            function.add_property_override("LoggingConfig", {"LogFormat": "JSON"})
            role = child.node.find_child("Role")
            assert isinstance(role, iam.Role)
            role.add_to_policy(
                iam.PolicyStatement(actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"], resources=["*"])
            )
            acknowledge(
                child,
                "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AWSLambdaBasicExecutionRole]",
                "CDK's bucket-notification custom resource handler; it only writes its own logs.",
            )
            acknowledge(
                child,
                "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
                "CDK's bucket-notification handler needs s3:GetBucketNotification and s3:PutBucketNotification "
                "(it merges this stack's notification into the stores stack's bucket); CDK scopes them as written.",
            )
