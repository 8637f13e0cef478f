"""Approval routes. The approver is the caller's identity from requestContext.identity (IAM
authorization), never a field of the body; a reason is required. A refused decision (403) is audited
(`approval.refused`) and counted (metric DecisionsRefused)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from aws_lambda_powertools.metrics import MetricUnit

from functions.handlers.routes.identity import caller_identity
from functions.handlers.routes.params import DEFAULT_PAGE, ApprovalId, LimitQuery, NextTokenQuery, reply
from functions.logic import approvals
from functions.models.approvals import ApprovalList, ApprovalRequest, CallerIdentity, DecisionRequest
from functions.models.errors import Forbidden
from functions.models.settings import get_settings
from functions.observability import logger, metrics

router = APIGatewayRouter()
REFUSED_METRIC = "DecisionsRefused"  # approve/reject answered 403 (an alarm in infra/constructs/personas.py)


def caller(r: APIGatewayRouter) -> CallerIdentity:
    return caller_identity(r.current_event)


@router.get("/v1/approvals")
def list_approvals(limit: LimitQuery = DEFAULT_PAGE, next_token: NextTokenQuery = None) -> Response[ApprovalList]:
    return reply(approvals.list_pending(get_settings(), limit, next_token))


@router.get("/v1/approvals/<approval_id>")
def get_approval(approval_id: ApprovalId) -> Response[ApprovalRequest]:
    return reply(approvals.get_request(get_settings(), approval_id))


def _decide(approval_id: str, approve: bool, request: DecisionRequest) -> Response[ApprovalRequest]:
    try:
        decided = approvals.decide(
            get_settings(),
            approval_id,
            approve=approve,
            caller=caller(router),
            reason=request.reason,
            correlation_id=logger.get_correlation_id() or "",
        )
    except Forbidden:  # audited by the use case; counted here (an alarm watches refusals spike)
        metrics.add_metric(name=REFUSED_METRIC, unit=MetricUnit.Count, value=1)
        raise
    return reply(decided)


@router.post("/v1/approvals/<approval_id>/approve")
def approve(approval_id: ApprovalId, request: Annotated[DecisionRequest, Body()]) -> Response[ApprovalRequest]:
    return _decide(approval_id, True, request)


@router.post("/v1/approvals/<approval_id>/reject")
def reject(approval_id: ApprovalId, request: Annotated[DecisionRequest, Body()]) -> Response[ApprovalRequest]:
    return _decide(approval_id, False, request)
