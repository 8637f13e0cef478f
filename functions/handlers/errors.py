"""Errors at the handler boundary, shared by every handler.

- API handlers reply to a typed error with its status and a JSON body naming the error; a retryable
  one (StoreUnavailable 503, Throttled 429) also carries `Retry-After` and `retry_after_seconds`.
  An AWS failure that escaped the dal's own wrapping is typed here the same way (never a 500 with
  the AWS message, which can name ARNs or the policy that refused).
- Workflow tasks raise typed errors so the state machine's Retry/Catch can match them by name:
  `typed_aws_errors` turns a stray botocore error into StoreUnavailable/Throttled/Conflict.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.middleware_factory import lambda_handler_decorator
from botocore.exceptions import BotoCoreError, ClientError

from functions.dal.clients import store_error
from functions.models.errors import StepwiseError
from functions.observability import logger

JSON = "application/json"
AWS_ERRORS = (ClientError, BotoCoreError)


def json_error(status: int, code: str, message: str, *, retry_after: int | None = None, **extra: Any) -> Response:
    body: dict[str, Any] = {"error": code, "message": message, **extra}
    headers: dict[str, str] = {}
    if retry_after is not None:
        body["retry_after_seconds"] = retry_after
        headers["Retry-After"] = str(retry_after)
    return Response(
        status_code=status,
        content_type=JSON,
        body=json.dumps(body, separators=(",", ":")),
        headers=headers or None,
    )


def typed_error(exc: StepwiseError) -> Response:
    return json_error(exc.status_code, type(exc).__name__, exc.message, retry_after=exc.retry_after_seconds)


def typed_aws_error(exc: Exception) -> StepwiseError:
    """A botocore error no dal function wrapped: logged whole (with its code and the resource), and
    typed for the caller without them."""
    logger.warning("AWS call failed", extra={"error": type(exc).__name__, "detail": str(exc)})
    return store_error(exc, "a store call")


@lambda_handler_decorator
def typed_aws_errors(handler: Callable[..., Any], event: Any, context: Any) -> Any:
    """Workflow tasks and event handlers: a botocore error leaves as a typed error (StoreUnavailable,
    Throttled, Conflict) the state machine's Retry/Catch and the logs can name."""
    try:
        return handler(event, context)
    except AWS_ERRORS as exc:
        raise typed_aws_error(exc) from exc
