"""The Stepwise stack: the stores, the API and every component of the platform (one construct each)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra import constants as c
from infra.assets import functions_asset_dir, functions_code_version
from infra.config import StackConfig
from infra.constructs.api import Api
from infra.constructs.approvals import (
    APPROVAL_HANDLER,
    RELEASE_HANDLER,
    Approvals,
    grant_canary_metrics,
    grant_decisions,
    grant_release_access,
)
from infra.constructs.encryption import ENCRYPTION_ID, Encryption
from infra.constructs.function import ARCHITECTURES, RUNTIME, RUNTIME_VERSION, StepwiseFunction, _retention
from infra.constructs.governance import Governance
from infra.constructs.hardening import HARDENING_ID, Hardening
from infra.constructs.ingestion import add_dataset_routes, add_ingestion
from infra.constructs.lifecycle import (
    EVALUATE_HANDLER,
    REGISTER_HANDLER,
    RUN_RECORD_HANDLER,
    TRAIN_HANDLER,
    ImageFunction,
    Lifecycle,
    SageMakerTraining,
    allow_objects,
    allow_table,
    training_image_context,
)
from infra.constructs.monitoring import Monitoring
from infra.constructs.reproduction import Reproduction
from infra.constructs.serving import Serving
from infra.constructs.storage import AccessLogs, ArtifactStore, DataStore
from infra.constructs.tables import Metadata, Registry
from infra.nag import acknowledge, acknowledge_design_choices
from layers.build.builder import build_layer
from layers.build.packaging import LAYER_METADATA


def stack_version() -> str:
    try:
        return version("stepwise")
    except PackageNotFoundError:
        return "0.0.0+local"


class StepwiseStack(Stack):
    def __init__(self, scope: Construct, id_: str, *, config: StackConfig, **kwargs: object) -> None:
        super().__init__(scope, id_, **kwargs)  # type: ignore[arg-type]
        self.config = config
        self.encryption = Encryption(self, ENCRYPTION_ID, stage=config.stage)
        access_logs = AccessLogs(self, c.ACCESS_LOGS_ID)
        self.data = DataStore(
            self,
            c.DATA_STORE_ID,
            access_logs=access_logs.bucket,
            capture_expiration_days=config.capture_retention_days,
        )
        self.artifacts = ArtifactStore(
            self,
            c.ARTIFACT_STORE_ID,
            access_logs=access_logs.bucket,
            report_expiration_days=config.report_retention_days,
        )
        self.registry = Registry(self, c.REGISTRY_ID)
        self.metadata = Metadata(self, c.METADATA_ID)

        self.code = lambda_.Code.from_asset(str(functions_asset_dir()))
        self.base_layer = self.layer(c.BASE_LAYER_ID, "base", "Powertools and pydantic")
        self.api = Api(
            self,
            c.API_ID,
            throttle_rate=config.api_throttle_rate,
            throttle_burst=config.api_throttle_burst,
            log_retention=_retention(config.log_retention_days),
            user_pool_arn=config.cognito_user_pool_arn,
        )

        api_fn = self.function(
            c.API_FUNCTION_ID, "functions.handlers.api.lambda_handler", description="Control-plane API"
        ).function
        self.synchronous_only(api_fn)
        self.grant_health_probes(api_fn)
        self.api.add_route("GET", "/v1/health", api_fn)
        self.api.add_route("GET", "/v1/openapi.json", api_fn)  # functions/handlers/routes/openapi.py
        self.serving = Serving(
            self,
            c.SERVING_ID,
            reserved_concurrency=config.inference_reserved_concurrency,
            memory_mb=config.inference_memory_mb,
            environment={c.ENV_ALIAS_CACHE_TTL: str(config.inference_alias_cache_ttl_seconds)},
        )
        self.synchronous_only(self.serving.function)
        clients = config.prediction_api_clients
        prediction_methods = [
            self.api.add_route(method, path, self.serving.function, service=True, api_key=bool(clients))
            for method, path in self.serving.routes
        ]
        if clients:
            self.api.add_clients(
                clients,
                rate=config.prediction_client_rate,
                burst=config.prediction_client_burst,
                quota_per_day=config.prediction_client_quota_per_day,
                methods=prediction_methods,
            )
        self.approvals = self.add_approvals()
        self.lifecycle = self.add_lifecycle(after_register=self.approvals.chain)
        self.add_model_routes(api_fn)
        self.add_release_routes(api_fn)
        self.ingestion = add_ingestion(self)
        add_dataset_routes(self, api_fn)
        self.monitoring = Monitoring(self, c.MONITORING_ID, api_function=api_fn, serving_function=self.serving.function)
        self.governance = Governance(
            self,
            c.GOVERNANCE_ID,
            api_function=api_fn,
            retired_transition_days=config.retired_artifact_transition_days,
            audit_retention_days=config.audit_retention_days,
        )
        self.reproduction = Reproduction(self, c.REPRODUCTION_ID, api_function=api_fn)
        self.hardening = Hardening(
            self,
            HARDENING_ID,
            dead_letter_queues={
                "Ingestion": self.ingestion.dead_letters,
                "Monitoring": self.monitoring.dead_letters,
            },
            alarm_topic=self.monitoring.topic,
            log_retention=_retention(config.log_retention_days),
            api_stage=self.api.rest_api.deployment_stage,
            waf_web_acl_arn=config.waf_web_acl_arn,
        )
        self.encryption.encrypt_stack(
            self,
            except_buckets={access_logs.bucket: "S3 server access logs can only be delivered to an SSE-S3 bucket"},
        )

        self.outputs()
        self.acknowledge()
        acknowledge_design_choices(self)

    # -- building blocks used by every component -------------------------------------------
    def layer(self, id_: str, name: str, description: str) -> lambda_.LayerVersion:
        """layers/<name> built (or reused from layers/.build) with pip for the configured architecture.

        A layer with no wheel for that architecture fails synthesis with a LayerBuildError naming
        the packages and whether the other architecture would do.
        """
        layer = lambda_.LayerVersion(
            self,
            id_,
            code=lambda_.Code.from_asset(str(build_layer(name, self.config.architecture, RUNTIME_VERSION))),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURES[self.config.architecture]],
            description=description,
        )
        layer.node.add_metadata(LAYER_METADATA, name)  # which layers/<name> (tests/infra/test_packaging.py)
        return layer

    def base_environment(self) -> dict[str, str]:
        return {
            c.ENV_VERSION: stack_version(),
            c.ENV_CODE_VERSION: functions_code_version(),
            c.ENV_DATA_BUCKET: self.data.bucket.bucket_name,
            c.ENV_ARTIFACTS_BUCKET: self.artifacts.bucket.bucket_name,
            c.ENV_REGISTRY_TABLE: self.registry.table.table_name,
            c.ENV_METADATA_TABLE: self.metadata.table.table_name,
        }

    def function(
        self,
        id_: str,
        handler: str,
        *,
        layers: list[lambda_.ILayerVersion] | None = None,
        environment: dict[str, str] | None = None,
        memory_mb: int = 256,
        timeout: Duration | None = None,
        description: str = "",
    ) -> StepwiseFunction:
        return StepwiseFunction(
            self,
            id_,
            code=self.code,
            handler=handler,
            layers=layers if layers is not None else [self.base_layer],
            environment={**self.base_environment(), **(environment or {})},
            architecture=self.config.architecture,
            log_retention_days=self.config.log_retention_days,
            memory_mb=memory_mb,
            timeout=timeout,
            description=description,
        )

    def grant_health_probes(self, fn: lambda_.IFunction) -> None:
        """HeadBucket (s3:ListBucket on the bucket) and DescribeTable on the tables, nothing more."""
        fn.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[self.data.bucket.bucket_arn, self.artifacts.bucket.bucket_arn],
            )
        )
        fn.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:DescribeTable"],
                resources=[self.registry.table.table_arn, self.metadata.table.table_arn],
            )
        )

    def outputs(self) -> None:
        CfnOutput(self, c.OUT_DATA_BUCKET, value=self.data.bucket.bucket_name)
        CfnOutput(self, c.OUT_ARTIFACTS_BUCKET, value=self.artifacts.bucket.bucket_name)
        CfnOutput(self, c.OUT_REGISTRY_TABLE, value=self.registry.table.table_name)
        CfnOutput(self, c.OUT_METADATA_TABLE, value=self.metadata.table.table_name)
        CfnOutput(self, c.OUT_API_ID, value=self.api.rest_api.rest_api_id)
        CfnOutput(self, c.OUT_API_URL, value=self.api.rest_api.url)
        CfnOutput(self, c.OUT_VERSION, value=stack_version())
        CfnOutput(self, c.OUT_LIFECYCLE_SM_ARN, value=self.lifecycle.state_machine.state_machine_arn)
        CfnOutput(self, c.OUT_APPROVALS_TOPIC_ARN, value=self.approvals.topic.topic_arn)
        CfnOutput(self, c.OUT_KEY_ARN, value=self.encryption.key.key_arn)

    # -- lifecycle -------------------------------------------------------------------------
    SAGEMAKER_SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"

    def add_lifecycle(self, after_register: sfn.IChainable | None = None) -> Lifecycle:
        """Train/evaluate (container image), register and run-record functions, and the workflow."""
        retention = _retention(self.config.log_retention_days)
        image = training_image_context()
        image_fns = [
            ImageFunction(
                self,
                id_,
                context_dir=image,
                handler=handler,
                environment=self.base_environment(),
                architecture=self.config.architecture,
                log_retention=retention,
                description=description,
            ).function
            for id_, handler, description in (
                (c.TRAIN_FUNCTION_ID, TRAIN_HANDLER, "Lifecycle: train"),
                (c.EVALUATE_FUNCTION_ID, EVALUATE_HANDLER, "Lifecycle: evaluate and gate"),
            )
        ]
        train_fn, evaluate_fn = image_fns
        register_fn = self.function(
            c.REGISTER_FUNCTION_ID, REGISTER_HANDLER, description="Lifecycle: register a version"
        ).function
        run_fn = self.function(
            c.RUN_RECORD_FUNCTION_ID, RUN_RECORD_HANDLER, description="Lifecycle: run record"
        ).function
        read_items = ["dynamodb:GetItem"]
        write_items = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"]
        for fn in (*image_fns, register_fn, run_fn):
            self.synchronous_only(fn)
            allow_table(fn, self.metadata.table, write_items)  # specs, datasets, run records, audit
            allow_table(fn, self.registry.table, read_items)
        for fn in image_fns:
            allow_objects(fn, self.data.bucket, "validated/", ["s3:GetObject", "s3:GetObjectVersion"], "datasets")
        allow_objects(train_fn, self.artifacts.bucket, "models/", ["s3:GetObject", "s3:PutObject"], "artifacts")
        allow_objects(evaluate_fn, self.artifacts.bucket, "models/", ["s3:GetObject"], "artifacts")
        allow_table(register_fn, self.registry.table, [*write_items, "dynamodb:Query"])
        sagemaker = SageMakerTraining(
            self,
            c.SAGEMAKER_TRAINING_ID,
            image_uri=str(self.node.try_get_context("stepwise:sagemaker_image") or self.SAGEMAKER_SKLEARN_IMAGE),
            data_bucket=self.data.bucket,
            artifacts_bucket=self.artifacts.bucket,
            metadata_table=self.metadata.table,
            registry_table=self.registry.table,
            environment=self.base_environment(),
        )
        return Lifecycle(
            self,
            c.LIFECYCLE_ID,
            run_record_fn=run_fn,
            train_fn=train_fn,
            evaluate_fn=evaluate_fn,
            register_fn=register_fn,
            log_retention=retention,
            sagemaker=sagemaker,
            after_register=after_register,
        )

    def allow_lifecycle_start(self, fn: lambda_.Function) -> None:
        """A function that starts the lifecycle workflow: its ARN in the environment, and the grant."""
        machine = self.lifecycle.state_machine
        fn.add_environment(c.ENV_LIFECYCLE_SM_ARN, machine.state_machine_arn)
        machine.grant_start_execution(fn)
        fn.add_to_role_policy(
            iam.PolicyStatement(actions=["states:DescribeExecution"], resources=[self.lifecycle.executions_arn])
        )
        assert fn.role is not None
        acknowledge(
            fn.role,
            f"AwsSolutions::AwsSolutions-IAM5[Resource::{self.lifecycle.executions_nag_id}]",
            "DescribeExecution on the lifecycle workflow's executions (one per run), to tell a new start from a "
            "repeated one.",
        )

    def add_model_routes(self, api_fn: lambda_.Function) -> None:
        """Registry reads, specs and runs on the control API (functions/handlers/routes/models.py)."""
        allow_table(api_fn, self.registry.table, ["dynamodb:GetItem", "dynamodb:Query"], index=True)
        allow_table(
            api_fn,
            self.metadata.table,
            ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem"],
        )
        self.allow_lifecycle_start(api_fn)
        for method, path in (
            ("GET", "/v1/models"),
            ("GET", "/v1/models/{name}/versions"),
            ("GET", "/v1/models/{name}/versions/{version}"),
            ("GET", "/v1/models/{name}/runs"),
            ("PUT", "/v1/specs/{name}"),
            ("GET", "/v1/specs/{name}"),
            ("POST", "/v1/models/{name}/train"),
        ):
            self.api.add_route(method, path, api_fn)

    # -- approvals and release -------------------------------------------------------------
    def add_approvals(self) -> Approvals:
        """The approval (waitForTaskToken) and release functions, the topic, and the state chain
        the lifecycle runs after Register."""
        approval_fn = self.function(
            c.APPROVAL_FUNCTION_ID, APPROVAL_HANDLER, description="Lifecycle: request an approval"
        ).function
        release_fn = self.function(
            c.RELEASE_FUNCTION_ID, RELEASE_HANDLER, description="Lifecycle: promote, canary, roll back"
        ).function
        approvals = Approvals(
            self,
            c.APPROVALS_ID,
            approval_fn=approval_fn,
            release_fn=release_fn,
            approval_timeout=Duration.seconds(self.config.approval_timeout_seconds),
        )
        approval_fn.add_environment(c.ENV_APPROVALS_TOPIC_ARN, approvals.topic.topic_arn)
        approvals.topic.grant_publish(approval_fn)
        grant_release_access(
            approval_fn, registry=self.registry.table, metadata=self.metadata.table, write_registry=False
        )
        grant_release_access(
            release_fn, registry=self.registry.table, metadata=self.metadata.table, artifacts=self.artifacts.bucket
        )
        grant_canary_metrics(release_fn)
        for fn in (approval_fn, release_fn):
            self.synchronous_only(fn)
        return approvals

    def add_release_routes(self, api_fn: lambda_.Function) -> None:
        """Approvals and rollback on the control API; decisions answer the lifecycle's waiting task."""
        api_fn.add_environment(c.ENV_FOUR_EYES, "true" if self.config.four_eyes else "false")
        grant_release_access(
            api_fn, registry=self.registry.table, metadata=self.metadata.table, artifacts=self.artifacts.bucket
        )
        grant_decisions(api_fn, self.lifecycle.state_machine)
        for method, path in (
            ("GET", "/v1/approvals"),
            ("GET", "/v1/approvals/{approval_id}"),
            ("POST", "/v1/approvals/{approval_id}/approve"),
            ("POST", "/v1/approvals/{approval_id}/reject"),
            ("POST", "/v1/models/{name}/rollback"),
        ):
            self.api.add_route(method, path, api_fn)

    def synchronous_only(self, fn: lambda_.IFunction) -> None:
        acknowledge(
            fn,
            "Serverless::Serverless-LambdaDLQ",
            "Invoked synchronously (API Gateway or Step Functions); the caller sees and retries errors, "
            "so there is no asynchronous event to dead-letter.",
        )

    def acknowledge(self) -> None:
        acknowledge(
            self.api.rest_api,
            "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            "API Gateway's account-level CloudWatch role; AWS documents this managed policy for it.",
        )
        acknowledge(
            self.api.rest_api,
            "AwsSolutions::AwsSolutions-COG4",
            "Routes are IAM-authorized (SigV4) by default; a Cognito user pool authorizer for the "
            "control-plane routes is a stack setting (cognito_user_pool_arn); prediction routes stay on "
            "IAM for service callers.",
        )
        acknowledge(
            self.api.rest_api,
            "AwsSolutions::AwsSolutions-APIG3",
            "A WAF web ACL is an optional stack setting (waf_web_acl_arn); stage throttling limits abuse by default.",
        )
