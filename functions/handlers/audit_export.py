"""Audit export Lambda (data layer: pyarrow): the daily schedule exports yesterday's events;
invoked with {"day": "YYYY-MM-DD"} it exports that day.

Invoked asynchronously by the daily schedule (and synchronously by POST /v1/audit/export), so a day
can be asked for twice. A day that has ended is exported once: Powertools idempotency on the
metadata table (pk=idempotency#audit-export) keyed on the exported day, with the day's events
(their count and a digest of their keys) as the validated payload:
- a repeated request for the day returns the first export (its key, version id, sha256) and writes
  no second object;
- a request for the day whose events are no longer those exported (an event recorded late, or
  removed) is refused with a Conflict (409) naming the day: the archived export would not match
  the table; the operator looks before exporting again (the record expires after 7 days).
The current day is not final: each on-demand export of it is a new snapshot beside the last.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.dal import audit_export as export_dal
from functions.dal.idempotency import run_once
from functions.handlers import lease
from functions.handlers.errors import typed_aws_errors
from functions.logic.audit_export import (
    ExportRequest,
    day_ended,
    day_events,
    events_digest,
    export_date,
    export_events,
)
from functions.models.settings import get_settings
from functions.observability import logger, metrics, tracer

IDEMPOTENCY = IdempotencyConfig(
    event_key_jmespath="day",
    payload_validation_jmespath="[events, digest]",
    raise_on_no_idempotency_key=True,
    expires_after_seconds=7 * 24 * 3600,
)


def export_once(day: date, now: datetime) -> dict[str, Any]:
    settings = get_settings()
    events = day_events(settings, day)
    if not day_ended(day, now):
        return export_events(settings, day, events, now=now).model_dump(mode="json")

    def export(data: dict[str, Any]) -> dict[str, Any]:
        return export_events(settings, day, events, now=now).model_dump(mode="json")

    data = {"day": day.isoformat(), "events": len(events), "digest": events_digest(events)}
    return run_once(  # type: ignore[no-any-return]
        export,
        data=data,
        table=settings.metadata_table,
        partition=export_dal.IDEMPOTENCY_PK,
        config=IDEMPOTENCY,
        changed=f"the audit events of {day.isoformat()} changed since that day was exported "
        f"({len(events)} now); the archived export does not match them",
    )


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@typed_aws_errors
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    lease.register(IDEMPOTENCY, context)
    now = datetime.now(UTC)
    result = export_once(export_date(ExportRequest.model_validate(event or {}), now), now)
    logger.info("audit exported", extra=result)
    return result
