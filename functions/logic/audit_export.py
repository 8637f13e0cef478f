"""Export of the audit trail, one UTC day at a time, as Parquet to the audit archive bucket:

    audit/dt=YYYY-MM-DD/events-<exported at>.parquet   (bucket default retention: governance mode)

Columns: event_id, time (timestamp[us, UTC]), who, action, target, version (int32, null when the
event is about the whole target), before, after (JSON text), reason, correlation_id. Events are
read from the audit index (gsi1, time-ordered). A repeated export of a day writes a new object
beside the old one (nothing under Object Lock is overwritten); the export Lambda makes a repeated
delivery for a day that has ended return the first export instead (handlers/audit_export.py).
"""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, date, datetime, time, timedelta

from pydantic import BaseModel, ConfigDict, Field

from functions.dal import audit as audit_dal
from functions.dal import audit_export as export_dal
from functions.models.audit import AuditEvent, iso
from functions.models.errors import InvalidInput
from functions.models.settings import Settings

PREFIX = "audit/"
MAX_EVENTS_PER_DAY = 1_000_000


class ExportRequest(BaseModel):
    """The schedule sends {} (yesterday); on demand {"day": "YYYY-MM-DD"}."""

    model_config = ConfigDict(extra="ignore")

    day: date | None = None


class ExportResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    day: date
    events: int = Field(ge=0)
    key: str
    version_id: str = ""
    sha256: str


def day_events(settings: Settings, day: date) -> list[AuditEvent]:
    start = datetime.combine(day, time(), tzinfo=UTC)
    end = iso(start + timedelta(days=1))
    events = audit_dal.list_events(settings.metadata_table, since=start, limit=MAX_EVENTS_PER_DAY)
    return [e for e in events if e.sort_key < end]


def to_parquet(events: list[AuditEvent]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("event_id", pa.string()),
            ("time", pa.timestamp("us", tz="UTC")),
            ("who", pa.string()),
            ("action", pa.string()),
            ("target", pa.string()),
            ("version", pa.int32()),
            ("before", pa.string()),
            ("after", pa.string()),
            ("reason", pa.string()),
            ("correlation_id", pa.string()),
        ]
    )
    columns = {
        "event_id": [e.event_id for e in events],
        "time": [e.time for e in events],
        "who": [e.who for e in events],
        "action": [e.action for e in events],
        "target": [e.target for e in events],
        "version": [e.version for e in events],
        "before": [json.dumps(e.before, sort_keys=True, default=str) for e in events],
        "after": [json.dumps(e.after, sort_keys=True, default=str) for e in events],
        "reason": [e.reason for e in events],
        "correlation_id": [e.correlation_id for e in events],
    }
    out = io.BytesIO()
    pq.write_table(pa.table(columns, schema=schema), out, compression="zstd")
    return out.getvalue()


def export_day(settings: Settings, request: ExportRequest, *, now: datetime | None = None) -> ExportResult:
    now = now or datetime.now(UTC)
    day = export_date(request, now)
    return export_events(settings, day, day_events(settings, day), now=now)


def export_date(request: ExportRequest, now: datetime) -> date:
    """The day an export request names: its `day`, else yesterday (UTC)."""
    return request.day or (now - timedelta(days=1)).date()


def day_ended(day: date, now: datetime) -> bool:
    """Whether no event can be added to `day` any more (its events are final)."""
    return day < now.astimezone(UTC).date()


def events_digest(events: list[AuditEvent]) -> str:
    """What a day's export holds, in one hash: the sort keys (time + event id) of its events."""
    return hashlib.sha256("\n".join(e.sort_key for e in events).encode()).hexdigest()


def export_events(settings: Settings, day: date, events: list[AuditEvent], *, now: datetime) -> ExportResult:
    """Write the day's events as one Parquet object; where it is."""
    if not settings.audit_archive_bucket:
        raise InvalidInput("no audit archive bucket configured (STEPWISE_AUDIT_ARCHIVE_BUCKET)")
    body = to_parquet(events)
    key = f"{PREFIX}dt={day.isoformat()}/events-{now.strftime('%Y%m%dT%H%M%S%fZ')}.parquet"
    version_id = export_dal.put_parquet(settings.audit_archive_bucket, key, body)
    return ExportResult(
        day=day, events=len(events), key=key, version_id=version_id, sha256=hashlib.sha256(body).hexdigest()
    )
