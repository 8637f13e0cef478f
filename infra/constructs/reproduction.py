"""Reproduction: the reproduce function (the training image) and its two API routes.

    POST /v1/models/{name}/versions/{version}/reproduce -> API function -> (async invoke)
         reproduce function: retrain from the recorded lineage, compare holdout predictions
    GET  /v1/models/{name}/versions/{version}/reproduce -> the version's latest outcome

The function only reads what retraining needs (validated/ dataset objects, models/ artifacts,
the registry version, specs and dataset records) and writes nothing to S3: its table writes are
scoped by `dynamodb:LeadingKeys` to its reproduction records and their audit events. Its
asynchronous invokes are retried once, at most 30 minutes old, then recorded in a dead-letter
queue (functions/logic/reproduction.py STALE_AFTER is longer than that path can take).
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra import constants as c
from infra.constructs.api import Api
from infra.constructs.function import FunctionFactory, dead_letter_async_invokes
from infra.constructs.lifecycle import ImageFunction
from infra.grants import allow_objects
from infra.nag import acknowledge

REPRODUCE_HANDLER = "functions.handlers.reproduce.lambda_handler"
REPRODUCE_ROUTES = (
    ("POST", "/v1/models/{name}/versions/{version}/reproduce"),
    ("GET", "/v1/models/{name}/versions/{version}/reproduce"),
)
# the partitions the function writes: its records (functions/models/reproduction.py) and audit events
WRITTEN_KEYS = ["REPRODUCE#*", "AUDIT#*"]


class Reproduction(Construct):
    """Exposes `function` (the reproduce function, made in the factory's scope) and `dead_letters`."""

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
        self.function = ImageFunction(
            functions.scope,
            c.REPRODUCE_FUNCTION_ID,
            context_dir=image_context,
            handler=REPRODUCE_HANDLER,
            environment=functions.environment,
            architecture=functions.architecture,
            log_retention=functions.log_retention,
            description="Governance: retrain a registered version from its lineage, compare holdout predictions",
        ).function
        fn = self.function
        self.dead_letters = dead_letter_async_invokes(self, fn, max_event_age=Duration.minutes(30), retry_attempts=1)
        allow_objects(fn, data_bucket, c.PREFIX_VALIDATED, ["s3:GetObject", "s3:GetObjectVersion"], "datasets")
        allow_objects(fn, artifacts_bucket, c.PREFIX_MODELS, ["s3:GetObject"], "recorded artifacts")
        allow_objects(fn, artifacts_bucket, c.PREFIX_OFFLINE, ["s3:GetObject"], "feature views' offline layouts")
        fn.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem"], resources=[registry_table.table_arn, metadata_table.table_arn]
            )
        )
        fn.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:PutItem"],
                resources=[metadata_table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": WRITTEN_KEYS}},
            )
        )
        acknowledge(
            self.dead_letters,
            "AwsSolutions::AwsSolutions-SQS3",
            "This queue is the dead-letter destination itself (the reproduce function's async invokes).",
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
        # the API starts reproductions (the function itself, not its versions) and reads their records
        api_function.add_environment(c.ENV_REPRODUCE_FUNCTION, fn.function_name)
        api_function.add_to_role_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[fn.function_arn])
        )
        for method, path in REPRODUCE_ROUTES:
            api.add_route(method, path, api_function)
        CfnOutput(Stack.of(self), c.OUT_REPRODUCE_FUNCTION, value=fn.function_name)
