"""The two stacks of the app: the stateful stores (`StoresStack`) and everything that runs
(`StepwiseStack`, the compute stack the CLI names), one construct per component.

The stores stack builds the retained, encrypted stores into one typed `Stores`; the compute stack
receives it and hands each component, by keyword-only typed props, only what it needs (the layers
and the function factory are built there once). Components import grants (infra/grants.py) and
their own building blocks, never the stacks. References run one way, compute -> stores, as
CloudFormation exports of the stores stack that the compute stack imports; nothing in the stores
stack names a compute resource (resource policies that would are identity policies on the compute
side instead), so the stores deploy, and stay, on their own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from aws_cdk import Aws, CfnOutput, Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra import constants as c
from infra.assets import console_assets_dir, functions_asset_dir, functions_code_version
from infra.config import StackConfig
from infra.constructs.api import Api
from infra.constructs.approvals import APPROVAL_HANDLER, RELEASE_HANDLER, Approvals
from infra.constructs.batch import Batch
from infra.constructs.console import Console
from infra.constructs.control import ControlApi
from infra.constructs.encryption import ENCRYPTION_ID, Encryption
from infra.constructs.function import FunctionFactory, log_retention, stepwise_layer
from infra.constructs.governance import Governance
from infra.constructs.hardening import HARDENING_ID, Hardening
from infra.constructs.ingestion import Ingestion
from infra.constructs.lifecycle import Lifecycle, LifecycleTasks, SageMakerTraining, training_image_context
from infra.constructs.materialize import Materialize
from infra.constructs.monitoring import Monitoring
from infra.constructs.offline_store import OfflineStore
from infra.constructs.personas import PERSONA_ROUTES, Personas
from infra.constructs.reproduction import Reproduction
from infra.constructs.serving import Serving
from infra.constructs.storage import AccessLogs, ArtifactStore, AuditArchive, DataStore
from infra.constructs.tables import Metadata, OnlineStore, Registry
from infra.grants import grant_model_alarms, synchronous_only
from infra.nag import acknowledge, acknowledge_design_choices

SAGEMAKER_SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


@dataclass(frozen=True)
class Stores:
    """The stateful stores (retained, encrypted under one key) and the constructs that hold them:
    everything the compute components are handed of them."""

    encryption: Encryption
    access_logs: AccessLogs
    data: DataStore
    artifacts: ArtifactStore
    registry: Registry
    metadata: Metadata
    online: OnlineStore
    audit_archive: AuditArchive

    @property
    def access_logs_bucket(self) -> s3.Bucket:
        return self.access_logs.bucket

    @property
    def data_bucket(self) -> s3.Bucket:
        return self.data.bucket

    @property
    def artifacts_bucket(self) -> s3.Bucket:
        return self.artifacts.bucket

    @property
    def audit_archive_bucket(self) -> s3.Bucket:
        return self.audit_archive.bucket

    @property
    def registry_table(self) -> dynamodb.Table:
        return self.registry.table

    @property
    def metadata_table(self) -> dynamodb.Table:
        return self.metadata.table

    @property
    def online_table(self) -> dynamodb.Table:
        return self.online.table


def build_stores(scope: Construct, config: StackConfig) -> Stores:
    """The stores, created in `scope` with their construct ids (so their logical ids)."""
    encryption = Encryption(scope, ENCRYPTION_ID, stage=config.stage)
    access_logs = AccessLogs(scope, c.ACCESS_LOGS_ID)
    data = DataStore(
        scope,
        c.DATA_STORE_ID,
        access_logs=access_logs.bucket,
        capture_expiration_days=config.capture_retention_days,
    )
    artifacts = ArtifactStore(
        scope,
        c.ARTIFACT_STORE_ID,
        access_logs=access_logs.bucket,
        report_expiration_days=config.report_retention_days,
    )
    return Stores(
        encryption=encryption,
        access_logs=access_logs,
        data=data,
        artifacts=artifacts,
        registry=Registry(scope, c.REGISTRY_ID),
        metadata=Metadata(scope, c.METADATA_ID),
        online=OnlineStore(scope, c.ONLINE_STORE_ID),
        audit_archive=AuditArchive(
            scope,
            c.AUDIT_ARCHIVE_ID,
            access_logs=access_logs.bucket,
            retention_days=config.audit_retention_days,
        ),
    )


def stack_version() -> str:
    try:
        return version("stepwise")
    except PackageNotFoundError:
        return "0.0.0+local"


class StoresStack(Stack):
    """The stateful stores (`stores`), retained on deletion and under the stack's KMS key."""

    def __init__(self, scope: Construct, id_: str, *, config: StackConfig, **kwargs: object) -> None:
        super().__init__(scope, id_, **kwargs)  # type: ignore[arg-type]
        self.config = config
        self.stores = build_stores(self, config)
        self.stores.encryption.encrypt_stack(
            self,
            except_buckets={
                self.stores.access_logs_bucket: "S3 server access logs can only be delivered to an SSE-S3 bucket"
            },
        )
        if config.console:
            self.allow_console_access_logs()
        acknowledge_design_choices(self)

    def allow_console_access_logs(self) -> None:
        """The console stack's buckets log into the access-log bucket under console/. The stores
        stack names no other stack's resource, so the source is the console stack's bucket names
        (CloudFormation names them `<stack name in lower case>-...`) in this account."""
        bucket = self.stores.access_logs_bucket
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("logging.s3.amazonaws.com")],
                actions=["s3:PutObject"],
                resources=[bucket.arn_for_objects(f"{c.CONSOLE_ACCESS_LOG_PREFIX}*")],
                conditions={
                    "ArnLike": {"aws:SourceArn": f"arn:{Aws.PARTITION}:s3:::{c.CONSOLE_STACK_NAME.lower()}-*"},
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                },
            )
        )


class StepwiseStack(Stack):
    """The compute stack: every component that runs, on the stores of a `StoresStack`."""

    def __init__(self, scope: Construct, id_: str, *, config: StackConfig, stores: Stores, **kwargs: object) -> None:
        super().__init__(scope, id_, **kwargs)  # type: ignore[arg-type]
        self.config = config
        self.stores = stores
        self.encryption, self.data, self.artifacts = stores.encryption, stores.data, stores.artifacts
        self.registry, self.metadata = stores.registry, stores.metadata
        self.build_compute(stores, config=config)
        self.outputs()
        self.acknowledge()
        acknowledge_design_choices(self)

    def build_compute(self, stores: Stores, *, config: StackConfig) -> None:
        """Every component that runs (functions, API, workflows, schedules, alarms), handed only the
        stores; stores and compute share no other construct."""
        retention = log_retention(config.log_retention_days)
        data_bucket, artifacts_bucket = stores.data_bucket, stores.artifacts_bucket
        registry_table, metadata_table = stores.registry_table, stores.metadata_table

        # -- what the functions share: layers (each built once), code asset, environment ---------
        def layer(id_: str, name: str, description: str) -> lambda_.LayerVersion:
            return stepwise_layer(self, id_, name=name, description=description, architecture=config.architecture)

        self.base_layer = layer(c.BASE_LAYER_ID, "base", "Powertools and pydantic")
        self.data_layer = layer(c.DATA_LAYER_ID, "data", "pyarrow, numpy, Powertools and pydantic (validation)")
        self.inference_layer = layer(c.INFERENCE_LAYER_ID, "inference", "ONNX Runtime, numpy, Powertools, pydantic")
        self.functions = FunctionFactory(
            self,
            code=lambda_.Code.from_asset(str(functions_asset_dir())),
            layers=[self.base_layer],
            environment={
                c.ENV_VERSION: stack_version(),
                c.ENV_CODE_VERSION: functions_code_version(),
                c.ENV_DATA_BUCKET: data_bucket.bucket_name,
                c.ENV_ARTIFACTS_BUCKET: artifacts_bucket.bucket_name,
                c.ENV_REGISTRY_TABLE: registry_table.table_name,
                c.ENV_METADATA_TABLE: metadata_table.table_name,
            },
            architecture=config.architecture,
            log_retention_days=config.log_retention_days,
        )

        # -- API and the components behind it (the order of grants and routes is the template's) --
        self.api = Api(
            self,
            c.API_ID,
            throttle_rate=config.api_throttle_rate,
            throttle_burst=config.api_throttle_burst,
            log_retention=retention,
            user_pool_arn=config.cognito_user_pool_arn,
        )
        self.control = ControlApi(
            self,
            c.CONTROL_API_ID,
            functions=self.functions,
            api=self.api,
            data_bucket=data_bucket,
            artifacts_bucket=artifacts_bucket,
            registry_table=registry_table,
            metadata_table=metadata_table,
        )
        api_fn = self.control.function
        self.serving = Serving(
            self,
            c.SERVING_ID,
            functions=self.functions,
            layer=self.inference_layer,
            api=self.api,
            registry_table=registry_table,
            online_table=stores.online_table,
            artifacts_bucket=artifacts_bucket,
            data_bucket=data_bucket,
            reserved_concurrency=config.inference_reserved_concurrency,
            memory_mb=config.inference_memory_mb,
            environment={c.ENV_ALIAS_CACHE_TTL: str(config.inference_alias_cache_ttl_seconds)},
            api_clients=config.prediction_api_clients,
            client_rate=config.prediction_client_rate,
            client_burst=config.prediction_client_burst,
            client_quota_per_day=config.prediction_client_quota_per_day,
        )
        self.approvals = Approvals(
            self,
            c.APPROVALS_ID,
            approval_fn=self.functions(
                c.APPROVAL_FUNCTION_ID, APPROVAL_HANDLER, description="Lifecycle: request an approval"
            ),
            release_fn=self.functions(
                c.RELEASE_FUNCTION_ID, RELEASE_HANDLER, description="Lifecycle: promote, canary, roll back"
            ),
            approval_timeout=Duration.seconds(config.approval_timeout_seconds),
            registry_table=registry_table,
            metadata_table=metadata_table,
            artifacts_bucket=artifacts_bucket,
        )
        self.lifecycle_tasks = LifecycleTasks(
            self,
            c.LIFECYCLE_TASKS_ID,
            functions=self.functions,
            image_context=training_image_context(),
            data_bucket=data_bucket,
            artifacts_bucket=artifacts_bucket,
            registry_table=registry_table,
            metadata_table=metadata_table,
        )
        self.offline_store = OfflineStore(
            self,
            c.OFFLINE_STORE_ID,
            stage=config.stage,
            artifacts_bucket=artifacts_bucket,
            key=self.encryption.key,
            join_function=self.lifecycle_tasks.train,
        )
        self.lifecycle = Lifecycle(
            self,
            c.LIFECYCLE_ID,
            run_record_fn=self.lifecycle_tasks.run_record,
            train_fn=self.lifecycle_tasks.train,
            evaluate_fn=self.lifecycle_tasks.evaluate,
            register_fn=self.lifecycle_tasks.register,
            log_retention=retention,
            sagemaker=SageMakerTraining(
                self,
                c.SAGEMAKER_TRAINING_ID,
                image_uri=str(self.node.try_get_context("stepwise:sagemaker_image") or SAGEMAKER_SKLEARN_IMAGE),
                data_bucket=data_bucket,
                artifacts_bucket=artifacts_bucket,
                metadata_table=metadata_table,
                registry_table=registry_table,
                environment=self.functions.environment,
            ),
            after_register=self.approvals,
        )
        self.control.add_model_routes(lifecycle=self.lifecycle)
        self.control.add_import_routes()
        self.control.add_release_routes(
            lifecycle=self.lifecycle,
            four_eyes=config.four_eyes,
            trusted_session_roles=config.trusted_session_roles,
            approvers=config.approvers,
        )
        self.ingestion = Ingestion(
            self,
            c.INGESTION_ID,
            functions=self.functions,
            layer=self.data_layer,
            data_bucket=data_bucket,
            artifacts_bucket=artifacts_bucket,
            metadata_table=metadata_table,
            lifecycle=self.lifecycle,
            api=self.api,
            api_function=api_fn,
        )
        self.batch = Batch(
            self,
            c.BATCH_ID,
            functions=self.functions,
            image_context=training_image_context(),
            data_bucket=data_bucket,
            artifacts_bucket=artifacts_bucket,
            registry_table=registry_table,
            metadata_table=metadata_table,
            api=self.api,
            api_function=api_fn,
        )
        self.materialize = Materialize(
            self,
            c.MATERIALIZE_ID,
            functions=self.functions,
            layer=self.data_layer,
            data_bucket=data_bucket,
            metadata_table=metadata_table,
            online_table=stores.online_table,
            api=self.api,
            api_function=api_fn,
            announcers=[self.ingestion.function, self.ingestion.chunk_function],
            log_retention=retention,
        )
        self.monitoring = Monitoring(
            self,
            c.MONITORING_ID,
            functions=self.functions,
            layer=self.data_layer,
            lifecycle=self.lifecycle,
            api=self.api,
            api_function=api_fn,
            serving_function=self.serving.function,
            data_bucket=data_bucket,
            artifacts_bucket=artifacts_bucket,
            registry_table=registry_table,
            metadata_table=metadata_table,
            log_retention=retention,
            concurrency=config.drift_concurrency,
        )
        self.materialize.add_freshness_alarm(
            self.monitoring.topic, config.online_freshness_alarm_seconds, config.lookup_miss_alarm_percent
        )
        for fn in (self.approvals.release_fn, api_fn):  # release steps, rollback and retirement
            grant_model_alarms(fn, topic_arn=self.monitoring.topic.topic_arn)
            if isinstance(fn, lambda_.Function):
                fn.add_environment(c.ENV_LOOKUP_MISS_ALARM_PERCENT, f"{config.lookup_miss_alarm_percent:g}")
        self.governance = Governance(
            self,
            c.GOVERNANCE_ID,
            functions=self.functions,
            layer=self.data_layer,
            api=self.api,
            api_function=api_fn,
            audit_archive_bucket=stores.audit_archive_bucket,
            data_bucket=data_bucket,
            artifacts_bucket=artifacts_bucket,
            registry_table=registry_table,
            metadata_table=metadata_table,
            register_function=self.lifecycle_tasks.register,
            retired_transition_days=config.retired_artifact_transition_days,
        )
        self.reproduction = Reproduction(
            self,
            c.REPRODUCTION_ID,
            functions=self.functions,
            image_context=training_image_context(),
            data_bucket=data_bucket,
            artifacts_bucket=artifacts_bucket,
            registry_table=registry_table,
            metadata_table=metadata_table,
            api=self.api,
            api_function=api_fn,
        )
        self.hardening = Hardening(
            self,
            HARDENING_ID,
            dead_letter_queues={
                "Ingestion": self.ingestion.dead_letters,
                "Monitoring": self.monitoring.dead_letters,
                "Materialize": self.materialize.dead_letters,
            },
            alarm_topic=self.monitoring.topic,
            log_retention=retention,
            api_stage=self.api.rest_api.deployment_stage,
            waf_web_acl_arn=config.waf_web_acl_arn,
        )
        self.personas = Personas(
            self,
            c.PERSONAS_ID,
            rest_api=self.api.rest_api,
            data_bucket=data_bucket,
            artifacts_bucket=artifacts_bucket,
            audit_archive_bucket=stores.audit_archive_bucket,
            persona_roles=config.persona_roles,
            alarm_topic=self.monitoring.topic,
            refused_decisions_threshold=config.refused_decisions_alarm_threshold,
        )
        persona_groups = config.console_persona_groups
        if persona_groups:  # Cognito callers held to their groups' personas by the API function
            self.control.function.add_environment(
                c.ENV_PERSONA_GROUPS, json.dumps({p: list(g) for p, g in persona_groups.items()})
            )
        self.pre_token_fn: lambda_.Function | None = None
        if config.console:  # the console's user pool adds persona scopes to access tokens from groups
            self.pre_token_fn = self.functions(
                c.PRE_TOKEN_FUNCTION_ID,
                "functions.handlers.pre_token.lambda_handler",
                environment={c.ENV_PERSONA_GROUPS: json.dumps({p: list(g) for p, g in persona_groups.items()})},
                description="Console sign-in: persona scopes from the user's Cognito groups",
            )
            synchronous_only(self.pre_token_fn)  # Cognito invokes it synchronously at sign-in
            # approval notifications link to the console: its URL is the console stack's SSM parameter
            parameter = c.CONSOLE_URL_PARAMETER.format(stage=config.stage)
            approval_fn = self.approvals.approval_fn
            assert isinstance(approval_fn, lambda_.Function)
            approval_fn.add_environment(c.ENV_CONSOLE_URL_PARAMETER, parameter)
            approval_fn.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["ssm:GetParameter"],
                    resources=[f"arn:{Aws.PARTITION}:ssm:{Aws.REGION}:{Aws.ACCOUNT_ID}:parameter{parameter}"],
                )
            )
        stores.encryption.encrypt_stack(self, except_buckets={})

    def outputs(self) -> None:
        CfnOutput(self, c.OUT_DATA_BUCKET, value=self.data.bucket.bucket_name)
        CfnOutput(self, c.OUT_ARTIFACTS_BUCKET, value=self.artifacts.bucket.bucket_name)
        CfnOutput(self, c.OUT_REGISTRY_TABLE, value=self.registry.table.table_name)
        CfnOutput(self, c.OUT_METADATA_TABLE, value=self.metadata.table.table_name)
        CfnOutput(self, c.OUT_ONLINE_TABLE, value=self.stores.online_table.table_name)
        CfnOutput(self, c.OUT_API_ID, value=self.api.rest_api.rest_api_id)
        CfnOutput(self, c.OUT_API_URL, value=self.api.rest_api.url)
        CfnOutput(self, c.OUT_VERSION, value=stack_version())
        CfnOutput(self, c.OUT_LIFECYCLE_SM_ARN, value=self.lifecycle.state_machine.state_machine_arn)
        CfnOutput(self, c.OUT_APPROVALS_TOPIC_ARN, value=self.approvals.topic.topic_arn)
        CfnOutput(self, c.OUT_KEY_ARN, value=self.encryption.key.key_arn)

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


class ConsoleStack(Stack):
    """The web console on AWS (setting `console`): its assets behind CloudFront, its user pool and
    its API in front of the compute stack's functions (infra/constructs/console.py)."""

    def __init__(
        self, scope: Construct, id_: str, *, config: StackConfig, compute: StepwiseStack, **kwargs: object
    ) -> None:
        super().__init__(scope, id_, **kwargs)  # type: ignore[arg-type]
        assert compute.pre_token_fn is not None
        self.console = Console(
            self,
            c.CONSOLE_ID,
            routes=compute.api.routes,
            persona_routes=PERSONA_ROUTES,
            access_logs_bucket_name=compute.stores.access_logs_bucket.bucket_name,
            assets_dir=console_assets_dir(),
            stage=config.stage,
            mfa=config.console_mfa,
            log_retention=log_retention(config.log_retention_days),
            throttle_rate=config.api_throttle_rate,
            throttle_burst=config.api_throttle_burst,
            pre_token_function=compute.pre_token_fn,
            user_pool_id=config.console_user_pool_id,
            user_pool_domain=config.console_user_pool_domain,
            certificate_arn=config.console_certificate_arn,
            domain_names=config.console_domain_names,
            waf_web_acl_arn=config.console_waf_web_acl_arn,
        )
        CfnOutput(
            self,
            c.OUT_CONSOLE_PRE_TOKEN_FUNCTION,
            value=compute.pre_token_fn.function_arn,
            description="pre-token-generation trigger (V2) of the console's user pool (attach it to a given pool)",
        )
        acknowledge_design_choices(self)
