"""Errors at the handler boundary, shared by every handler.

- API handlers (the control API and the inference function) install one set of exception handlers
  (`install_error_handlers`). Every malformed request (a body that is not a UTF-8 JSON object, or
  a body field, path or query parameter that does not match the route's model) answers 400
  `{"error": "InvalidInput", "message", "details": [{"field", "reason"}]}`, the message naming
  each field and its problem; Powertools' own 422 reply never leaves.
- API handlers reply to a typed error with its status and a JSON body naming the error; a retryable
  one (StoreUnavailable 503, Throttled 429) also carries `Retry-After` and `retry_after_seconds`.
  An AWS failure that escaped the dal's own wrapping is typed here the same way (never a 500 with
  the AWS message, which can name ARNs or the policy that refused).
- Workflow tasks raise typed errors so the state machine's Retry/Catch can match them by name:
  `typed_aws_errors` turns a stray botocore error into StoreUnavailable/Throttled/Conflict.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import ValidationException
from aws_lambda_powertools.middleware_factory import lambda_handler_decorator
from botocore.exceptions import BotoCoreError, ClientError
from pydantic_core import from_json

from functions.dal.clients import store_error
from functions.models.errors import InvalidInput, StepwiseError
from functions.observability import logger

JSON = "application/json"
AWS_ERRORS = (ClientError, BotoCoreError)
MAX_DETAILS = 20  # field problems listed in one reply
MESSAGE_DETAILS = 5  # of which named in its message


def parse_json_object(raw: str | bytes | None) -> dict[str, Any]:
    """A request body as a JSON object, or InvalidInput naming what is wrong: empty, not JSON,
    NaN/Infinity (not JSON), nested too deeply, or a JSON value that is not an object (API Gateway
    refuses the same bodies on the routes it validates). A Rust parser: deep nesting is a
    ValueError here, never the RecursionError `json.loads` raises."""
    if not raw:
        raise InvalidInput("the body is empty; send a JSON object", [{"field": "body", "reason": "required"}])
    try:
        value = from_json(raw, allow_inf_nan=False)
    except ValueError as exc:
        reason = f"not valid JSON (NaN and Infinity are not JSON): {exc}"
        raise InvalidInput(f"body: {reason}", [{"field": "body", "reason": reason}]) from None
    if not isinstance(value, dict):
        reason = f"must be a JSON object, not {_json_type(value)}"
        raise InvalidInput(f"body: {reason}", [{"field": "body", "reason": reason}])
    return value


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return "a number"
    return "a string" if isinstance(value, str) else "an array"


def field_details(errors: Sequence[Any]) -> list[dict[str, str]]:
    """pydantic or Powertools validation errors as [{"field", "reason"}]. A body field is named by
    its path inside the body ("columns.0.type", "body" for the whole body); a path or query
    parameter by its location ("path.version", "query.limit")."""
    details = []
    for err in list(errors)[:MAX_DETAILS]:
        loc = [str(p) for p in err.get("loc", ())]
        if loc[:1] == ["body"]:
            loc = loc[1:] or ["body"]
            if err.get("type") == "json_invalid":  # a JSON syntax error's location is a character offset
                loc = ["body"]
        reason = str(err.get("msg", ""))
        if err.get("type") == "json_invalid":
            reason = f"not valid JSON: {(err.get('ctx') or {}).get('error', reason)}"
        details.append({"field": ".".join(loc) or "body", "reason": reason})
    return details


def invalid(details: list[dict[str, str]], total: int | None = None) -> InvalidInput:
    """InvalidInput whose message names each field (the first few) and its problem."""
    named = "; ".join(f"{d['field']}: {d['reason']}" for d in details[:MESSAGE_DETAILS])
    more = (total if total is not None else len(details)) - min(len(details), MESSAGE_DETAILS)
    return InvalidInput(named + (f"; and {more} more" if more > 0 else ""), details)


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
    if isinstance(exc, InvalidInput):  # one code for every malformed request, whichever check found it
        details = exc.details or [{"field": "", "reason": exc.message}]
        message = exc.message
        if exc.details and exc.details[0]["field"] not in message:  # name the fields, not only the summary
            message = f"{message}: {invalid(exc.details).message}"
        return json_error(exc.status_code, "InvalidInput", message, details=details)
    return json_error(exc.status_code, type(exc).__name__, exc.message, retry_after=exc.retry_after_seconds)


def typed_aws_error(exc: Exception) -> StepwiseError:
    """A botocore error no dal function wrapped: logged whole (with its code and the resource), and
    typed for the caller without them."""
    logger.warning("AWS call failed", extra={"error": type(exc).__name__, "detail": str(exc)})
    return store_error(exc, "a store call")


def install_error_handlers(app: APIGatewayRestResolver, *, on_error: Callable[[int], None] | None = None) -> None:
    """The exception handlers of an API function: typed errors keep their status, a malformed
    request is a 400 InvalidInput, an unknown route a 404, anything else a 500 with a correlation
    id and no stack trace. `on_error(status)` runs for every error reply (the inference function
    counts them). A function may add handlers for narrower errors (the most specific class wins)."""

    def reply(exc: StepwiseError) -> Response:
        if on_error is not None:
            on_error(exc.status_code)
        if exc.status_code >= 500:
            logger.warning("request failed", extra={"error": type(exc).__name__, "reason": exc.message})
        return typed_error(exc)

    @app.exception_handler(StepwiseError)
    def handle_typed(exc: StepwiseError) -> Response:
        return reply(exc)

    @app.exception_handler(list(AWS_ERRORS))
    def handle_aws(exc: Exception) -> Response:
        return reply(typed_aws_error(exc))

    # Powertools' request validation (body, path and query models; RequestValidationError and the
    # unsupported content type are both ValidationException)
    @app.exception_handler(ValidationException)
    def handle_validation(exc: ValidationException) -> Response:
        errors = list(exc.errors())
        return reply(invalid(field_details(errors), len(errors)))

    @app.exception_handler(UnicodeDecodeError)
    def handle_undecodable(exc: UnicodeDecodeError) -> Response:
        # a base64-encoded body that is not UTF-8 text
        reason = "not UTF-8 encoded JSON"
        return reply(InvalidInput(f"body: {reason}", [{"field": "body", "reason": reason}]))

    @app.exception_handler(RecursionError)
    def handle_too_deep(exc: RecursionError) -> Response:
        # a parser built on json.loads, given deeply nested input
        reason = "nested too deeply"
        return reply(InvalidInput(f"body: {reason}", [{"field": "body", "reason": reason}]))

    @app.not_found
    def handle_not_found(exc: NotFoundError) -> Response:
        event = app.current_event
        return json_error(404, "NotFound", f"no route {event.http_method} {event.path}"[:300])

    @app.exception_handler(Exception)
    def handle_unexpected(exc: Exception) -> Response:
        logger.exception("unhandled error")
        if on_error is not None:
            on_error(500)
        return json_error(500, "InternalError", "internal error; see logs", correlation_id=logger.get_correlation_id())


@lambda_handler_decorator
def typed_aws_errors(handler: Callable[..., Any], event: Any, context: Any) -> Any:
    """Workflow tasks and event handlers: a botocore error leaves as a typed error (StoreUnavailable,
    Throttled, Conflict) the state machine's Retry/Catch and the logs can name."""
    try:
        return handler(event, context)
    except AWS_ERRORS as exc:
        raise typed_aws_error(exc) from exc
