"""Reproduce routes (IAM-authorized): retrain a registered version inside the stack from its
recorded lineage (dataset object, spec version, seed) and compare its holdout predictions.

POST /v1/models/{name}/versions/{version}/reproduce   body absent or {}: 202 with the reproduction
                                                      (RUNNING; `joined` when one was already running)
GET  /v1/models/{name}/versions/{version}/reproduce   the version's latest reproduction: RUNNING,
                                                      SUCCEEDED (result.identical) or FAILED (error)
Who asks is the caller's identity (requestContext), never a field of the body.
"""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.handlers.routes.approvals import caller
from functions.handlers.routes.params import Name, Version, reply
from functions.logic import reproduction
from functions.models.audit import Actor
from functions.models.errors import Forbidden
from functions.models.reproduction import ReproduceBody, Reproduction
from functions.models.settings import get_settings
from functions.observability import logger

router = APIGatewayRouter()
NO_PARAMETERS = ReproduceBody()  # the body a request without one stands for


@router.post("/v1/models/<name>/versions/<version>/reproduce")
def start_reproduction(
    name: Name, version: Version, request: Annotated[ReproduceBody, Body()] = NO_PARAMETERS
) -> Response[Reproduction]:
    who = caller(router).principal
    if not who:
        raise Forbidden("no caller identity: reproduction needs an IAM-authorized caller")
    actor = Actor(identity=who, correlation_id=logger.get_correlation_id() or "")
    return reply(reproduction.request_reproduction(get_settings(), name, version, actor), 202)


@router.get("/v1/models/<name>/versions/<version>/reproduce")
def get_reproduction(name: Name, version: Version) -> Response[Reproduction]:
    return reply(reproduction.get_reproduction(get_settings(), name, version))
