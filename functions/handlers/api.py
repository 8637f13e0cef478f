"""Control-plane API Lambda: health, and the routers each area adds.

Errors never carry stack traces: typed errors map to their status, anything else is a 500
with a correlation id to look up in the logs.
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.handlers.errors import AWS_ERRORS, json_error, typed_aws_error, typed_error
from functions.handlers.routes import approvals as approval_routes
from functions.handlers.routes import audit as audit_routes
from functions.handlers.routes import datasets as dataset_routes
from functions.handlers.routes import drift as drift_routes
from functions.handlers.routes import governance as governance_routes
from functions.handlers.routes import health
from functions.handlers.routes import models as model_routes
from functions.handlers.routes import releases as release_routes
from functions.handlers.routes import reproduce as reproduce_routes
from functions.handlers.routes.openapi import add_openapi_route
from functions.models.errors import StepwiseError
from functions.observability import logger, metrics, tracer

app = APIGatewayRestResolver(enable_validation=True)
add_openapi_route(app)  # GET /v1/openapi.json, built on first request from every router included below
app.include_router(health.router)
app.include_router(dataset_routes.router)
app.include_router(model_routes.router)
app.include_router(approval_routes.router)
app.include_router(release_routes.router)
app.include_router(drift_routes.router)
app.include_router(governance_routes.router)
app.include_router(audit_routes.router)
app.include_router(reproduce_routes.router)


@app.exception_handler(StepwiseError)
def handle_typed(exc: StepwiseError) -> Response:
    return typed_error(exc)


@app.exception_handler(list(AWS_ERRORS))
def handle_aws(exc: Exception) -> Response:
    return typed_error(typed_aws_error(exc))


@app.exception_handler(UnicodeDecodeError)
def handle_undecodable(exc: UnicodeDecodeError) -> Response:
    # a base64-encoded body that is not UTF-8 text (found by tests/e2e/test_fuzz_api.py)
    return json_error(400, "BodyInvalid", "the body is not UTF-8 encoded JSON")


@app.exception_handler(RequestValidationError)
def handle_validation(exc: RequestValidationError) -> Response:
    details = [
        {"field": ".".join(str(p) for p in err.get("loc", ())), "reason": str(err.get("msg", ""))}
        for err in exc.errors()
    ]
    return json_error(422, "ValidationError", "the request does not match the schema", details=details)


@app.not_found
def handle_not_found(exc: NotFoundError) -> Response:
    return json_error(404, "NotFound", f"no route {app.current_event.http_method} {app.current_event.path}")


@app.exception_handler(Exception)
def handle_unexpected(exc: Exception) -> Response:
    logger.exception("unhandled error")
    return json_error(500, "InternalError", "internal error; see logs", correlation_id=logger.get_correlation_id())


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
