"""The drift fleet: one scheduled round of drift checks, fanned out per model.

    ListPage (drift fn: a page of models, the due ones as check requests)
      -> CheckModels (Map, at most `concurrency` at once): Check (drift fn, one model per invocation,
         transient errors retried) | on any failure: DeadLetter (the round, model and error to the
         monitoring dead-letter queue) -> Failed
      -> RecordPage (drift fn: the page's outcomes added to the round's summary)
      -> [last page?] Done | NextPage -> ListPage
    ListPage or RecordPage failing past its retries: RecordFailure (drift fn: the error and cause on
    the round's summary) -> RoundFailed

Input (the schedule's): {"time": <scheduled time>, "window_hours": N}. Each check is named after the
scheduled time, so a repeated round reruns only what did not finish (the drift handler's
idempotency). A model whose check fails, times out or is throttled past its retries is recorded as
failed with its error and dead-lettered; it never fails or delays the others beyond its own slot.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.grants import logical_arn
from infra.nag import acknowledge

DEFAULT_CONCURRENCY = 10
RETRY_INTERVAL = Duration.seconds(10)
ROUND_TIMEOUT = Duration.minutes(55)  # a round ends before the next hourly one starts
PAGE_SIZE = 25  # functions/models/drift.py ROUND_PAGE_SIZE
# transient failures worth retrying (functions/models/errors.py and Lambda's own)
TRANSIENT_ERRORS = [
    "StoreUnavailable",
    "Throttled",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]


class DriftFleet(Construct):
    """Exposes `state_machine` and `log_group`."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        function: lambda_.IFunction,
        dead_letters: sqs.IQueue,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
        concurrency: int = DEFAULT_CONCURRENCY,
        check_attempts: int = 2,
        retry_interval: Duration = RETRY_INTERVAL,
        round_timeout: Duration = ROUND_TIMEOUT,
        page_size: int = PAGE_SIZE,
    ) -> None:
        super().__init__(scope, id_)
        if not 1 <= concurrency <= 1_000:
            raise ValueError("the drift fleet's concurrency must be between 1 and 1000")
        list_page = self._invoke(
            "ListPage",
            function,
            sfn.TaskInput.from_object({"fleet_page": sfn.JsonPath.entire_payload}),
            result_path="$.page",
        )
        check = tasks.LambdaInvoke(
            self,
            "Check",
            lambda_function=function,
            payload_response_only=True,
            retry_on_service_exceptions=False,
            result_selector={"model.$": "$.model", "status": "checked", "verdict.$": "$.verdict"},
            task_timeout=sfn.Timeout.duration(Duration.minutes(15)),
        )
        check.add_retry(
            errors=TRANSIENT_ERRORS,
            interval=retry_interval,
            max_attempts=check_attempts,
            backoff_rate=2.0,
            jitter_strategy=sfn.JitterType.FULL,
        )
        dead_letter = tasks.SqsSendMessage(
            self,
            "DeadLetter",
            queue=dead_letters,
            message_body=sfn.TaskInput.from_object(
                {
                    "source": "drift-fleet",
                    "round_id": sfn.JsonPath.string_at("$.check_id"),
                    "model": sfn.JsonPath.string_at("$.model"),
                    "error": sfn.JsonPath.string_at("$.failure.Error"),
                    "cause": sfn.JsonPath.string_at("$.failure.Cause"),
                }
            ),
            result_path=sfn.JsonPath.DISCARD,
        )
        failed = sfn.Pass(
            self,
            "Failed",
            parameters={
                "model.$": "$.model",
                "status": "failed",
                "error.$": "$.failure.Error",
                "cause.$": "$.failure.Cause",
            },
        )
        dead_letter.add_retry(errors=["States.TaskFailed"], interval=Duration.seconds(2), max_attempts=2)
        # a dead-letter queue that cannot be written still leaves the failure in the summary
        dead_letter.add_catch(failed, errors=["States.ALL"], result_path=sfn.JsonPath.DISCARD)
        dead_letter.next(failed)
        check.add_catch(dead_letter, errors=["States.ALL"], result_path="$.failure")
        fan_out = sfn.Map(
            self,
            "CheckModels",
            items_path="$.page.checks",
            max_concurrency=concurrency,
            result_path="$.outcomes",
        )
        fan_out.item_processor(check)
        record = self._invoke(
            "RecordPage",
            function,
            sfn.TaskInput.from_object(
                {
                    "fleet_record": {
                        "round_id": sfn.JsonPath.string_at("$.page.round_id"),
                        "time": sfn.JsonPath.string_at("$.time"),
                        "outcomes": sfn.JsonPath.list_at("$.outcomes"),
                        "skipped": sfn.JsonPath.list_at("$.page.skipped"),
                        "final": sfn.JsonPath.string_at("$.page.final"),
                    }
                }
            ),
            result_path=sfn.JsonPath.DISCARD,
        )
        next_page = sfn.Pass(
            self,
            "NextPage",
            parameters={
                "time.$": "$.time",
                "window_hours.$": "$.window_hours",
                "page_size.$": "$.page_size",
                "next_token.$": "$.page.next_token",
            },
        )
        start = sfn.Pass(  # the schedule's input, with the page size the listing uses
            self,
            "Start",
            parameters={"time.$": "$.time", "window_hours.$": "$.window_hours", "page_size": page_size},
        )
        done = sfn.Succeed(self, "Done")
        round_failed = sfn.Fail(self, "RoundFailed", error="DriftRoundFailed", cause="a step of the round failed")
        record_failure = self._invoke(
            "RecordFailure",
            function,
            sfn.TaskInput.from_object(
                {
                    "fleet_failure": {
                        "time": sfn.JsonPath.string_at("$.time"),
                        "error": sfn.JsonPath.string_at("$.error.Error"),
                        "cause": sfn.JsonPath.string_at("$.error.Cause"),
                    }
                }
            ),
            result_path=sfn.JsonPath.DISCARD,
        )
        record_failure.add_catch(round_failed, errors=["States.ALL"], result_path=sfn.JsonPath.DISCARD)
        record_failure.next(round_failed)
        for step in (list_page, record):
            step.add_catch(record_failure, errors=["States.ALL"], result_path="$.error")
        next_page.next(list_page)
        start.next(list_page).next(fan_out).next(record).next(
            sfn.Choice(self, "LastPage")
            .when(sfn.Condition.boolean_equals("$.page.final", True), done)
            .otherwise(next_page)
        )
        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=RemovalPolicy.RETAIN)
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(start),
            state_machine_type=sfn.StateMachineType.STANDARD,
            tracing_enabled=True,
            timeout=round_timeout,
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
            comment="Stepwise drift fleet: one scheduled round, one drift check per due model",
        )
        acknowledge(
            self.state_machine,
            "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
            "Step Functions log delivery and X-Ray (logs:*LogDelivery*, xray:Put*) support no resource-level "
            "permissions; CDK generates these statements.",
        )
        if function.node.default_child is not None:
            acknowledge(
                self.state_machine,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{logical_arn(function, self)}:*]",
                "lambda:InvokeFunction on the drift function's versions and aliases (CDK's grant for LambdaInvoke).",
            )

    def _invoke(
        self, id_: str, fn: lambda_.IFunction, payload: sfn.TaskInput, *, result_path: str
    ) -> tasks.LambdaInvoke:
        task = tasks.LambdaInvoke(
            self,
            id_,
            lambda_function=fn,
            payload=payload,
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
        return task
