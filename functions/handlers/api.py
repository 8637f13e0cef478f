"""Control-plane API Lambda: health, and the routers each area adds.

Every route declares its body, path and query parameters (functions/handlers/routes/params.py), so
the resolver validates them and the OpenAPI document describes them. Errors never carry stack
traces: a malformed request is a 400 InvalidInput naming the field, typed errors map to their
status, anything else is a 500 with a correlation id to look up in the logs
(functions/handlers/errors.py, shared with the inference function).
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.handlers.errors import install_error_handlers, parse_json_object
from functions.handlers.routes import approvals as approval_routes
from functions.handlers.routes import audit as audit_routes
from functions.handlers.routes import batch as batch_routes
from functions.handlers.routes import datasets as dataset_routes
from functions.handlers.routes import drift as drift_routes
from functions.handlers.routes import features as feature_routes
from functions.handlers.routes import governance as governance_routes
from functions.handlers.routes import health
from functions.handlers.routes import imports as import_routes
from functions.handlers.routes import materialize as materialize_routes
from functions.handlers.routes import models as model_routes
from functions.handlers.routes import releases as release_routes
from functions.handlers.routes import reproduce as reproduce_routes
from functions.handlers.routes.identity import caller_identity
from functions.handlers.routes.openapi import add_openapi_route
from functions.logic import personas
from functions.models.errors import Forbidden
from functions.models.settings import get_settings
from functions.observability import logger, metrics, tracer

app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=parse_json_object)
add_openapi_route(app)  # GET /v1/openapi.json, built on first request from every router included below
app.include_router(health.router)
app.include_router(dataset_routes.router)
app.include_router(model_routes.router)
app.include_router(feature_routes.router)
app.include_router(materialize_routes.router)
app.include_router(approval_routes.router)
app.include_router(release_routes.router)
app.include_router(drift_routes.router)
app.include_router(governance_routes.router)
app.include_router(audit_routes.router)
app.include_router(reproduce_routes.router)
app.include_router(import_routes.router)
app.include_router(batch_routes.router)
install_error_handlers(app)


DECISION_ROUTES = frozenset({"POST /v1/approvals/{approval_id}/approve", "POST /v1/approvals/{approval_id}/reject"})


def persona_gate(resolver: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response:
    """A Cognito caller reaches a route only through a persona of its groups (setting persona_groups)."""
    event = resolver.current_event
    route = f"{event.http_method} {event.resource}"
    try:
        personas.check_route(
            get_settings(),
            caller_identity(event),
            route,
            path_parameters=dict(event.path_parameters or {}),
            cognito=bool(event.request_context.authorizer.claims),
            correlation_id=logger.get_correlation_id() or "",
        )
    except Forbidden:
        if route in DECISION_ROUTES:  # counted with the other refused decisions (an alarm watches them)
            metrics.add_metric(name=approval_routes.REFUSED_METRIC, unit=MetricUnit.Count, value=1)
        raise
    return next_middleware(resolver)


app.use(middlewares=[persona_gate])


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
