"""Approvals and controlled release: the approvals SNS topic and the workflow states that follow
registration (plugged into the lifecycle workflow as its `after_register`).

    [release strategy given?] -> RequestApproval (lambda:invoke.waitForTaskToken, TimeoutSeconds)
        | States.Timeout  -> ExpireApproval (version REJECTED, expired) -> fails: ApprovalExpired
        | ApprovalRejected -> ApprovalRejected (Fail)
    -> [strategy] all_at_once: Promote -> Released
                  canary:      StartCanary -> BakeCanary (Wait) -> CheckCanary -> CompleteCanary -> Released
                               CheckCanary: CanaryCheckFailed -> CanaryFailed (Fail; already rolled back)
                                            any other error -> RollbackCanary -> CanaryRolledBack (Fail)

State input contract: `$.registered.model`, `$.registered.version` (the Register step's output) and,
optionally, `$.release` (a ReleaseStrategy; default all at once). Every release step reads back
what serving resolves and fails with ServingMismatch if it differs.

Plugged into the lifecycle (`chain_recording_failures`), every way out that fails the execution
first records the failure on the run: each task's other errors (after its retries) go to a
RecordFailure<Step> task, and the designed failures (rejected, canary check failed, rolled back)
are recorded before their Fail state. Built alone (`chain`), the states fail as they are.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra import constants as c
from infra.constructs.lifecycle import TRANSIENT_ERRORS, RecordFailure
from infra.grants import grant_canary_metrics, grant_release_access, logical_arn, synchronous_only
from infra.nag import acknowledge

DEFAULT_APPROVAL_TIMEOUT = Duration.days(7)
# Error names (functions/models/approvals.py class names) the state machine matches.
APPROVAL_REJECTED = "ApprovalRejected"
APPROVAL_EXPIRED = "ApprovalExpired"
CANARY_CHECK_FAILED = "CanaryCheckFailed"

APPROVAL_HANDLER = "functions.handlers.approval.lambda_handler"
RELEASE_HANDLER = "functions.handlers.release.lambda_handler"


class Approvals(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        approval_fn: lambda_.IFunction,
        release_fn: lambda_.IFunction,
        approval_timeout: Duration = DEFAULT_APPROVAL_TIMEOUT,
        model_path: str = "$.registered.model",
        version_path: str = "$.registered.version",
        registry_table: dynamodb.ITable | None = None,
        metadata_table: dynamodb.ITable | None = None,
        artifacts_bucket: s3.IBucket | None = None,
    ) -> None:
        """With the tables, the functions (ours, not imported) get their grants: the approval
        function publishes to the topic and reads what it asks about, the release function moves
        aliases and reads the canary's metrics."""
        super().__init__(scope, id_)
        self.approval_fn = approval_fn
        self.release_fn = release_fn
        self.topic = sns.Topic(
            self,
            "Topic",
            display_name="Stepwise approvals",
            # encrypted with the stack's KMS key (infra/constructs/encryption.py)
            enforce_ssl=True,
        )
        self._model = sfn.JsonPath.string_at(model_path)
        self._version = sfn.JsonPath.number_at(version_path)
        self._approval_timeout = approval_timeout
        self._chain: sfn.IChainable | None = None
        if registry_table is not None and metadata_table is not None and isinstance(approval_fn, lambda_.Function):
            approval_fn.add_environment(c.ENV_APPROVALS_TOPIC_ARN, self.topic.topic_arn)
            self.topic.grant_publish(approval_fn)
            grant_release_access(approval_fn, registry=registry_table, metadata=metadata_table, write_registry=False)
            grant_release_access(
                release_fn, registry=registry_table, metadata=metadata_table, artifacts=artifacts_bucket
            )
            grant_canary_metrics(release_fn)
            for fn in (approval_fn, release_fn):
                synchronous_only(fn)
        stack = Stack.of(self)
        for fn in (approval_fn, release_fn):
            if fn.node.default_child is None:  # an imported function: nothing of ours to grant
                continue
            # The state machine's role gets lambda:InvokeFunction on fn and fn:* (versions, aliases).
            acknowledge(
                stack,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{logical_arn(fn, stack)}:*]",
                "lambda:InvokeFunction on the function's versions and aliases (CDK's grant for LambdaInvoke).",
            )

    @property
    def chain(self) -> sfn.IChainable:
        """The states on their own (no run record to write to)."""
        if self._chain is None:
            self._chain = self._build(self._approval_timeout, None)
        return self._chain

    def chain_recording_failures(self, record_failure: RecordFailure) -> sfn.IChainable:
        """The states, with every failure recorded on the run first (the lifecycle's recorder)."""
        if self._chain is not None:
            raise ValueError("the approvals chain is already built")
        self._chain = self._build(self._approval_timeout, record_failure)
        return self._chain

    # -- states ---------------------------------------------------------------------------
    def _release_task(self, state_id: str, action: str, result_path: str, **extra: object) -> tasks.LambdaInvoke:
        task = tasks.LambdaInvoke(
            self,
            state_id,
            lambda_function=self.release_fn,
            payload=sfn.TaskInput.from_object(
                {
                    "action": action,
                    "model": self._model,
                    "version": self._version,
                    "execution": sfn.JsonPath.execution_id,
                    "strategy": sfn.JsonPath.object_at("$.release"),
                    **extra,
                }
            ),
            payload_response_only=True,
            retry_on_service_exceptions=False,
            result_path=result_path,
            task_timeout=sfn.Timeout.duration(Duration.minutes(2)),
        )
        task.add_retry(errors=TRANSIENT_ERRORS, interval=Duration.seconds(2), max_attempts=3, backoff_rate=2.0)
        return task

    def _build(self, approval_timeout: Duration, record: RecordFailure | None) -> sfn.IChainable:
        def fail(step: str, state_id: str, then: sfn.IChainable) -> sfn.IChainable:
            """`then`, after the run records the failure (when there is a run to record it on)."""
            return then if record is None else record(step, state_id=state_id, then=then)

        def catch_all(task: tasks.LambdaInvoke, step: str) -> None:
            """Any other error (after the task's retries): recorded, then the execution fails."""
            if record is not None:
                task.add_catch(record(step, state_id=f"RecordFailure{task.node.id}"), result_path="$.error")

        default_strategy = sfn.Pass(
            self,
            "DefaultReleaseStrategy",
            result=sfn.Result.from_object({"kind": "all_at_once"}),
            result_path="$.release",
        )
        request = tasks.LambdaInvoke(
            self,
            "RequestApproval",
            lambda_function=self.approval_fn,
            integration_pattern=sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
            payload=sfn.TaskInput.from_object(
                {
                    "token": sfn.JsonPath.task_token,
                    "model": self._model,
                    "version": self._version,
                    "execution": sfn.JsonPath.execution_id,
                    "timeout_seconds": approval_timeout.to_seconds(),
                }
            ),
            task_timeout=sfn.Timeout.duration(approval_timeout),
            retry_on_service_exceptions=False,
            result_path="$.approval",
            comment="Waits for POST /v1/approvals/{id}/approve|reject (stepwise approve MODEL VERSION)",
        )
        request.add_retry(errors=TRANSIENT_ERRORS, interval=Duration.seconds(2), max_attempts=3, backoff_rate=2.0)
        expire = self._release_task("ExpireApproval", "expire", "$.expiry")
        rejected = sfn.Fail(
            self,
            "ApprovalRejectedState",
            state_name="ApprovalRejected",
            error=APPROVAL_REJECTED,
            cause_path=sfn.JsonPath.string_at("$.error.Cause"),
        )
        request.add_catch(expire, errors=["States.Timeout"], result_path="$.error")
        request.add_catch(
            fail("approval", "RecordRejection", rejected), errors=[APPROVAL_REJECTED], result_path="$.error"
        )
        catch_all(request, "approval")
        catch_all(expire, "approval")  # ApprovalExpired, once the version is marked REJECTED

        released = sfn.Pass(self, "Released")
        promote = self._release_task("Promote", "promote", "$.releaseResult")
        promote.next(released)
        catch_all(promote, "promote")

        start_canary = self._release_task("StartCanary", "start_canary", "$.canary")
        bake = sfn.Wait(self, "BakeCanary", time=sfn.WaitTime.seconds_path("$.canary.bake_seconds"))
        check = self._release_task("CheckCanary", "check_canary", "$.canaryCheck")
        complete = self._release_task("CompleteCanary", "complete_canary", "$.releaseResult")
        rollback = self._release_task(
            "RollbackCanary", "rollback_canary", "$.rollback", error=sfn.JsonPath.object_at("$.error")
        )
        canary_failed = sfn.Fail(
            self, "CanaryFailed", error=CANARY_CHECK_FAILED, cause_path=sfn.JsonPath.string_at("$.error.Cause")
        )
        rolled_back = sfn.Fail(
            self,
            "CanaryRolledBack",
            error_path=sfn.JsonPath.string_at("$.error.Error"),
            cause_path=sfn.JsonPath.string_at("$.error.Cause"),
        )
        check.add_catch(
            fail("canary", "RecordCanaryFailure", canary_failed), errors=[CANARY_CHECK_FAILED], result_path="$.error"
        )
        check.add_catch(rollback, errors=["States.ALL"], result_path="$.error")
        complete.add_catch(rollback, errors=["States.ALL"], result_path="$.error")
        rollback.next(fail("canary", "RecordCanaryRollback", rolled_back))  # the error that caused it
        catch_all(start_canary, "canary")
        catch_all(rollback, "canary")
        start_canary.next(bake).next(check).next(complete).next(released)

        strategy = (
            sfn.Choice(self, "ReleaseStrategy")
            .when(sfn.Condition.string_equals("$.release.kind", "canary"), start_canary)
            .otherwise(promote)
        )
        request.next(strategy)
        has_strategy = (
            sfn.Choice(self, "ReleaseStrategyGiven")
            .when(sfn.Condition.is_present("$.release.kind"), request)
            .otherwise(default_strategy.next(request))
        )
        return has_strategy
