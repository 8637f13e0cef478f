"""Governance routes (IAM-authorized): lineage, explain, model cards, retirement, restore.

GET  /v1/models/{name}/versions/{version}/lineage   the chain down to the uploaded object
GET  /v1/explain/{request_id}?model=M[&since=]       the version that answered, and its lineage
                                                    (every match counted: ids are the callers')
GET  /v1/models/{name}/versions/{version}/card       the model card (rendered from the records, stored)
POST /v1/models/{name}/versions/{version}/retire     {"reason"}: 409 for a serving version
POST /v1/models/{name}/versions/{version}/restore    {"reason"}: re-verify and re-register
Who retires or restores is the caller's identity (requestContext), never a field of the body.
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.handlers.routes.approvals import body_as, caller, ok
from functions.logic import governance, lineage, model_card, retirement
from functions.models.audit import Actor
from functions.models.errors import Forbidden, InvalidInput
from functions.models.lineage import RestoreRequest, RetireRequest
from functions.models.settings import get_settings
from functions.observability import logger

router = APIGatewayRouter()


def _number(version: str) -> int:
    if not version.isdigit() or int(version) < 1:
        raise InvalidInput(f"version must be a positive integer, not {version!r}")
    return int(version)


def _actor(what: str) -> Actor:
    who = caller(router).principal
    if not who:
        raise Forbidden(f"no caller identity: {what} needs an IAM-authorized caller")
    return Actor(identity=who, correlation_id=logger.get_correlation_id() or "")


@router.get("/v1/models/<name>/versions/<version>/lineage")
def get_lineage(name: str, version: str):  # no return annotation: no response re-validation
    return ok(lineage.lineage(get_settings(), name, _number(version)))


@router.get("/v1/explain/<request_id>")
def explain(request_id: str):  # no return annotation: no response re-validation
    event = router.current_event
    since = governance.parse_since(event.get_query_string_value("since"))
    model = event.get_query_string_value("model") or ""
    return ok(lineage.explain(get_settings(), request_id, model=model, since=since))


@router.get("/v1/models/<name>/versions/<version>/card")
def get_card(name: str, version: str):  # no return annotation: no response re-validation
    return ok(model_card.write_card(get_settings(), name, _number(version)))


@router.post("/v1/models/<name>/versions/<version>/retire")
def retire(name: str, version: str):  # no return annotation: no response re-validation
    request = body_as(router, RetireRequest)
    done = retirement.retire(get_settings(), name, _number(version), _actor("retirement"), request.reason)
    return ok(done)


@router.post("/v1/models/<name>/versions/<version>/restore")
def restore(name: str, version: str):  # no return annotation: no response re-validation
    request = body_as(router, RestoreRequest)
    done = retirement.restore(get_settings(), name, _number(version), _actor("restore"), request.reason)
    return Response(status_code=201, content_type="application/json", body=done.model_dump_json())
