"""Audit routes (IAM-authorized).

GET  /v1/audit[?model=NAME|target=KIND/NAME][&since=ISO][&limit=N]   events oldest first: who, what,
                                                                     target, before/after, reason,
                                                                     correlation id
POST /v1/audit/export {"day": "YYYY-MM-DD"}   export that day (default yesterday) to the archive now
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.handlers.routes.approvals import body_as, ok
from functions.logic import governance
from functions.models.errors import InvalidInput
from functions.models.lineage import AuditList, ExportDay
from functions.models.settings import get_settings

router = APIGatewayRouter()


@router.get("/v1/audit")
def list_audit():  # no return annotation: no response re-validation
    event = router.current_event
    raw_limit = event.get_query_string_value("limit") or str(governance.MAX_EVENTS)
    if not raw_limit.isdigit():
        raise InvalidInput(f"limit must be a positive integer, not {raw_limit!r}")
    events = governance.audit_events(
        get_settings(),
        model=event.get_query_string_value("model") or None,
        target=event.get_query_string_value("target") or None,
        since=governance.parse_since(event.get_query_string_value("since")),
        limit=int(raw_limit),
    )
    return ok(AuditList(events=events))


@router.post("/v1/audit/export")
def export_audit():  # no return annotation: no response re-validation
    request = body_as(router, ExportDay)
    return ok(governance.export_now(get_settings(), request))
