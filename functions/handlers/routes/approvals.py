"""Approval routes. The approver is the caller's identity from requestContext.identity (IAM
authorization), never a field of the body; a reason is required."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, ValidationError

from functions.handlers.routes.identity import caller_identity
from functions.logic import approvals
from functions.models.approvals import ApprovalList, CallerIdentity, DecisionRequest
from functions.models.errors import InvalidInput
from functions.models.settings import get_settings
from functions.observability import logger

router = APIGatewayRouter()
JSON = "application/json"
M = TypeVar("M", bound=BaseModel)


def caller(r: APIGatewayRouter) -> CallerIdentity:
    return caller_identity(r.current_event)


def body_as(r: APIGatewayRouter, model: type[M]) -> M:
    """The JSON body as `model`; any problem (bad JSON, missing or empty reason) is a 400."""
    raw = r.current_event.decoded_body or "{}"
    try:
        data: Any = json.loads(raw)
        return model.model_validate(data)
    except ValueError as exc:  # json.JSONDecodeError and pydantic.ValidationError
        if isinstance(exc, ValidationError):
            detail = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
            raise InvalidInput(detail) from None
        raise InvalidInput("the body is not JSON") from None


def ok(model: BaseModel) -> Response:
    return Response(status_code=200, content_type=JSON, body=model.model_dump_json())


@router.get("/v1/approvals")
def list_approvals():  # no return annotation: no response re-validation
    return ok(ApprovalList(approvals=approvals.list_pending(get_settings())))


@router.get("/v1/approvals/<approval_id>")
def get_approval(approval_id: str):  # no return annotation: no response re-validation
    return ok(approvals.get_request(get_settings(), approval_id))


def _decide(approval_id: str, approve: bool) -> Response:
    request = body_as(router, DecisionRequest)
    decided = approvals.decide(
        get_settings(),
        approval_id,
        approve=approve,
        caller=caller(router),
        reason=request.reason,
        correlation_id=logger.get_correlation_id() or "",
    )
    return ok(decided)


@router.post("/v1/approvals/<approval_id>/approve")
def approve(approval_id: str):  # no return annotation: no response re-validation
    return _decide(approval_id, True)


@router.post("/v1/approvals/<approval_id>/reject")
def reject(approval_id: str):  # no return annotation: no response re-validation
    return _decide(approval_id, False)
