"""Audit reads: the append-only trail, oldest first, of one model (with its datasets' events when
asked) or of everything."""

from __future__ import annotations

from datetime import datetime

from functions.dal import audit as audit_dal
from functions.dal import audit_export as export_dal
from functions.models.audit import model_target
from functions.models.errors import InvalidInput
from functions.models.lineage import AuditList, ExportDay, Exported
from functions.models.settings import Settings

MAX_EVENTS = 1000


def parse_since(raw: str | None) -> datetime | None:
    """An ISO date or time (UTC when no zone is given); None for no bound."""
    if not raw:
        return None
    from datetime import UTC

    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"since must be an ISO date or time, not {raw!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def as_utc(moment: datetime | None) -> datetime | None:
    """`moment` in UTC when it names no zone (a bound given as a plain date or time)."""
    from datetime import UTC

    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def audit_events(
    settings: Settings,
    *,
    model: str | None = None,
    target: str | None = None,
    since: datetime | None = None,
    limit: int = MAX_EVENTS,
    next_token: str | None = None,
    until: datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
) -> AuditList:
    """One page of events oldest first: of `model` (its target), of any `target` (`dataset/wine`),
    or all; between `since` and `until` (inclusive), by an `actor` whose identity contains the
    text, of actions starting with `action`; `next_token` names the next page when more exist."""
    if not 1 <= limit <= MAX_EVENTS:
        raise InvalidInput(f"limit is between 1 and {MAX_EVENTS}")
    if model and target:
        raise InvalidInput("give a model or a target, not both")
    if since is not None and until is not None and until < since:
        raise InvalidInput(f"until ({until.isoformat()}) is before since ({since.isoformat()})")
    chosen = model_target(model) if model else target
    events, token = audit_dal.list_events_page(
        settings.metadata_table,
        target=chosen,
        since=since,
        limit=limit,
        next_token=next_token,
        until=until,
        actor=actor or None,
        action=action or None,
    )
    return AuditList(events=events, next_token=token)


def export_now(settings: Settings, request: ExportDay) -> Exported:
    """The on-demand export: the export function (data layer) runs now for the day."""
    if not settings.audit_export_function:
        raise InvalidInput("no audit export function configured (STEPWISE_AUDIT_EXPORT_FUNCTION)")
    payload = {"day": request.day.isoformat()} if request.day else {}
    return Exported.model_validate(export_dal.invoke_export(settings.audit_export_function, payload))
