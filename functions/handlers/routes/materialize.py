"""Materializations of feature views into the online store (IAM-authorized).

POST /v1/feature-views/{name}/materialize       {"version"?, "client_token"?}: 202 with the run
                                                (its id; the view version and source version it writes)
GET  /v1/feature-views/{name}/materializations  the view's runs, newest first
GET  /v1/feature-views/{name}/materializations/{materialization_id}   one run: status, chunks, counts
Who asks is the caller's identity (requestContext), never a field of the body. The workflow, the
routes in the template and the API function's grants are infra/constructs/materialize.py.
"""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.handlers.routes.approvals import caller
from functions.handlers.routes.params import Name, reply
from functions.logic import materialize_jobs
from functions.models.audit import Actor
from functions.models.errors import Forbidden
from functions.models.materialize import (
    MATERIALIZATION_ID_PATTERN,
    Materialization,
    Materializations,
    MaterializeRequest,
)
from functions.models.settings import get_settings
from functions.observability import logger

router = APIGatewayRouter()
MaterializationId = Annotated[
    str, Path(pattern=MATERIALIZATION_ID_PATTERN, max_length=20, description="a materialization id")
]


@router.post("/v1/feature-views/<name>/materialize")
def materialize_view(name: Name, request: Annotated[MaterializeRequest, Body()]) -> Response[Materialization]:
    who = caller(router).principal
    if not who:
        raise Forbidden("no caller identity: materialization needs an IAM-authorized caller")
    actor = Actor(identity=who, correlation_id=logger.get_correlation_id() or "")
    return reply(materialize_jobs.request_materialization(get_settings(), name, request, actor), 202)


@router.get("/v1/feature-views/<name>/materializations")
def list_view_materializations(name: Name) -> Response[Materializations]:
    runs = materialize_jobs.list_materializations(get_settings(), name)
    return reply(Materializations(materializations=runs))


@router.get("/v1/feature-views/<name>/materializations/<materialization_id>")
def get_view_materialization(name: Name, materialization_id: MaterializationId) -> Response[Materialization]:
    return reply(materialize_jobs.get_materialization(get_settings(), name, materialization_id))
