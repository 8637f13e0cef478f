"""Release routes: one-call rollback, recorded with the caller's identity and a reason.

POST /v1/models/{name}/rollback  {"reason", "expected_production_version", "expected_canary_version"?,
                                  "to_version"?}: 409 StaleExpectation when the aliases are no
                                  longer the expected ones (a retry, or a race with the workflow)
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.handlers.routes.approvals import caller
from functions.handlers.routes.params import Name, reply
from functions.logic import model_alarms, releases
from functions.models.api import ErrorReply
from functions.models.approvals import RollbackRequest
from functions.models.audit import Actor
from functions.models.errors import Forbidden
from functions.models.registry import ModelRecord
from functions.models.settings import get_settings
from functions.observability import logger

router = APIGatewayRouter()
CONFLICT = (
    "StaleExpectation: the model's production or canary version is no longer the expected one "
    "(nothing was rolled back); or nothing to roll back"
)


RESPONSES: dict[int, Any] = {
    200: {"description": "the model with its aliases after the rollback"},
    409: {"description": CONFLICT, "content": {"application/json": {"model": ErrorReply}}},
}


@router.post("/v1/models/<name>/rollback", responses=RESPONSES)
def rollback(name: Name, request: Annotated[RollbackRequest, Body()]) -> Response[ModelRecord]:
    who = caller(router).principal
    if not who:
        raise Forbidden("no caller identity: rollback needs an IAM-authorized caller")
    actor = Actor(identity=who, correlation_id=logger.get_correlation_id() or "")
    record = releases.rollback(
        get_settings(),
        name,
        actor,
        request.reason,
        expected_production=request.expected_production_version,
        expected_canary=request.expected_canary_version,
        to_version=request.to_version,
    )
    model_alarms.sync(get_settings(), name, actor, f"rollback: {request.reason}"[:4096])
    return reply(record)
