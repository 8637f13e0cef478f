"""Audit routes (IAM-authorized).

GET  /v1/audit[?model=NAME|target=KIND/NAME][&since=ISO][&until=ISO][&actor=TEXT][&action=PREFIX]
        [&limit=N][&next_token=T]   events oldest first, by page: who, what, target, before/after,
        reason, correlation id (actor: a case-sensitive part of `who`; action: a prefix, e.g. approval.)
POST /v1/audit/export {"day": "YYYY-MM-DD"}   export that day (default yesterday) to the archive now
"""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.handlers.routes.params import ModelQuery, NextTokenQuery, SinceQuery, TargetQuery, reply
from functions.logic import governance
from functions.models.lineage import AuditList, ExportDay, Exported
from functions.models.settings import get_settings

router = APIGatewayRouter()
YESTERDAY = ExportDay()  # the body a request without one stands for


@router.get("/v1/audit")
def list_audit(
    model: ModelQuery = None,
    target: TargetQuery = None,
    since: SinceQuery = None,
    until: SinceQuery = None,
    actor: Annotated[
        str | None,
        Query(
            pattern=r"^[A-Za-z0-9_.:/@+=,-]{1,128}$",
            description="a part of the actor's identity (case-sensitive), e.g. alice or assumed-role/Approver",
        ),
    ] = None,
    action: Annotated[
        str | None, Query(pattern=r"^[a-z][a-z0-9_.-]{0,63}$", description="an action or its prefix, e.g. approval.")
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=governance.MAX_EVENTS, description="the most events to return")
    ] = governance.MAX_EVENTS,
    next_token: NextTokenQuery = None,
) -> Response[AuditList]:
    return reply(
        governance.audit_events(
            get_settings(),
            model=model,
            target=target,
            since=governance.as_utc(since),
            limit=limit,
            next_token=next_token,
            until=governance.as_utc(until),
            actor=actor,
            action=action,
        )
    )


@router.post("/v1/audit/export")
def export_audit(request: Annotated[ExportDay, Body()] = YESTERDAY) -> Response[Exported]:
    return reply(governance.export_now(get_settings(), request))
