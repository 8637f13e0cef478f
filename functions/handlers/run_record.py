"""Lifecycle task RunRecord: `start` the run record, `fail` it from a Catch (naming the step and
the error), or `finish` it after Register.

Input: RunRecordRequest {"action", "step", "state", "execution_name", "execution_arn"};
output: RunStarted for `start`, the run record for `fail` and `finish`.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.handlers.errors import typed_aws_errors
from functions.logic import lifecycle
from functions.models.runs import RunRecordRequest
from functions.models.settings import get_settings
from functions.observability import logger, tracer


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@typed_aws_errors
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = RunRecordRequest.model_validate(event)
    settings = get_settings()
    if request.action == "start":
        return lifecycle.start_run(settings, request).model_dump(mode="json")
    if request.action == "fail":
        failed = lifecycle.fail_run(settings, request)
        return failed.model_dump(mode="json") if failed else {"recorded": False}
    return lifecycle.finish_run(settings, request).model_dump(mode="json")
