"""Governance routes (IAM-authorized): lineage, explain, model cards, retirement, restore.

GET  /v1/models/{name}/versions/{version}/lineage   the chain down to the uploaded object
GET  /v1/explain/{request_id}?model=M[&since=]       the version that answered, and its lineage
                                                    (every match counted: ids are the callers')
GET  /v1/models/{name}/versions/{version}/card       the model card (rendered from the records, stored)
POST /v1/models/{name}/versions/{version}/retire     {"reason", "withdraw"?}: 409 for a serving version
                                                     (the production one is retired with "withdraw": true)
POST /v1/models/{name}/versions/{version}/restore    {"reason"}: re-verify and re-register
Who retires or restores is the caller's identity (requestContext), never a field of the body.
"""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.handlers.routes.approvals import caller
from functions.handlers.routes.params import MAX_NAME, Name, RequestId, SinceQuery, Version, reply
from functions.logic import governance, lineage, model_alarms, model_card, retirement
from functions.models.audit import Actor
from functions.models.errors import Forbidden
from functions.models.lineage import Explanation, Lineage, ModelCard, Restored, RestoreRequest, Retired, RetireRequest
from functions.models.registry import NAME_PATTERN
from functions.models.settings import get_settings
from functions.observability import logger

router = APIGatewayRouter()
NO_REASON = RestoreRequest()  # the body a request without one stands for


def _actor(what: str) -> Actor:
    who = caller(router).principal
    if not who:
        raise Forbidden(f"no caller identity: {what} needs an IAM-authorized caller")
    return Actor(identity=who, correlation_id=logger.get_correlation_id() or "")


@router.get("/v1/models/<name>/versions/<version>/lineage")
def get_lineage(name: Name, version: Version) -> Response[Lineage]:
    return reply(lineage.lineage(get_settings(), name, version))


@router.get("/v1/explain/<request_id>")
def explain(
    request_id: RequestId,
    model: Annotated[str, Query(pattern=NAME_PATTERN, max_length=MAX_NAME, description="the model that answered")],
    since: SinceQuery = None,
) -> Response[Explanation]:
    return reply(lineage.explain(get_settings(), request_id, model=model, since=governance.as_utc(since)))


@router.get("/v1/models/<name>/versions/<version>/card")
def get_card(name: Name, version: Version) -> Response[ModelCard]:
    return reply(model_card.write_card(get_settings(), name, version))


@router.post("/v1/models/<name>/versions/<version>/retire")
def retire(name: Name, version: Version, request: Annotated[RetireRequest, Body()]) -> Response[Retired]:
    actor = _actor("retirement")
    retired = retirement.retire(get_settings(), name, version, actor, request.reason, withdraw=request.withdraw)
    model_alarms.sync(get_settings(), name, actor, f"version {version} retired: {retired.reason}"[:4096])
    return reply(retired)


@router.post("/v1/models/<name>/versions/<version>/restore", responses={201: {"description": "the restored version"}})
def restore(name: Name, version: Version, request: Annotated[RestoreRequest, Body()] = NO_REASON) -> Response[Restored]:
    done = retirement.restore(get_settings(), name, version, _actor("restore"), request.reason)
    return reply(done, 201)
