"""The lifecycle workflow: one standard state machine for every model.

    StartRun -> [import?] VerifyImport (evaluate function)
             | [compute?] Train (Lambda image) | SageMakerTrain -> CollectTraining
             -> Evaluate -> Register -> FinishRun -> [gates passed?] after_register (default Succeed)
                                                                    | GateFailed (Fail)

Input: {"spec", "spec_version", "dataset", "dataset_version", "started_by"}, plus "import_id" for
an import run (an ONNX model trained elsewhere: verified instead of trained, then evaluated,
registered and released like any candidate); executions are named
`<model>-<dataset version>-<spec version>` by the starter (`<model>-import-<import id>` for
imports). Every task has Retry for transient
errors (the SageMaker job: its service's errors too) and a Catch that records the failure on the
run record (naming the step, the error and its cause) before the execution fails with the step's
own error name; what follows registration (the approvals chain) is handed the same recorder.

Train and Evaluate need scikit-learn, scipy, numpy and pyarrow (~270 MB): they run from a
container image built from layers/training (Dockerfile + pinned requirements + functions/). The
image asset is only staged at synth (no Docker); it is built at deploy.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Size, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra import constants as c
from infra.constructs.function import ARCHITECTURES, FunctionFactory, ObservedFunction
from infra.grants import allow_objects, allow_table, logical_arn, synchronous_only
from infra.nag import acknowledge

ROOT = Path(__file__).resolve().parent.parent.parent
TRAINING_DIR = ROOT / "layers" / "training"
STAGING = ROOT / ".build"
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache")

TRAIN_HANDLER = "functions.handlers.train.lambda_handler"
EVALUATE_HANDLER = "functions.handlers.evaluate.lambda_handler"
REGISTER_HANDLER = "functions.handlers.register.lambda_handler"
RUN_RECORD_HANDLER = "functions.handlers.run_record.lambda_handler"

# Errors worth retrying: our StoreUnavailable and Throttled (functions/models/errors.py; a task's
# stray botocore error is typed as one of them by functions/handlers/errors.py) and Lambda's own
# transient failures.
TRANSIENT_ERRORS = [
    "StoreUnavailable",
    "Throttled",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]
# The SageMaker integration's own errors, as Step Functions names them: the service's API errors
# (ThrottlingException "Rate exceeded", ResourceLimitExceeded) all arrive as
# SageMaker.AmazonSageMakerException; a job that ran and failed is States.TaskFailed (not retried).
SAGEMAKER_TRANSIENT_ERRORS = ["SageMaker.AmazonSageMakerException"]
GATE_FAILED_ERROR = "GateFailed"  # functions/models/runs.py GATE_FAILED_ERROR
PLATFORMS = {"arm64": ecr_assets.Platform.LINUX_ARM64, "x86_64": ecr_assets.Platform.LINUX_AMD64}


def training_image_context() -> Path:
    """The image's build context: the Dockerfile, its requirements and a copy of functions/,
    staged under .build/ by content hash (so the image asset changes when the code does)."""
    sources = [TRAINING_DIR / "Dockerfile", TRAINING_DIR / "requirements.txt"]
    digest = hashlib.sha256()
    for path in [*sources, *sorted((ROOT / "functions").rglob("*.py"))]:
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    out = STAGING / f"training-image-{digest.hexdigest()[:16]}"
    if not (out / "functions").is_dir():
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for path in sources:
            shutil.copy2(path, tmp / path.name)
        shutil.copytree(ROOT / "functions", tmp / "functions", ignore=_IGNORED)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    return out


class ImageFunction(ObservedFunction):
    """A Lambda function from the training image, with the same defaults as StepwiseFunction:
    its own role and retained log group, X-Ray, JSON logs."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        context_dir: Path,
        handler: str,
        environment: Mapping[str, str],
        architecture: str,
        log_retention: logs.RetentionDays,
        memory_mb: int = 3008,
        timeout: Duration | None = None,
        description: str = "",
    ) -> None:
        super().__init__(scope, id_, log_retention=log_retention)
        self.function = lambda_.DockerImageFunction(
            self,
            "Function",
            code=lambda_.DockerImageCode.from_image_asset(
                str(context_dir), cmd=[handler], platform=PLATFORMS[architecture]
            ),
            architecture=ARCHITECTURES[architecture],
            memory_size=memory_mb,
            ephemeral_storage_size=Size.mebibytes(2048),
            timeout=timeout or Duration.minutes(15),
            **self.settings(environment, description),
        )


class LifecycleTasks(Construct):
    """The workflow's task functions and their grants: Train and Evaluate from the training image,
    Register and RunRecord from the shared code asset (all made in the factory's scope).

    Exposes `train`, `evaluate`, `register`, `run_record`."""

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
    ) -> None:
        super().__init__(scope, id_)
        image_fns = [
            ImageFunction(
                functions.scope,
                fn_id,
                context_dir=image_context,
                handler=handler,
                environment=functions.environment,
                architecture=functions.architecture,
                log_retention=functions.log_retention,
                description=description,
            ).function
            for fn_id, handler, description in (
                (c.TRAIN_FUNCTION_ID, TRAIN_HANDLER, "Lifecycle: train"),
                (c.EVALUATE_FUNCTION_ID, EVALUATE_HANDLER, "Lifecycle: evaluate and gate"),
            )
        ]
        self.train, self.evaluate = image_fns
        self.register = functions(c.REGISTER_FUNCTION_ID, REGISTER_HANDLER, description="Lifecycle: register a version")
        self.run_record = functions(c.RUN_RECORD_FUNCTION_ID, RUN_RECORD_HANDLER, description="Lifecycle: run record")
        read_items = ["dynamodb:GetItem"]
        write_items = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"]
        for fn in (*image_fns, self.register, self.run_record):
            synchronous_only(fn)
            allow_table(fn, metadata_table, write_items)  # specs, datasets, run records, audit
            allow_table(fn, registry_table, read_items)
        for fn in image_fns:
            allow_objects(fn, data_bucket, "validated/", ["s3:GetObject", "s3:GetObjectVersion"], "datasets")
        allow_objects(self.train, artifacts_bucket, "models/", ["s3:GetObject", "s3:PutObject"], "artifacts")
        # feature views' offline layouts: built once per source version, read by later trainings
        allow_objects(self.train, artifacts_bucket, c.PREFIX_OFFLINE, ["s3:GetObject", "s3:PutObject"], "layouts")
        # evaluation adds the holdout outputs to the reference profile (prediction drift)
        allow_objects(self.evaluate, artifacts_bucket, "models/", ["s3:GetObject", "s3:PutObject"], "artifacts")
        # an import run's VerifyImport step reads the uploaded (untrusted) bytes; it never writes there
        allow_objects(self.evaluate, artifacts_bucket, c.PREFIX_IMPORTS, ["s3:GetObject"], "imported models' uploads")
        allow_table(self.register, registry_table, [*write_items, "dynamodb:Query"])


class SageMakerTraining(Construct):
    """Settings of the optional SageMaker training path (a spec with compute="sagemaker")."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        image_uri: str,
        data_bucket: s3.IBucket,
        artifacts_bucket: s3.IBucket,
        metadata_table: dynamodb.ITable,
        registry_table: dynamodb.ITable,
        environment: Mapping[str, str],
        instance_type: str = "ml.m5.xlarge",
        max_runtime: Duration | None = None,
    ) -> None:
        super().__init__(scope, id_)
        self.environment = environment  # the functions' settings (tables, buckets, code version)
        self.image_uri = image_uri
        self.data_bucket = data_bucket
        self.artifacts_bucket = artifacts_bucket
        self.instance_type = instance_type
        self.max_runtime = max_runtime or Duration.hours(2)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="SageMaker training jobs of the lifecycle workflow",
        )
        # The workflow's task gets the role as an immutable import: CDK's SageMakerCreateTrainingJob
        # would otherwise grant s3:GetObject/ListBucket on "*" for the JSON-path input channel and
        # delete/list rights on the output bucket. The role's grants are only the ones below.
        self.task_role = iam.Role.from_role_arn(self, "TaskRole", self.role.role_arn, mutable=False)
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[data_bucket.arn_for_objects("validated/*")])
        )
        self.role.add_to_policy(  # the input channel is an S3 prefix: the job lists it
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[data_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": ["validated/*"]}},
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:PutObject"], resources=[artifacts_bucket.arn_for_objects("models/*")]
            )
        )
        self.role.add_to_policy(  # feature views' offline layouts (built once per source version)
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:PutObject"],
                resources=[artifacts_bucket.arn_for_objects(f"{c.PREFIX_OFFLINE}*")],
            )
        )
        self.role.add_to_policy(  # the job's output location (model.tar.gz)
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[artifacts_bucket.arn_for_objects("sagemaker/*")])
        )
        stack = Stack.of(self)
        self.role.add_to_policy(  # the job's own logs
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[
                    stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name="/aws/sagemaker/TrainingJobs:*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/TrainingJobs"}},
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
                resources=[metadata_table.table_arn],
            )
        )
        self.role.add_to_policy(iam.PolicyStatement(actions=["dynamodb:GetItem"], resources=[registry_table.table_arn]))
        for rule, reason in (
            (f"Resource::{logical_arn(data_bucket, self)}/validated/*", "Reads validated dataset objects."),
            (f"Resource::{logical_arn(artifacts_bucket, self)}/models/*", "Writes the run's model artifacts."),
            (f"Resource::{logical_arn(artifacts_bucket, self)}/sagemaker/*", "The training job's output prefix."),
            (
                f"Resource::{logical_arn(artifacts_bucket, self)}/{c.PREFIX_OFFLINE}*",
                "Reads and writes feature views' offline layouts.",
            ),
            (
                "Resource::*",
                "cloudwatch:PutMetricData has no resource-level permissions; the statement is conditioned "
                "on the SageMaker training-jobs namespace.",
            ),
            (
                "Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/sagemaker/"
                "TrainingJobs:*",
                "The training job's log streams, in the log group SageMaker names for training jobs.",
            ),
        ):
            acknowledge(self.role, f"AwsSolutions::AwsSolutions-IAM5[{rule}]", reason)


class RecordFailure(Protocol):
    """Makes (once per `state_id`) the task that records a failed `step` on the run record (the
    error and cause from `$.error`), then goes on to `then` (by default the workflow's Fail state,
    which fails the execution with the step's own error name and cause)."""

    def __call__(
        self, step: str, *, state_id: str | None = None, then: sfn.IChainable | None = None
    ) -> sfn.IChainable: ...


@runtime_checkable
class RecordsFailures(Protocol):
    """What follows registration and routes its own failures through the run record."""

    def chain_recording_failures(self, record_failure: RecordFailure) -> sfn.IChainable: ...


class Lifecycle(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        run_record_fn: lambda_.IFunction,
        train_fn: lambda_.IFunction,
        evaluate_fn: lambda_.IFunction,
        register_fn: lambda_.IFunction,
        log_retention: logs.RetentionDays,
        sagemaker: SageMakerTraining | None = None,
        after_register: sfn.IChainable | RecordsFailures | None = None,
        timeout: Duration | None = None,
    ) -> None:
        super().__init__(scope, id_)
        self._run_record_fn = run_record_fn
        failed = sfn.Fail(
            self,
            "Failed",
            error_path=sfn.JsonPath.string_at("$.error.Error"),
            cause_path=sfn.JsonPath.string_at("$.error.Cause"),
        )
        self._failed = failed

        start = self._task(
            "StartRun",
            run_record_fn,
            "$.run",
            step="start",
            payload=sfn.TaskInput.from_object(
                {
                    "action": "start",
                    "state": sfn.JsonPath.entire_payload,
                    "execution_name": sfn.JsonPath.string_at("$$.Execution.Name"),
                    "execution_arn": sfn.JsonPath.string_at("$$.Execution.Id"),
                }
            ),
        )
        train = self._task("Train", train_fn, "$.train", step="train")
        evaluate = self._task("Evaluate", evaluate_fn, "$.evaluation", step="evaluate")
        register = self._task("Register", register_fn, "$.registered", step="register")
        finish = self._task(
            "FinishRun",
            run_record_fn,
            sfn.JsonPath.DISCARD,
            step="finish",
            payload=sfn.TaskInput.from_object({"action": "finish", "state": sfn.JsonPath.entire_payload}),
        )
        gate_failed = sfn.Fail(
            self,
            "GateFailedState",
            state_name=GATE_FAILED_ERROR,
            error=GATE_FAILED_ERROR,
            cause="A gate failed: the version is registered as REJECTED with the reasons (see $.registered).",
        )
        passed: sfn.IChainable
        if isinstance(after_register, RecordsFailures):
            passed = after_register.chain_recording_failures(self._record_failure)
        elif after_register is not None:
            passed = after_register
        else:
            passed = sfn.Succeed(self, "Registered")
        gates = (
            sfn.Choice(self, "GatesPassed")
            .when(sfn.Condition.string_equals("$.registered.status", "REJECTED"), gate_failed)
            .otherwise(passed)
        )
        evaluate.next(register).next(finish).next(gates)

        self.training_job: tasks.SageMakerCreateTrainingJob | None = None
        if sagemaker is not None:
            collect = self._task(
                "CollectTraining",
                train_fn,
                "$.train",
                step="train",
                payload=sfn.TaskInput.from_object({"collect": True, "state": sfn.JsonPath.entire_payload}),
            )
            job = self._training_job(sagemaker)
            job.add_retry(
                errors=SAGEMAKER_TRANSIENT_ERRORS,
                interval=Duration.seconds(10),
                max_attempts=4,
                backoff_rate=2.0,
                jitter_strategy=sfn.JitterType.FULL,
            )
            job.add_catch(self._record_failure("train"), errors=["States.ALL"], result_path="$.error")
            job.next(collect)
            collect.next(evaluate)
            compute: sfn.IChainable = (
                sfn.Choice(self, "Compute")
                .when(sfn.Condition.string_equals("$.run.compute", "sagemaker"), job)
                .otherwise(train)
            )
        else:
            compute = train
        train.next(evaluate)
        verify_import = self._task(
            "VerifyImport",
            evaluate_fn,
            "$.train",
            step="verify_import",
            failure_state="RecordFailureVerifyImport",
            payload=sfn.TaskInput.from_object({"verify_import": True, "state": sfn.JsonPath.entire_payload}),
        )
        verify_import.next(evaluate)
        start.next(
            sfn.Choice(self, "ImportRun")
            .when(
                sfn.Condition.and_(sfn.Condition.is_present("$.import_id"), sfn.Condition.is_string("$.import_id")),
                verify_import,
            )
            .otherwise(compute)
        )

        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=RemovalPolicy.RETAIN)
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(start),
            state_machine_type=sfn.StateMachineType.STANDARD,
            tracing_enabled=True,
            timeout=timeout or Duration.days(8),
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            comment="Stepwise lifecycle: train, evaluate, register (and what follows registration)",
        )
        stack = Stack.of(self)
        name_id = stack.get_logical_id(self.state_machine.node.default_child)  # type: ignore[arg-type]
        self.executions_arn = stack.format_arn(
            service="states",
            resource="execution",
            resource_name=f"{self.state_machine.state_machine_name}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        # how cdk-nag names that resource in its findings
        self.executions_nag_id = (
            f"arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:<{name_id}.Name>:*"
        )
        acknowledge(
            self.state_machine,
            "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
            "Step Functions log delivery and X-Ray (logs:*LogDelivery*, xray:Put*) support no resource-level "
            "permissions; CDK generates these statements.",
        )
        for fn in (run_record_fn, train_fn, evaluate_fn, register_fn):
            if fn.node.default_child is None:
                continue  # an imported function: its ARN is literal, not a logical id
            acknowledge(
                self.state_machine,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{logical_arn(fn, self)}:*]",
                "lambda:InvokeFunction on the function's versions and aliases (CDK's grant for LambdaInvoke).",
            )
        if sagemaker is not None:
            acknowledge(
                self.state_machine,
                "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:"
                "<AWS::AccountId>:training-job/*]",
                "Training jobs are named per run; the integration creates, describes and stops them.",
            )

    # -- building blocks ---------------------------------------------------------------------
    def _task(
        self,
        id_: str,
        fn: lambda_.IFunction,
        result_path: str,
        *,
        step: str,
        payload: sfn.TaskInput | None = None,
        failure_state: str | None = None,
    ) -> tasks.LambdaInvoke:
        task = tasks.LambdaInvoke(
            self,
            id_,
            lambda_function=fn,
            payload=payload,  # None: the whole state is the function's event
            payload_response_only=True,
            retry_on_service_exceptions=False,
            result_path=result_path,
        )
        task.add_retry(
            errors=TRANSIENT_ERRORS,
            interval=Duration.seconds(2),
            max_attempts=3,
            backoff_rate=2.0,
            jitter_strategy=sfn.JitterType.FULL,
        )
        task.add_catch(self._record_failure(step, state_id=failure_state), errors=["States.ALL"], result_path="$.error")
        return task

    def _record_failure(
        self, step: str, *, state_id: str | None = None, then: sfn.IChainable | None = None
    ) -> sfn.IChainable:
        """RecordFailure<Step> (or `state_id`): the run record notes the failed step and its error,
        then `then` (default Failed). Made once per state id (state names are unique in a workflow)."""
        state_id = state_id or f"RecordFailure{step.capitalize()}"
        existing = self.node.try_find_child(state_id)
        if existing is not None:
            return existing  # type: ignore[return-value]
        record = tasks.LambdaInvoke(
            self,
            state_id,
            lambda_function=self._run_record_fn,
            payload=sfn.TaskInput.from_object({"action": "fail", "step": step, "state": sfn.JsonPath.entire_payload}),
            payload_response_only=True,
            retry_on_service_exceptions=False,
            result_path=sfn.JsonPath.DISCARD,
        )
        record.add_retry(errors=TRANSIENT_ERRORS, interval=Duration.seconds(2), max_attempts=3, backoff_rate=2.0)
        # If even the record cannot be written, the execution still fails with the step's error.
        record.add_catch(self._failed, errors=["States.ALL"], result_path=sfn.JsonPath.DISCARD)
        record.next(then if then is not None else self._failed)
        return record

    def _training_job(self, sm: SageMakerTraining) -> tasks.SageMakerCreateTrainingJob:
        """Train with a SageMaker training job (scikit-learn container) instead of Lambda. The job
        runs `python -m functions.handlers.train` with the run as hyperparameters, writes the
        artifacts and train-result.json under models/<model>/runs/<run id>/; CollectTraining
        verifies them and hands the TrainResult on."""
        return tasks.SageMakerCreateTrainingJob(
            self,
            "SageMakerTrain",
            training_job_name=sfn.JsonPath.string_at("$.run.run_id"),
            role=sm.task_role,
            environment=dict(sm.environment),
            algorithm_specification=tasks.AlgorithmSpecification(
                training_image=tasks.DockerImage.from_registry(sm.image_uri),
                training_input_mode=tasks.InputMode.FILE,
            ),
            hyperparameters={
                "spec": sfn.JsonPath.string_at("$.spec"),
                "spec_version": sfn.JsonPath.format("{}", sfn.JsonPath.string_at("$.spec_version")),
                "dataset": sfn.JsonPath.string_at("$.dataset"),
                "dataset_version": sfn.JsonPath.format("{}", sfn.JsonPath.string_at("$.dataset_version")),
                "run_id": sfn.JsonPath.string_at("$.run.run_id"),
                "model": sfn.JsonPath.string_at("$.run.model"),
                "sagemaker_program": "functions/handlers/train.py",
            },
            input_data_config=[
                tasks.Channel(
                    channel_name="train",
                    data_source=tasks.DataSource(
                        s3_data_source=tasks.S3DataSource(
                            s3_location=tasks.S3Location.from_json_expression("$.run.data_uri"),
                            s3_data_type=tasks.S3DataType.S3_PREFIX,
                        )
                    ),
                )
            ],
            output_data_config=tasks.OutputDataConfig(
                s3_output_location=tasks.S3Location.from_bucket(sm.artifacts_bucket, "sagemaker/")
            ),
            resource_config=tasks.ResourceConfig(
                instance_count=1,
                instance_type=_instance_type(sm.instance_type),
                volume_size=Size.gibibytes(50),
            ),
            stopping_condition=tasks.StoppingCondition(max_runtime=sm.max_runtime),
            integration_pattern=sfn.IntegrationPattern.RUN_JOB,
            result_path="$.sagemaker",
            result_selector={"job_name.$": "$.TrainingJobName", "status.$": "$.TrainingJobStatus"},
        )


def _instance_type(name: str) -> ec2.InstanceType:
    return ec2.InstanceType(name.removeprefix("ml."))
