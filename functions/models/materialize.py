"""Materializations: a feature view version's latest rows per entity, from one validated source
dataset version, written to the online store (item layout: functions/models/online.py).

Key layout (metadata table, keys `pk`/`sk`):
    pk=FEATUREVIEW#<view>  sk=MATERIALIZATION#<id>                          Materialization (the record)
    pk=FEATUREVIEW#<view>  sk=MATCHUNK#<view version %08d>#<source version %08d>#<chunk %06d>
                                                                            ChunkResult (done marker)
A chunk's marker is written after its items, so a chunk with a marker is done for that (view, view
version, source version) whatever materialization ran it: a redelivered or repeated chunk reads the
marker and writes nothing. The record's counts are the sum of its chunks' markers: an entity whose
rows fall in several chunks is tried (and counted) once per chunk, its latest row winning.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from functions.models.registry import NAME_PATTERN

MATERIALIZATION_ID_PATTERN = r"^[0-9a-f]{20}$"
CLIENT_TOKEN_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
MAX_CHUNKS = 10_000  # Distributed Map items of one materialization
START_ACTION = "feature_view.materialize.start"
FINISH_ACTION = "feature_view.materialize.finish"
FRESHNESS_METRIC = "OnlineFeatureAgeSeconds"  # per view (dimension `view`)
FRESHNESS_MAX_METRIC = "OnlineFeatureAgeMaxSeconds"  # the oldest view's age, dimensionless (the alarm's)
METRIC_NAMESPACE = "Stepwise/Features"

Trigger = Literal["api", "validation"]


def materialization_sk(materialization_id: str) -> str:
    return f"MATERIALIZATION#{materialization_id}"


def chunk_sk(view_version: int, source_version: int, index: int) -> str:
    return f"MATCHUNK#{view_version:08d}#{source_version:08d}#{index:06d}"


def chunk_prefix(view_version: int, source_version: int) -> str:
    return f"MATCHUNK#{view_version:08d}#{source_version:08d}#"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class MaterializationStatus(StrEnum):
    PENDING = "PENDING"  # recorded; its workflow has not planned it yet
    RUNNING = "RUNNING"  # planned: chunks are being written
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"  # `error` names the typed error, `message` what went wrong


class MaterializeRequest(_Strict):
    """Body of POST /v1/feature-views/{name}/materialize: which validated version of the view's
    source to materialize (default: its latest), and an optional client token (one
    materialization per (view, caller, token))."""

    version: int | None = Field(default=None, ge=1)
    client_token: str | None = Field(default=None, pattern=CLIENT_TOKEN_PATTERN)


class ChunkTask(_Strict):
    """One Distributed Map item: which rows of which object a chunk worker materializes."""

    view: str = Field(pattern=NAME_PATTERN)
    materialization_id: str = Field(pattern=MATERIALIZATION_ID_PATTERN)
    index: int = Field(ge=0)
    start: int = Field(default=0, ge=0)  # byte range (CSV, JSON Lines)
    end: int = Field(default=0, ge=0)
    row_groups: list[int] = Field(default_factory=list, max_length=100_000)  # Parquet


class ChunkResult(_Strict):
    """What one chunk did (stored as its done marker)."""

    index: int = Field(ge=0)
    materialization_id: str = Field(pattern=MATERIALIZATION_ID_PATTERN)  # the run that wrote it
    rows_read: int = Field(default=0, ge=0)
    rows_without_key: int = Field(default=0, ge=0)  # a null entity key or event time: not materialized
    entities: int = Field(default=0, ge=0)  # distinct entities in the chunk (items tried)
    entities_written: int = Field(default=0, ge=0)
    skipped_older: int = Field(default=0, ge=0)  # the store already held a newer (or the same) row
    write_requests: int = Field(default=0, ge=0)
    newest_event_time_us: int | None = None
    seconds: float = Field(default=0.0, ge=0)
    redelivered: bool = False  # the marker was already there: nothing was written this time


class Materialization(_Strict):
    materialization_id: str = Field(pattern=MATERIALIZATION_ID_PATTERN)
    view: str = Field(pattern=NAME_PATTERN)
    view_version: int = Field(ge=1)
    source: str = Field(pattern=NAME_PATTERN)
    source_version: int = Field(ge=1)
    status: MaterializationStatus
    trigger: Trigger = "api"
    chunks_total: int = Field(default=0, ge=0)
    chunks_done: int = Field(default=0, ge=0)
    rows_read: int = Field(default=0, ge=0)
    rows_without_key: int = Field(default=0, ge=0)
    entities_written: int = Field(default=0, ge=0)
    skipped_older: int = Field(default=0, ge=0)
    write_requests: int = Field(default=0, ge=0)
    newest_event_time: datetime | None = None  # the newest event time this run's chunks saw
    requested_by: str = ""
    requested_at: datetime
    started_at: datetime | None = None  # planned
    finished_at: datetime | None = None
    seconds: float | None = Field(default=None, ge=0)  # requested -> finished
    execution_arn: str = ""
    client_token: str | None = None
    request_sha256: str = ""
    error: str = ""
    message: str = ""
    joined: bool = False  # the reply to a repeated request: this is the first request's run


class Materializations(_Strict):
    materializations: list[Materialization]


class OnlineFreshness(_Strict):
    """A view's online freshness, from its latest materializations (what `stepwise feature-views` shows)."""

    view: str
    newest_event_time: datetime | None = None  # newest event time any succeeded run materialized
    age_seconds: float | None = None
    last_materialization: str = ""
    last_status: MaterializationStatus | None = None
    last_finished_at: datetime | None = None
    last_source_version: int | None = None
    rows_read: int = 0
    entities_written: int = 0

    @classmethod
    def of(cls, view: str, records: list[Materialization], now: datetime | None = None) -> OnlineFreshness:
        """From the view's materializations, newest request first (what GET .../materializations lists)."""
        now = now or datetime.now(UTC)
        newest = max(
            (
                r.newest_event_time
                for r in records
                if r.status is MaterializationStatus.SUCCEEDED and r.newest_event_time
            ),
            default=None,
        )
        last = records[0] if records else None
        return cls(
            view=view,
            newest_event_time=newest,
            age_seconds=None if newest is None else max(0.0, (now - newest).total_seconds()),
            last_materialization=last.materialization_id if last else "",
            last_status=last.status if last else None,
            last_finished_at=last.finished_at if last else None,
            last_source_version=last.source_version if last else None,
            rows_read=last.rows_read if last else 0,
            entities_written=last.entities_written if last else 0,
        )
