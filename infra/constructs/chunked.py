"""The scaffolding the chunked workflows share (validation of a large upload, batch scoring, materialization): one
Lambda function runs every step; each step retries the workflow's transient errors; a step that
still fails is recorded by a RecordFailure<Step> task before the execution fails with the step's
error; and the state machine (Plan -> Distributed Map of chunks -> Finish) logs, traces and carries
the cdk-nag acknowledgements its Distributed Map needs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.grants import logical_arn
from infra.nag import acknowledge


class ChunkedSteps:
    """Steps on `fn` in `scope`: `invoke` makes a retried step, `record_failure` routes a step's
    failure through its RecordFailure<Step> task to the workflow's Fail state (`fail_id`)."""

    def __init__(self, scope: Construct, fn: lambda_.IFunction, *, errors: Sequence[str], fail_id: str) -> None:
        self._scope, self._fn, self._errors = scope, fn, list(errors)
        self.failed = sfn.Fail(
            scope,
            fail_id,
            error_path=sfn.JsonPath.string_at("$.error.Error"),
            cause_path=sfn.JsonPath.string_at("$.error.Cause"),
        )

    def invoke(self, id_: str, payload: sfn.TaskInput | None, result_path: str | None = None) -> tasks.LambdaInvoke:
        task = tasks.LambdaInvoke(
            self._scope,
            id_,
            lambda_function=self._fn,
            payload=payload,
            payload_response_only=True,
            retry_on_service_exceptions=True,
            result_path=result_path,
        )
        task.add_retry(errors=self._errors, interval=Duration.seconds(5), max_attempts=3, backoff_rate=2)
        return task

    def record_failure(self, state: sfn.TaskStateBase | sfn.DistributedMap, payload: dict[str, Any]) -> None:
        """`state`'s failure (at $.error) recorded by a `fail` step sent `payload` (plus the error)."""
        record = self.invoke(
            f"RecordFailure{state.node.id}",
            sfn.TaskInput.from_object({"step": "fail", **payload, "error.$": "$.error"}),
            result_path=sfn.JsonPath.DISCARD,
        )
        # If even the record cannot be written, the execution still fails with the step's error.
        record.add_catch(self.failed, result_path=sfn.JsonPath.DISCARD)
        record.next(self.failed)
        state.add_catch(record, result_path="$.error")


def plan_map_finish(
    steps: ChunkedSteps,
    scope: Construct,
    *,
    run: dict[str, str],
    chunk_id: str,
    concurrency: int,
) -> sfn.IChainable:
    """Plan (its chunks at $.plan.chunks) -> Distributed Map of `chunk_id` steps (express child
    executions, at most `concurrency` at once) -> Finish, every step sent `run` (the run's id
    fields) and its failure recorded. A chunk that still fails after its retries is caught into a
    ChunkFailed Pass, so the map goes on and Finish, finding no result for that chunk, names it."""
    plan = steps.invoke("Plan", sfn.TaskInput.from_object({"step": "plan", **run}), result_path="$.plan")
    steps.record_failure(plan, run)
    chunks = sfn.DistributedMap(
        scope,
        "Chunks",
        items_path="$.plan.chunks",
        item_selector={"step": "chunk", "task.$": "$$.Map.Item.Value"},
        max_concurrency=concurrency,
        map_execution_type=sfn.StateMachineType.EXPRESS,
        result_path=sfn.JsonPath.DISCARD,
    )
    chunk = steps.invoke(chunk_id, None)
    chunk_failed = sfn.Pass(scope, "ChunkFailed", parameters={"index.$": "$.task.index", "failure.$": "$.error"})
    chunk.add_catch(chunk_failed, result_path="$.error")
    chunks.item_processor(chunk)
    steps.record_failure(chunks, run)
    finish = steps.invoke("Finish", sfn.TaskInput.from_object({"step": "finish", **run}), result_path="$.finish")
    steps.record_failure(finish, run)
    return plan.next(chunks).next(finish)


def chunked_state_machine(
    scope: Construct,
    id_: str,
    *,
    fn: lambda_.IFunction,
    definition: sfn.IChainable,
    timeout: Duration,
    log_group_id: str,
    log_retention: logs.RetentionDays,
    what: str,
    state_machine_name: str | None = None,
) -> sfn.StateMachine:
    """The standard state machine running `definition`, logged and traced, with the cdk-nag
    acknowledgements of its LambdaInvoke grant on `fn` (`what` names it) and of its Distributed
    Map's child executions. `state_machine_name` fixes its name, for a function it invokes that
    must also start it (its ARN then built from the name, without a reference cycle)."""
    log_group = logs.LogGroup(scope, log_group_id, retention=log_retention, removal_policy=RemovalPolicy.RETAIN)
    machine = sfn.StateMachine(
        scope,
        id_,
        state_machine_name=state_machine_name,
        definition_body=sfn.DefinitionBody.from_chainable(definition),
        state_machine_type=sfn.StateMachineType.STANDARD,
        timeout=timeout,
        tracing_enabled=True,
        logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
    )
    assert machine.role is not None
    acknowledge(
        machine.role,
        f"AwsSolutions::AwsSolutions-IAM5[Resource::{logical_arn(fn, scope)}:*]",
        f"lambda:InvokeFunction on the {what} function's versions and aliases (CDK's LambdaInvoke grant).",
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


def chunked_map_workflow(
    scope: Construct,
    fn: lambda_.IFunction,
    *,
    errors: Sequence[str],
    fail_id: str,
    run: dict[str, str],
    chunk_id: str,
    concurrency: int,
    log_group_id: str,
    log_retention: logs.RetentionDays,
    what: str,
    state_machine_name: str | None = None,
) -> sfn.StateMachine:
    """The whole Plan -> Distributed Map of `chunk_id` -> Finish workflow on `fn` (state machine
    `Workflow` in `scope`, at most 12 hours), its steps retried on `errors` and their failures
    recorded before the `fail_id` state."""
    steps = ChunkedSteps(scope, fn, errors=errors, fail_id=fail_id)
    return chunked_state_machine(
        scope,
        "Workflow",
        fn=fn,
        definition=plan_map_finish(steps, scope, run=run, chunk_id=chunk_id, concurrency=concurrency),
        timeout=Duration.hours(12),
        log_group_id=log_group_id,
        log_retention=log_retention,
        what=what,
        state_machine_name=state_machine_name,
    )
