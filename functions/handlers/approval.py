"""The workflow's approval task (lambda:invoke.waitForTaskToken): store the request with its task
token, audit it, notify approvers over SNS. The workflow then waits for the API's decision."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from functions.handlers.errors import typed_aws_errors
from functions.logic.approvals import request_approval
from functions.models.approvals import ApprovalTaskEvent
from functions.models.errors import InvalidInput
from functions.models.settings import get_settings
from functions.observability import logger, metrics, tracer


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
@typed_aws_errors
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        task = ApprovalTaskEvent.model_validate(event)
    except ValidationError as exc:
        raise InvalidInput(
            f"approval task input: {exc.error_count()} errors: {exc.errors(include_url=False, include_input=False)}"
        ) from None
    logger.append_keys(model=task.model, version=task.version, execution=task.execution)
    request = request_approval(get_settings(), task)
    logger.info("approval requested", extra={"approval": request.id, "expires_at": request.expires_at.isoformat()})
    return request.model_dump(mode="json")
