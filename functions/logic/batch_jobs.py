"""Batch jobs: the API's side. `request_batch` resolves the model version once (production unless the
request names a version or alias) with its artifact's sha256, pins the input object's version,
checks the input can be scored (format, the feature and pass-through columns, read from the
Parquet footer or CSV header without pyarrow), stores the job with its audit event and
starts the batch workflow, named after the job (a repeated start is a no-op). Where no workflow is
deployed (the local cloud, whose Step Functions interpreter cannot run a Distributed Map), the same
three steps run in-process, in order, before the reply.

Refusals, each before anything is written: unknown model or version 404; no production (or
candidate) version, or a retired/rejected version 409; an input outside the data bucket's allowed
prefixes 403; an unknown dataset version or missing object 404; an unreadable input or one lacking
columns 400. Idempotency: a request with a `client_token` is one job per (model, caller, token); a
repeat with the same body answers that job (`joined`), with another body 409.

Imports no pyarrow, numpy or ONNX Runtime: the API function (base layer only) runs this module
(functions/logic/batch_header.py reads the footer or header); the plan step checks the same again
with pyarrow's reader on the batch function.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

from functions.dal import artifacts as objects
from functions.dal import batch_jobs as store
from functions.dal import datasets as datasets_dal
from functions.dal import registry as registry_dal
from functions.dal import workflow
from functions.logic import batch_header
from functions.models.audit import Actor, AuditEvent, model_target
from functions.models.batch import (
    PREDICTIONS_PREFIX,
    BatchInputInvalid,
    BatchJob,
    BatchRequest,
    DatasetInput,
    InputRef,
    JobStatus,
)
from functions.models.datasets import FileFormat
from functions.models.errors import Conflict, Forbidden, NotFound, StepwiseError, StoreUnavailable
from functions.models.registry import ModelVersion, VersionStatus
from functions.models.settings import Settings
from functions.observability import logger

START_ACTION = "batch.start"
FINISH_ACTION = "batch.finish"
NOT_SCORED = (VersionStatus.RETIRED, VersionStatus.REJECTED)


def allowed_prefixes(settings: Settings) -> list[str]:
    return [p.strip() for p in settings.batch_input_prefixes.split(",") if p.strip()]


def resolve_version(settings: Settings, model: str, request: BatchRequest) -> ModelVersion:
    """The version the job scores with, resolved once."""
    record = registry_dal.get_model(settings.registry_table, model)
    if record is None:
        raise NotFound(f"no model named {model!r}")
    if request.model_version is not None:
        number: int | None = request.model_version
    elif request.alias == "candidate":
        number = record.candidate_version
        if number is None:
            raise Conflict(f"{model} has no candidate version; name a version with model_version")
    else:
        number = record.production_version
        if number is None:
            raise Conflict(f"{model} has no production version; name a version with model_version")
    assert number is not None
    version = registry_dal.get_version(settings.registry_table, model, number)
    if version is None:
        raise NotFound(f"{model} has no version {number}")
    if version.status in NOT_SCORED:
        raise Conflict(f"{model} v{number} is {version.status.value}: it scores nothing")
    if "onnx" not in version.artifacts:
        raise Conflict(f"{model} v{number} has no ONNX artifact")
    return version


PARQUET_MAGIC = b"PAR1"
SUFFIXES: dict[str, FileFormat] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


def detect_format(name: str, head: bytes) -> FileFormat | None:
    """The input's format from its name, else Parquet's magic bytes (validation's rule, without pyarrow)."""
    lowered = name.lower()
    for suffix, fmt in SUFFIXES.items():
        if lowered.endswith(suffix):
            return fmt
    return "parquet" if head.startswith(PARQUET_MAGIC) else None


def resolve_input(settings: Settings, request: BatchRequest) -> InputRef:
    """The exact object the job reads: a dataset version's validated object, or an object under the
    allowed prefixes of the data bucket, its current version pinned."""
    given = request.input
    if isinstance(given, DatasetInput):
        record = datasets_dal.get_version(settings.metadata_table, given.dataset, given.version)
        info = objects.head_object(record.bucket, record.key, record.version_id)
        fmt = record.format or detect_format(record.key, b"")
        if fmt is None:
            raise BatchInputInvalid(f"{given.dataset}@{given.version}: unknown file format")
        return InputRef(
            bucket=record.bucket,
            key=record.key,
            version_id=record.version_id,
            size_bytes=info.size,
            format=fmt,
            dataset=given.dataset,
            dataset_version=given.version,
            sha256=record.sha256,
        )
    bucket, key = objects.split_uri(given.uri)
    prefixes = allowed_prefixes(settings)
    inside = bucket == settings.data_bucket and any(key.startswith(p) for p in prefixes)
    if not inside or ".." in key.split("/") or key.startswith(PREDICTIONS_PREFIX):
        where = ", ".join(f"s3://{settings.data_bucket}/{p}" for p in prefixes)
        raise Forbidden(f"{given.uri} is outside what batch scoring may read ({where})")
    info = objects.head_object(bucket, key)
    if info.size == 0:
        raise BatchInputInvalid(f"{given.uri}: empty file (0 bytes)")
    source = objects.S3RangeSource(bucket, key, info.version_id, info.size)
    detected = detect_format(key, source.read(0, min(4, info.size)))
    if detected is None:
        raise BatchInputInvalid(f"{given.uri}: unsupported format: use .parquet, .csv or .jsonl")
    return InputRef(bucket=bucket, key=key, version_id=info.version_id, size_bytes=info.size, format=detected)


def event_time_column(version: ModelVersion, requested: str | None) -> str:
    """The input column a feature-view version's rows are looked up as of: the request's, else the
    version's training event-time column, else its first view's timestamp column ("" for a version
    that reads no view; naming one for it is refused)."""
    if not version.feature_views:
        if requested:
            raise BatchInputInvalid(
                f"event_time: {version.model} v{version.version} reads no feature view; there is nothing to look up"
            )
        return ""
    return requested or version.event_time or version.feature_views[0].timestamp_column


def lookup_columns(version: ModelVersion, event_time: str) -> list[str]:
    """The input columns a feature-view version's lookups read: each view's entity keys, the event time."""
    keys = [k for use in version.feature_views for k in use.entity_keys]
    return list(dict.fromkeys([*keys, event_time])) if version.feature_views else []


def check_input(ref: InputRef, version: ModelVersion, passthrough: list[str], event_time: str = "") -> None:
    """BatchInputInvalid unless the input reads and carries the columns the job needs (Parquet
    footer, CSV header, read without pyarrow; JSON Lines rows are checked as they are scored): the
    features (a feature view's `view:feature` columns are looked up, not read) and, for a version
    trained through feature views, each view's entity keys and the event-time column."""
    if ref.size_bytes == 0:
        raise BatchInputInvalid(f"s3://{ref.bucket}/{ref.key}: empty file (0 bytes)")
    source = objects.S3RangeSource(ref.bucket, ref.key, ref.version_id, ref.size_bytes)
    columns = batch_header.input_columns(source, ref.format)
    if columns is None:
        return
    what = f"{version.model} v{version.version}"
    batch_header.check_columns(columns, version.features, passthrough, what=what)
    lacking = [c for c in lookup_columns(version, event_time) if c not in columns]
    if lacking:
        details = [
            {"field": f"columns.{c}", "reason": f"{c!r} (a feature view lookup column of {what}) is not in the input"}
            for c in lacking
        ]
        raise BatchInputInvalid(f"the input does not fit {what}: " + "; ".join(d["reason"] for d in details), details)


def job_id_for(model: str, who: str, token: str | None) -> str:
    if token is None:
        return uuid.uuid4().hex[:20]
    return hashlib.sha256(f"{model}\n{who}\n{token}".encode()).hexdigest()[:20]


def request_batch(
    settings: Settings, model: str, request: BatchRequest, actor: Actor, now: datetime | None = None
) -> BatchJob:
    version = resolve_version(settings, model, request)
    ref = resolve_input(settings, request)
    event_time = event_time_column(version, request.event_time)
    check_input(ref, version, list(request.passthrough), event_time)
    now = now or datetime.now(UTC)
    job_id = job_id_for(model, actor.identity, request.client_token)
    job = BatchJob(
        job_id=job_id,
        model=model,
        version=version.version,
        artifact_sha256=version.artifacts["onnx"].sha256,
        status=JobStatus.PENDING,
        input=ref,
        passthrough=list(request.passthrough),
        capture=request.capture,
        event_time=event_time,
        reject_threshold=request.reject_threshold,
        client_token=request.client_token,
        request_sha256=hashlib.sha256(request.model_dump_json().encode()).hexdigest(),
        requested_by=actor.identity,
        requested_at=now,
        output_prefix=f"s3://{settings.data_bucket}/{PREDICTIONS_PREFIX}{model}/{job_id}/",
    )
    event = AuditEvent.of(
        actor,
        START_ACTION,
        model_target(model),
        version=version.version,
        after={
            "job_id": job_id,
            "artifact_sha256": job.artifact_sha256,
            "input": f"s3://{ref.bucket}/{ref.key}",
            "input_version_id": ref.version_id,
        },
    )
    joined = False
    try:
        store.create(settings.metadata_table, job, event)
    except Conflict:
        existing = store.get(settings.metadata_table, model, job_id)
        if existing is None or existing.request_sha256 != job.request_sha256:
            raise Conflict(
                f"client token {request.client_token!r} was used for another batch request; give this one its own"
            ) from None
        if existing.status is JobStatus.FAILED:
            return _resume(settings, existing, actor)
        if existing.execution_arn:
            return existing.model_copy(update={"joined": True})
        # stored, but its workflow did not start (a lost reply, a failed start): start it now
        joined = True
        job = existing.model_copy(update={"status": JobStatus.PENDING, "error": "", "message": ""})
    return _start(settings, job).model_copy(update={"joined": joined})


def _resume(settings: Settings, failed: BatchJob, actor: Actor) -> BatchJob:
    """A repeated request for a FAILED job resumes it: a new execution plans only the chunks with no
    report (the scored ones keep their parts) and finishes the job again (audited)."""
    resumes = failed.resumes + 1
    job = failed.model_copy(
        update={"status": JobStatus.PENDING, "error": "", "message": "", "finished_at": None, "resumes": resumes}
    )
    after = {"job_id": job.job_id, "resume": resumes, "after_error": failed.error}
    event = AuditEvent.of(actor, START_ACTION, model_target(job.model), version=job.version, after=after)
    store.replace(settings.metadata_table, job, event)
    return _start(settings, job).model_copy(update={"joined": True})


def execution_name(job: BatchJob) -> str:
    """The job's workflow execution: one per start, so a resumed job gets its own."""
    return job.job_id if not job.resumes else f"{job.job_id}-r{job.resumes}"


def _start(settings: Settings, job: BatchJob) -> BatchJob:
    if not settings.batch_state_machine_arn:
        from functions.logic import batch_run

        return batch_run.run_in_process(settings, job.model, job.job_id)
    payload = {"job_id": job.job_id, "model": job.model}
    try:
        arn, _ = workflow.start_execution(settings.batch_state_machine_arn, execution_name(job), payload)
    except StoreUnavailable as exc:
        failure = {"status": JobStatus.FAILED, "error": type(exc).__name__, "message": exc.message}
        failed = job.model_copy(update=failure)
        try:
            store.replace(settings.metadata_table, failed)
        except StepwiseError:
            logger.warning("could not record the unstarted batch job as failed", extra={"job_id": job.job_id})
        raise
    started = job.model_copy(update={"execution_arn": arn})
    store.replace(settings.metadata_table, started)
    return started


def get_job(settings: Settings, model: str, job_id: str) -> BatchJob:
    if registry_dal.get_model(settings.registry_table, model) is None:
        raise NotFound(f"no model named {model!r}")
    job = store.get(settings.metadata_table, model, job_id)
    if job is None:
        raise NotFound(f"{model} has no batch job {job_id}")
    return job


def list_jobs(settings: Settings, model: str) -> list[BatchJob]:
    """The model's batch jobs, newest first (what `stepwise jobs` lists)."""
    if registry_dal.get_model(settings.registry_table, model) is None:
        raise NotFound(f"no model named {model!r}")
    return store.list_jobs(settings.metadata_table, model)
