"""Batch jobs: the workflow's side, three steps (plan -> one `run_chunk` per chunk -> finish).

- `plan_job` plans the pinned input object into chunks (validation's planner) and marks the job
  RUNNING; an input that cannot be planned fails the job with the reason.
- `run_chunk` loads the job's version through serving's model cache (sha256 verified) and refuses
  it unless its artifact is the sha256 the job pinned, so every chunk scores with the same bytes
  whatever production became meanwhile; it writes the chunk's part, its rejects part when rows did
  not fit, the chunk's capture sample when the job captures (functions/logic/batch_capture.py),
  and a small report beside them. The part is deterministic, so a retried chunk
  overwrites its own part with the same bytes.
- `finish_job` reads every chunk's report: a missing one fails the job naming the chunks to run
  again (`failed_chunks`, then `finish_job` again: only those are scored); a reject share above
  the job's threshold fails it with the counts per reason and where the rejects are; otherwise
  it writes `_manifest.json` (parts and rejects with rows and sha256, version and artifact sha256,
  the input object version, who started it, start and end) and the job SUCCEEDS. Either outcome is
  audited as `batch.finish`.
"""

from __future__ import annotations

import io
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from functions.dal import artifacts as objects
from functions.dal import batch_jobs as store
from functions.dal import registry as registry_dal
from functions.dal.captures import put_jsonl_gz
from functions.logic import batch, batch_jobs, feature_training
from functions.logic.batch_capture import CaptureSample, capture_key
from functions.logic.batch_jobs import FINISH_ACTION
from functions.logic.pit_join import JoinView, pit_join
from functions.logic.serving import ModelCache
from functions.logic.serving_runtime import OnnxModel
from functions.logic.validation_files import Chunk
from functions.models.audit import Actor, AuditEvent, model_target
from functions.models.batch import (
    BatchInputInvalid,
    BatchJob,
    ChunkReport,
    ChunkTask,
    ExplainedRow,
    JobStatus,
    Manifest,
    PartRef,
    RowExplanation,
    manifest_key,
    part_key,
    rejects_key,
    report_key,
)
from functions.models.errors import Conflict, IntegrityError, InvalidInput, NotFound
from functions.models.registry import ModelVersion
from functions.models.settings import Settings
from functions.observability import logger


def _job(settings: Settings, model: str, job_id: str) -> BatchJob:
    job = store.get(settings.metadata_table, model, job_id)
    if job is None:
        raise NotFound(f"{model} has no batch job {job_id}")
    return job


def _source(job: BatchJob) -> objects.S3RangeSource:
    ref = job.input
    return objects.S3RangeSource(ref.bucket, ref.key, ref.version_id, ref.size_bytes)


def _actor(job: BatchJob) -> Actor:
    return Actor(identity=f"batch:{job.job_id}", correlation_id=logger.get_correlation_id() or "")


def plan_job(
    settings: Settings, model: str, job_id: str, *, chunk_bytes: int | None = None, now: datetime | None = None
) -> list[ChunkTask]:
    job = _job(settings, model, job_id)
    chunk_bytes = chunk_bytes or settings.batch_chunk_bytes
    try:
        version = registry_dal.get_version(settings.registry_table, job.model, job.version)
        if version is None:
            raise BatchInputInvalid(f"{job.model} has no version {job.version}")
        columns = batch.input_columns(_source(job), job.input.format)
        if columns is not None:
            batch.check_columns(columns, version.features, job.passthrough, what=f"{job.model} v{job.version}")
        _, chunks = batch.plan(_source(job), job.input.key, chunk_bytes)
    except BatchInputInvalid as exc:
        _fail(settings, job, "BatchInputInvalid", exc.message, now=now)
        raise
    running = job.model_copy(
        update={"status": JobStatus.RUNNING, "started_at": now or datetime.now(UTC), "chunks_total": len(chunks)}
    )
    store.replace(settings.metadata_table, running)
    # a resumed job scores only the chunks with no report of its pinned artifact
    todo = set(_reports(settings, running)[1]) if job.resumes else {c.index for c in chunks}
    return [
        ChunkTask(model=model, job_id=job_id, index=c.index, start=c.start, end=c.end, row_groups=list(c.row_groups))
        for c in chunks
        if c.index in todo
    ]


def job_models(settings: Settings) -> ModelCache:
    """Serving's model cache for one batch function: a job scores one version."""
    return ModelCache(
        table=settings.registry_table,
        artifacts_bucket=settings.artifacts_bucket,
        capacity=2,
        max_instances=1_000,
        retry_after=1.0,
        clock=time.monotonic,
    )


def pinned_model(models: ModelCache, job: BatchJob) -> OnnxModel:
    """The job's version, loaded and verified; IntegrityError unless its artifact is the one pinned."""
    model, _ = models.get(job.model, job.version)
    recorded = model.version.artifacts["onnx"].sha256
    if recorded != job.artifact_sha256:
        raise IntegrityError(
            f"{job.model} v{job.version} now records artifact sha256 {recorded}, the job pinned {job.artifact_sha256}"
        )
    return model


_VIEWS: dict[tuple[str, ...], list[JoinView]] = {}  # the last version's loaded views (one job per function)


def feature_lookup(settings: Settings, version: ModelVersion, event_time: str) -> batch.Lookup:
    """The point-in-time lookup of a version trained through feature views: each input row joined
    with every view's offline layout as of the row's event time, the very layouts, features and
    TTLs its training joined (functions/logic/pit_join.py; never the online store). Key and time
    columns read as text (CSV, JSON Lines) are cast to the layout's types first."""
    cache_key = tuple(use.layout.sha256 for use in version.feature_views)
    views = _VIEWS.get(cache_key)
    if views is None:
        _VIEWS.clear()
        views = _VIEWS[cache_key] = feature_training.join_views(settings, version.feature_views)
    columns = batch_jobs.lookup_columns(version, event_time)
    types = {k: view.layout.entities.schema.field(k).type for view in views for k in view.layout.manifest.entity_keys}
    zone = views[0].layout.timezone

    def join(table: pa.Table) -> pa.Table:
        try:
            for name, kind in [*types.items(), (event_time, pa.timestamp("us", zone))]:
                column = table.column(name)
                if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                    table = table.set_column(table.column_names.index(name), name, column.cast(kind))
            return pit_join(table, views, time_column=event_time).table
        except (InvalidInput, KeyError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise BatchInputInvalid(f"feature lookups of {version.model} v{version.version}: {exc}") from exc

    return batch.Lookup(columns=columns, join=join)


def run_chunk(settings: Settings, task: ChunkTask, models: ModelCache) -> ChunkReport:
    job = _job(settings, task.model, task.job_id)
    model = pinned_model(models, job)
    chunk = Chunk(index=task.index, start=task.start, end=task.end, row_groups=tuple(task.row_groups))
    sample = CaptureSample(model, job.job_id, task.index, settings.batch_capture_rows) if job.capture else None
    lookup = feature_lookup(settings, model.version, job.event_time) if model.version.feature_views else None
    part, rejects, counts = batch.score_chunk(
        model, _source(job), job.input.format, chunk, job.passthrough, sample, lookup
    )
    bucket = settings.data_bucket
    captured = sample.encode(job.model, job.version, job.requested_at) if sample is not None else None
    if sample is not None and captured is not None:  # before the report: a chunk is done once all it writes is
        put_jsonl_gz(bucket, capture_key(job.model, job.job_id, task.index, job.requested_at), captured)
        counts = counts.model_copy(update={"captured": sample.rows})
    key = part_key(job.model, job.job_id, task.index)
    objects.put_bytes(bucket, key, part)
    rejected = None
    if rejects is not None:
        reject_key = rejects_key(job.model, job.job_id, task.index)
        objects.put_bytes(bucket, reject_key, rejects)
        rejected = PartRef(
            key=reject_key, rows=counts.rejected, sha256=objects.sha256_hex(rejects), size_bytes=len(rejects)
        )
    report = ChunkReport(
        counts=counts,
        part=PartRef(key=key, rows=counts.scored, sha256=objects.sha256_hex(part), size_bytes=len(part)),
        rejects=rejected,
        version=job.version,
        artifact_sha256=job.artifact_sha256,
        start=task.start,
        end=task.end,
        row_groups=list(task.row_groups),
    )
    objects.put_json(bucket, report_key(job.model, job.job_id, task.index), report.model_dump_json())
    return report


def _reports(settings: Settings, job: BatchJob) -> tuple[list[ChunkReport], list[int]]:
    found: list[ChunkReport] = []
    missing: list[int] = []
    for index in range(job.chunks_total):
        try:
            data = objects.get_object(settings.data_bucket, report_key(job.model, job.job_id, index))
        except NotFound:
            missing.append(index)
            continue
        report = ChunkReport.model_validate_json(data)
        if report.artifact_sha256 != job.artifact_sha256:  # written by another job's version: not this job's
            missing.append(index)
            continue
        found.append(report)
    return found, missing


def failed_chunks(settings: Settings, model: str, job_id: str) -> list[int]:
    """The chunks of the job with no report: what a resumed job scores (the others are done)."""
    return _reports(settings, _job(settings, model, job_id))[1]


def finish_job(settings: Settings, model: str, job_id: str, now: datetime | None = None) -> BatchJob:
    """Conclude the job from its chunks' reports; a job that already succeeded is returned as it is
    (a repeated finish rewrites neither its manifest nor its record)."""
    job = _job(settings, model, job_id)
    if job.status is JobStatus.SUCCEEDED:
        return job
    now = now or datetime.now(UTC)
    reports, missing = _reports(settings, job)
    rows = sum(r.counts.rows for r in reports)
    scored = sum(r.counts.scored for r in reports)
    rejected = sum(r.counts.rejected for r in reports)
    reasons: Counter[str] = Counter()
    for r in reports:
        reasons.update(r.counts.reasons)
    counted = job.model_copy(update={"chunks_done": len(reports), "rows": rows, "scored": scored, "rejected": rejected})
    if missing:
        shown = missing[:20]
        more = f" and {len(missing) - len(shown)} more" if len(missing) > len(shown) else ""
        message = f"chunk(s) {shown}{more} of {job.chunks_total} were not scored; resume the job to score only those"
        return _fail(settings, counted, "ChunksFailed", message, now=now)
    share = rejected / rows if rows else 0.0
    if share > job.reject_threshold:
        worst = ", ".join(f"{reason}: {count}" for reason, count in reasons.most_common(5))
        message = (
            f"{rejected} of {rows} rows ({share:.2%}) do not fit {job.model} v{job.version}'s input contract, "
            f"above the job's threshold of {job.reject_threshold:.2%} ({worst}); the rejects with each row's reason "
            f"are under {job.output_prefix}rejects/"
        )
        return _fail(settings, counted, "RejectShareExceeded", message, now=now)
    manifest = Manifest(
        job_id=job.job_id,
        model=job.model,
        version=job.version,
        artifact_sha256=job.artifact_sha256,
        input=job.input,
        requested_by=job.requested_by,
        started_at=job.started_at,
        finished_at=now,
        rows=rows,
        scored=scored,
        rejected=rejected,
        reasons=dict(sorted(reasons.items())),
        parts=[r.part for r in reports],
        rejects=[r.rejects for r in reports if r.rejects is not None],
        captured=sum(r.counts.captured for r in reports),
        captures=[
            capture_key(job.model, job.job_id, r.counts.chunk, job.requested_at) for r in reports if r.counts.captured
        ],
    )
    objects.put_json(settings.data_bucket, manifest_key(job.model, job.job_id), manifest.model_dump_json(indent=1))
    done = counted.model_copy(update={"status": JobStatus.SUCCEEDED, "finished_at": now, "error": "", "message": ""})
    summary = {"job_id": job.job_id, "status": "SUCCEEDED", "rows": rows, "scored": scored, "rejected": rejected}
    event = AuditEvent.of(_actor(job), FINISH_ACTION, model_target(job.model), version=job.version, after=summary)
    store.replace(settings.metadata_table, done, event)
    return done


def record_failure(settings: Settings, model: str, job_id: str, error: str, cause: str) -> BatchJob:
    """A workflow step failed after its retries: the job records the error and its cause (FAILED,
    audited), unless a step already concluded it (its own, more precise, reason stays)."""
    job = _job(settings, model, job_id)
    if job.status in (JobStatus.FAILED, JobStatus.SUCCEEDED):
        return job
    return _fail(settings, job, error or "BatchStepFailed", cause or "a batch step failed", now=None)


def run_in_process(settings: Settings, model: str, job_id: str) -> BatchJob:
    """The workflow's steps in order, in this process (plan, every chunk, finish), where no batch
    workflow is deployed: the local cloud, whose interpreter cannot run a Distributed Map."""
    try:
        chunk_tasks = plan_job(settings, model, job_id)
    except BatchInputInvalid:
        return _job(settings, model, job_id)
    models = job_models(settings)
    for task in chunk_tasks:
        try:
            run_chunk(settings, task, models)
        except Exception as exc:  # a chunk that failed is named by finish, as on AWS
            logger.warning("batch chunk failed", extra={"job_id": job_id, "chunk": task.index, "error": str(exc)})
    return finish_job(settings, model, job_id)


def _fail(settings: Settings, job: BatchJob, error: str, message: str, *, now: datetime | None) -> BatchJob:
    failed = job.model_copy(
        update={
            "status": JobStatus.FAILED,
            "finished_at": now or datetime.now(UTC),
            "error": error,
            "message": message[:4096],
        }
    )
    summary = {"job_id": job.job_id, "status": "FAILED", "error": error, "message": failed.message}
    event = AuditEvent.of(_actor(job), FINISH_ACTION, model_target(job.model), version=job.version, after=summary)
    store.replace(settings.metadata_table, failed, event)
    return failed


# -- records: lineage and explain ------------------------------------------------------------------


def jobs_of(settings: Settings, model: str, version: int | None = None) -> list[BatchJob]:
    """The model's batch jobs, newest first (only those that scored with `version` when given):
    what `stepwise jobs` lists and what a version's lineage names."""
    jobs = store.list_jobs(settings.metadata_table, model)
    return [j for j in jobs if version is None or j.version == version]


def explain_row(settings: Settings, model: str, job_id: str, row: str, column: str | None = None) -> RowExplanation:
    """The scored row(s) of a job whose pass-through `column` (the job's first pass-through column
    unless named) equals `row` (compared as text): pass-through values, prediction and
    probabilities from the part (its sha256 verified against the manifest), the feature values
    read again from the chunk of the pinned input that the chunk's report locates, and the version
    and artifact sha256 that scored them."""
    job = _job(settings, model, job_id)
    if not job.passthrough:
        raise InvalidInput(f"job {job_id} passed no column through: its rows have no id to name them by")
    column = column or job.passthrough[0]
    if column not in job.passthrough:
        raise InvalidInput(f"job {job_id} passed through {job.passthrough}, not {column!r}")
    if job.status is not JobStatus.SUCCEEDED:
        raise Conflict(f"job {job_id} is {job.status.value}: it has no manifest to explain from")
    manifest = Manifest.model_validate_json(
        objects.get_object(settings.data_bucket, manifest_key(job.model, job.job_id))
    )
    version = registry_dal.get_version(settings.registry_table, job.model, job.version)
    rows: list[ExplainedRow] = []
    for part in manifest.parts:
        data = objects.get_verified(settings.data_bucket, part.key, part.sha256, what=f"part {part.key}")
        table = pq.read_table(io.BytesIO(data))
        found = table.filter(pc.equal(table.column(column).cast(pa.string()), row))
        if not found.num_rows:
            continue
        chunk = int(part.key.rsplit("part-", 1)[1].split(".", 1)[0])
        inputs = _input_rows(settings, job, version, chunk, column, row) if version is not None else []
        if len(inputs) != found.num_rows:  # the id is not unique among the chunk's rows: do not guess
            inputs = [{} for _ in range(found.num_rows)]
        for scored, given in zip(found.to_pylist(), inputs, strict=True):
            rows.append(
                ExplainedRow(
                    chunk=chunk,
                    passthrough={p: scored[p] for p in job.passthrough},
                    inputs=given,
                    prediction=scored["prediction"],
                    probabilities=scored.get("probabilities"),
                    model_version=scored["model_version"],
                    part=part.key,
                    part_sha256=part.sha256,
                )
            )
    if not rows:
        raise NotFound(f"job {job_id} scored no row whose {column!r} is {row!r}")
    return RowExplanation(
        job_id=job.job_id,
        model=job.model,
        version=job.version,
        artifact_sha256=job.artifact_sha256,
        input=job.input,
        column=column,
        row=row,
        rows=rows,
    )


def _input_rows(
    settings: Settings, job: BatchJob, version: ModelVersion, chunk: int, column: str, row: str
) -> list[dict[str, Any]]:
    """The feature values of the chunk's scored input rows whose `column` is `row`, in input order
    (rejected rows, listed in the chunk's rejects part, left out)."""
    try:
        report = ChunkReport.model_validate_json(
            objects.get_object(settings.data_bucket, report_key(job.model, job.job_id, chunk))
        )
    except NotFound:
        return []
    if not (report.row_groups or report.end):  # written before reports located their chunk
        return []
    located = Chunk(index=chunk, start=report.start, end=report.end, row_groups=tuple(report.row_groups))
    rejected: set[int] = set()
    if report.rejects is not None:
        rejects = pq.read_table(io.BytesIO(objects.get_object(settings.data_bucket, report.rejects.key)))
        rejected = set(rejects.column("row").to_pylist())
    names = [f.name for f in version.features]
    out: list[dict[str, Any]] = []
    for piece in batch.input_rows(_source(job), job.input.format, located, version.features, job.passthrough):
        if column not in piece.table.column_names:
            continue
        mask = pc.fill_null(pc.equal(piece.table.column(column).cast(pa.string()), row), False)
        hits = piece.table.filter(mask)
        indices = piece.rows[np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)]
        for index, values in zip(indices.tolist(), hits.to_pylist(), strict=True):
            if index not in rejected:
                out.append({n: values.get(n) for n in names})
    return out
