"""Step Functions: start the lifecycle workflow (a duplicate start is a no-op)."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from functions.dal.clients import client, error_code, store_error


def start_execution(state_machine_arn: str, name: str, payload: dict[str, Any]) -> tuple[str, bool]:
    """Start `name`; returns (execution arn, started). An execution of that name that already
    exists (running or finished) is not started again: (its arn, False). (StartExecution itself
    is idempotent for a running execution with the same input, so ask first to tell the two apart.)"""
    sfn = client("stepfunctions")
    existing = execution_arn(state_machine_arn, name)
    try:
        sfn.describe_execution(executionArn=existing)
    except ClientError as exc:
        if error_code(exc) != "ExecutionDoesNotExist":
            raise store_error(exc, "lifecycle workflow read") from exc
    else:
        return existing, False
    try:
        reply = sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=json.dumps(payload))
    except ClientError as exc:
        if error_code(exc) == "ExecutionAlreadyExists":
            return execution_arn(state_machine_arn, name), False
        raise store_error(exc, "lifecycle workflow start") from exc
    return str(reply["executionArn"]), True


def execution_arn(state_machine_arn: str, name: str) -> str:
    """arn:aws:states:r:a:stateMachine:sm -> arn:aws:states:r:a:execution:sm:name"""
    prefix, _, machine = state_machine_arn.rpartition(":stateMachine:")
    return f"{prefix}:execution:{machine}:{name}"
