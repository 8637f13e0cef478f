"""Materialization: a feature view version's latest row per entity, from one validated version of
its source dataset, written to the online store (item layout: functions/models/online.py).

    request -> record PENDING (+ audit "feature_view.materialize.start"), handed to the
               materialization function (functions/logic/materialize_jobs.py) -> start
    start   -> the workflow (AWS: Plan -> Distributed Map of chunks -> Finish), or the same three
               steps in-process where no workflow is deployed (the local cloud, whose Step
               Functions interpreter cannot run a Distributed Map)
    plan    -> the source object's chunks (validation's planner: Parquet row groups, or line-aligned
               byte ranges of CSV / JSON Lines); record RUNNING with chunks_total
    chunk   -> read the view's columns of the chunk, keep each entity's latest row by the view's
               timestamp column (sorted with pyarrow.compute, never a Python loop over rows), write
               the view's entry of each entity's item with one conditional update
               (functions/dal/online_store.py: newer event time wins, ties go to the higher source
               version; other views' entries are left as they are); then the chunk's done marker
    finish  -> sum the markers; record SUCCEEDED (+ audit "feature_view.materialize.finish") and
               the view's freshness metric; a chunk without a marker fails the run naming it
    fail    -> a step that failed after its retries: record FAILED with the error

Idempotent per (view, view version, source version, chunk): a chunk whose marker exists is done, so a
redelivered or repeated chunk writes nothing; and a chunk interrupted before its marker is written
again with the same conditional writes, which change nothing already stored. Rows with a null
entity key or event time are not materialized (counted as `rows_without_key`).

Feature values are stored as DynamoDB N (int, float; NaN and infinities as NULL), S (string,
category), BOOL (bool), NULL (null), and timestamps as N microseconds since the epoch (UTC).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from functions.dal import artifacts as objects
from functions.dal import datasets as datasets_dal
from functions.dal import feature_views as views_dal
from functions.dal import materializations as store
from functions.dal import online_store, workflow
from functions.logic.materialize_jobs import target
from functions.logic.validation_files import Chunk, ColumnTypeError, Unreadable, plan_chunks, read_chunk
from functions.models.audit import Actor, AuditEvent
from functions.models.errors import InvalidInput, NotFound, StepwiseError, StoreUnavailable
from functions.models.features import FeatureViewRecord
from functions.models.materialize import (
    FINISH_ACTION,
    MAX_CHUNKS,
    ChunkResult,
    ChunkTask,
    Materialization,
    MaterializationStatus,
)
from functions.models.online import (
    ATTR_EVENT_TIME_US,
    ATTR_MATERIALIZATION,
    ATTR_SOURCE_VERSION,
    ATTR_VALUES,
    ATTR_VIEW_VERSION,
    ATTR_WRITTEN_AT,
    online_key,
)
from functions.models.settings import Settings
from functions.observability import logger

WRITE_BATCH = 500  # items built and written per slice of a chunk (bounds the dicts held at once)


class MaterializationFailed(StepwiseError):
    """A materialization concluded FAILED (its record names why); the workflow fails with it."""

    status_code = 500


def start(settings: Settings, view: str, materialization_id: str) -> Materialization:
    """Start the recorded run's workflow (named after the run: a repeated start is a no-op), or run
    its steps here where no workflow is deployed."""
    record = _record(settings, view, materialization_id)
    if record.status in (MaterializationStatus.SUCCEEDED, MaterializationStatus.RUNNING):
        return record
    if not settings.materialize_state_machine_arn:
        return run_in_process(settings, view, materialization_id)
    payload = {"view": view, "materialization_id": materialization_id}
    try:
        arn, _ = workflow.start_execution(settings.materialize_state_machine_arn, materialization_id, payload)
    except StoreUnavailable as exc:
        _conclude_failed(settings, record, type(exc).__name__, exc.message)
        raise
    started = record.model_copy(update={"execution_arn": arn})
    store.replace(settings.metadata_table, started)
    return started


def run_in_process(settings: Settings, view: str, materialization_id: str) -> Materialization:
    """Plan, every chunk, finish, one after the other; a step's typed error fails the run (recorded)."""
    try:
        for task in plan(settings, view, materialization_id):
            run_chunk(settings, task)
        return finish(settings, view, materialization_id)
    except MaterializationFailed:
        return _record(settings, view, materialization_id)
    except StepwiseError as exc:
        return record_failure(settings, view, materialization_id, type(exc).__name__, exc.message)


# -- the workflow's steps --------------------------------------------------------------------------


def _record(settings: Settings, view: str, materialization_id: str) -> Materialization:
    record = store.get(settings.metadata_table, view, materialization_id)
    if record is None:
        raise NotFound(f"feature view {view!r} has no materialization {materialization_id}")
    return record


def _source(settings: Settings, record: Materialization) -> tuple[objects.S3RangeSource, Any, Any]:
    """The source version's object (its recorded S3 version), its format and its contract."""
    table = settings.metadata_table
    version = datasets_dal.get_version(table, record.source, record.source_version)
    contract = datasets_dal.get_contract(table, record.source, version.contract_version)
    info = objects.head_object(version.bucket, version.key, version.version_id)
    return objects.S3RangeSource(version.bucket, version.key, info.version_id, info.size), version, contract


def plan(settings: Settings, view: str, materialization_id: str, now: datetime | None = None) -> list[ChunkTask]:
    """The run's chunks (the Distributed Map's items); the record becomes RUNNING with their count."""
    record = _record(settings, view, materialization_id)
    source, version, _ = _source(settings, record)
    try:
        chunks = plan_chunks(source, version.format, settings.materialize_chunk_bytes)
    except Unreadable as exc:
        raise InvalidInput(f"{record.source}@{record.source_version} cannot be read: {exc}") from exc
    if len(chunks) > MAX_CHUNKS:
        raise InvalidInput(
            f"{record.source}@{record.source_version} makes {len(chunks)} chunks, more than {MAX_CHUNKS}: "
            "raise STEPWISE_MATERIALIZE_CHUNK_BYTES"
        )
    running = record.model_copy(
        update={
            "status": MaterializationStatus.RUNNING,
            "chunks_total": len(chunks),
            "started_at": now or datetime.now(UTC),
        }
    )
    store.replace(settings.metadata_table, running)
    return [
        ChunkTask(
            view=view,
            materialization_id=materialization_id,
            index=c.index,
            start=c.start,
            end=c.end,
            row_groups=list(c.row_groups),
        )
        for c in chunks
    ]


def latest_per_entity(
    table: pa.Table, entity_keys: list[str], timestamp_column: str
) -> tuple[pa.Table, np.ndarray, int]:
    """Each entity's latest row of `table` by `timestamp_column`, the event times of those rows
    (int64 microseconds since the epoch, UTC; naive times are read as UTC), and how many rows had a
    null key or time (left out). Sorted by (key ascending, time descending): the first row of each
    key's run is its latest."""
    stamp = table.column(timestamp_column)
    if not pa.types.is_timestamp(stamp.type):
        raise InvalidInput(f"timestamp column {timestamp_column!r} is {stamp.type}, not a timestamp")
    valid = pc.is_valid(stamp)
    for key in entity_keys:
        valid = pc.and_(valid, pc.is_valid(table.column(key)))
    kept = table.filter(valid)
    without_key = table.num_rows - kept.num_rows
    if kept.num_rows == 0:
        return kept, np.zeros(0, dtype=np.int64), without_key
    try:
        micros = pc.cast(pc.cast(kept.column(timestamp_column), pa.timestamp("us", stamp.type.tz)), pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InvalidInput(f"timestamp column {timestamp_column!r} does not fit microseconds: {exc}") from exc
    keys = {f"k{i}": _key_text(kept.column(k)) for i, k in enumerate(entity_keys)}
    work = pa.table({**keys, "__t": micros})
    order = pc.sort_indices(work, sort_keys=[*((k, "ascending") for k in keys), ("__t", "descending")])
    first = np.zeros(kept.num_rows, dtype=bool)
    first[0] = True
    for name in keys:
        column = pc.take(work.column(name), order).combine_chunks()
        first[1:] |= pc.not_equal(column[1:], column[:-1]).to_numpy(zero_copy_only=False)
    picks = pc.take(order, pa.array(np.flatnonzero(first)))
    return kept.take(picks), pc.take(micros, picks).to_numpy(zero_copy_only=False), without_key


def _key_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """An entity key column as its canonical text (functions/models/online.py: Arrow's cast to string)."""
    if pa.types.is_dictionary(column.type):
        column = pc.cast(column, column.type.value_type)
    return pc.cast(column, pa.string())


def _value(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, float):
        return {"NULL": True} if not math.isfinite(value) else {"N": repr(value)}
    return {"S": str(value)}


def _feature_columns(rows: pa.Table, features: list[str]) -> dict[str, list[Any]]:
    """Each feature as Python values, timestamps as int microseconds since the epoch."""
    out: dict[str, list[Any]] = {}
    for name in features:
        column = rows.column(name)
        if pa.types.is_timestamp(column.type):
            column = pc.cast(pc.cast(column, pa.timestamp("us", column.type.tz)), pa.int64())
        elif pa.types.is_dictionary(column.type):
            column = pc.cast(column, column.type.value_type)
        out[name] = column.to_pylist()
    return out


def online_entries(
    view: FeatureViewRecord,
    rows: pa.Table,
    event_times_us: np.ndarray,
    *,
    source_version: int,
    materialization_id: str,
    written_at: str,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The view's online entries of `rows` (one per entity): (the entity's item pk, the entry's map
    in DynamoDB's attribute-value form)."""
    names = list(view.view.entity_keys)
    keys = [_key_text(rows.column(k)).to_pylist() for k in names]
    features = [f.name for f in view.view.features]
    values = _feature_columns(rows, features)
    common = {
        ATTR_VIEW_VERSION: {"N": str(view.version)},
        ATTR_SOURCE_VERSION: {"N": str(source_version)},
        ATTR_MATERIALIZATION: {"S": materialization_id},
        ATTR_WRITTEN_AT: {"S": written_at},
    }
    for i in range(rows.num_rows):
        entry = {
            **common,
            ATTR_VALUES: {"M": {f: _value(values[f][i]) for f in features}},
            ATTR_EVENT_TIME_US: {"N": str(int(event_times_us[i]))},
        }
        yield online_key(names, [k[i] for k in keys]), entry


def run_chunk(settings: Settings, task: ChunkTask, now: datetime | None = None) -> ChunkResult:
    """Materialize one chunk (nothing when its done marker exists: the marker is returned)."""
    table = settings.metadata_table
    record = _record(settings, task.view, task.materialization_id)
    done = store.get_chunk(table, record.view, record.view_version, record.source_version, task.index)
    if done is not None:
        return done.model_copy(update={"redelivered": True})
    began = time.perf_counter()
    view = views_dal.get_view(table, record.view, record.view_version)
    source, version, contract = _source(settings, record)
    chunk = Chunk(index=task.index, start=task.start, end=task.end, row_groups=tuple(task.row_groups))
    try:
        data, _ = read_chunk(source, version.format, chunk, contract.contract)
    except (Unreadable, ColumnTypeError) as exc:
        raise InvalidInput(f"{record.source}@{record.source_version} chunk {task.index}: {exc}") from exc
    columns = [*view.view.entity_keys, view.view.timestamp_column, *(f.name for f in view.view.features)]
    missing = [c for c in columns if c not in data.column_names]
    if missing:
        raise InvalidInput(
            f"{record.source}@{record.source_version} has no column(s) {', '.join(map(repr, missing))} "
            f"that view {record.view} v{record.view_version} reads"
        )
    rows, times, without_key = latest_per_entity(
        data.select(columns), list(view.view.entity_keys), view.view.timestamp_column
    )
    written_at = (now or datetime.now(UTC)).isoformat()
    counts = online_store.WriteCounts()
    for offset in range(0, rows.num_rows, WRITE_BATCH):
        part = rows.slice(offset, WRITE_BATCH)
        entries = online_entries(
            view,
            part,
            times[offset : offset + WRITE_BATCH],
            source_version=record.source_version,
            materialization_id=record.materialization_id,
            written_at=written_at,
        )
        online_store.write_latest(settings.online_table, view.name, entries, counts)
    result = ChunkResult(
        index=task.index,
        materialization_id=record.materialization_id,
        rows_read=data.num_rows,
        rows_without_key=without_key,
        entities=rows.num_rows,
        entities_written=counts.written,
        skipped_older=counts.skipped_older,
        write_requests=counts.requests,
        newest_event_time_us=int(times.max()) if len(times) else None,
        seconds=round(time.perf_counter() - began, 6),
    )
    store.put_chunk(table, record.view, record.view_version, record.source_version, result)
    return result


def _from_us(micros: int | None) -> datetime | None:
    return None if micros is None else datetime.fromtimestamp(micros / 1e6, UTC)


def finish(settings: Settings, view: str, materialization_id: str, now: datetime | None = None) -> Materialization:
    """Conclude the run from its chunks' markers: SUCCEEDED with the sums, or FAILED naming the
    chunks without one (MaterializationFailed). A run already concluded is returned as it is."""
    record = _record(settings, view, materialization_id)
    if record.status in (MaterializationStatus.SUCCEEDED, MaterializationStatus.FAILED):
        if record.status is MaterializationStatus.FAILED:
            raise MaterializationFailed(f"{record.error}: {record.message}")
        return record
    now = now or datetime.now(UTC)
    markers = store.list_chunks(settings.metadata_table, view, record.view_version, record.source_version)
    done = {m.index for m in markers if m.index < record.chunks_total}
    missing = sorted(set(range(record.chunks_total)) - done)
    newest = max((m.newest_event_time_us for m in markers if m.newest_event_time_us is not None), default=None)
    counted = record.model_copy(
        update={
            "chunks_done": len(done),
            "rows_read": sum(m.rows_read for m in markers),
            "rows_without_key": sum(m.rows_without_key for m in markers),
            "entities_written": sum(m.entities_written for m in markers),
            "skipped_older": sum(m.skipped_older for m in markers),
            "write_requests": sum(m.write_requests for m in markers),
            "newest_event_time": _from_us(newest),
        }
    )
    if missing:
        shown = ", ".join(str(i) for i in missing[:20]) + (" ..." if len(missing) > 20 else "")
        message = f"{len(missing)} of {record.chunks_total} chunks were not materialized: {shown}"
        failed = _conclude_failed(settings, counted, "ChunksMissing", message, now=now)
        raise MaterializationFailed(f"{failed.error}: {failed.message}")
    succeeded = counted.model_copy(
        update={
            "status": MaterializationStatus.SUCCEEDED,
            "finished_at": now,
            "seconds": max(0.0, (now - record.requested_at).total_seconds()),
        }
    )
    after = {
        "materialization": materialization_id,
        "status": "SUCCEEDED",
        "source_version": record.source_version,
        "rows_read": succeeded.rows_read,
        "entities_written": succeeded.entities_written,
        "skipped_older": succeeded.skipped_older,
    }
    event = AuditEvent.of(_actor(record), FINISH_ACTION, target(view), version=record.view_version, after=after)
    store.replace(settings.metadata_table, succeeded, event)
    return succeeded


def _actor(record: Materialization) -> Actor:
    return Actor(identity=record.requested_by or "stepwise:materialize", correlation_id=record.materialization_id)


def _conclude_failed(
    settings: Settings, record: Materialization, error: str, message: str, *, now: datetime | None = None
) -> Materialization:
    now = now or datetime.now(UTC)
    failed = record.model_copy(
        update={
            "status": MaterializationStatus.FAILED,
            "error": error[:200],
            "message": message[:1_000],
            "finished_at": now,
            "seconds": max(0.0, (now - record.requested_at).total_seconds()),
        }
    )
    after = {"materialization": record.materialization_id, "status": "FAILED", "error": failed.error}
    event = AuditEvent.of(_actor(record), FINISH_ACTION, target(record.view), version=record.view_version, after=after)
    store.replace(settings.metadata_table, failed, event)
    logger.error(
        "materialization failed",
        extra={"view": record.view, "materialization": record.materialization_id, "error": error, "reason": message},
    )
    return failed


def record_failure(settings: Settings, view: str, materialization_id: str, error: str, cause: str) -> Materialization:
    """From the workflow's Catch (or the in-process runner): a step failed after its retries."""
    record = _record(settings, view, materialization_id)
    if record.status is MaterializationStatus.FAILED:
        return record
    return _conclude_failed(settings, record, error or "UnknownError", cause or "a step failed")
