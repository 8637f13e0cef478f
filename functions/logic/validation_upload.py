"""The ingestion use case: one uploaded object under raw/<dataset>/ becomes a dataset version or
is quarantined with its report.

    raw/<dataset>/<path>  --validate-->  passed: copied to validated/<dataset>/<path>, version recorded
                                         failed: moved to quarantine/<dataset>/<path> with
                                                 quarantine/<dataset>/<path>.report.json beside it
The report is always written to the artifacts bucket at `report_key(dataset, object version)`,
which `stepwise upload` polls for. Exactly one version per upload: the handler's idempotency
stops duplicate deliveries, and the UPLOAD item (dal/datasets.py) stops any that get through.

Files bigger than `validate_chunk_bytes` are validated in chunks: one after the other in this
function when no validation state machine is configured (the local cloud), or, on AWS, handed to
the chunked-validation state machine (a Distributed Map: `plan_chunks_step` ->
`check_chunk_step` per chunk -> `finish_step`), which ends in the same `conclude`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from functions.dal import artifacts, datasets, materializations
from functions.dal.artifacts import s3_uri, sha256_hex
from functions.logic.lifecycle_trigger import start_lifecycle
from functions.logic.validation import finish, partial_from_doc, partial_to_doc, unreadable
from functions.logic.validation_files import (
    ByteSource,
    BytesSource,
    Chunk,
    Limits,
    Unreadable,
    check_chunk,
    detect_format,
    plan_chunks,
    validate_source,
)
from functions.models.audit import Actor
from functions.models.datasets import (
    ContractRecord,
    DatasetVersion,
    UploadOutcome,
    UploadRef,
    ValidationReport,
    report_key,
)
from functions.models.errors import ChunkCheckFailed, NotFound, StepwiseError
from functions.models.registry import NAME_PATTERN
from functions.models.settings import Settings
from functions.observability import logger

RAW = "raw/"
VALIDATED = "validated/"
QUARANTINE = "quarantine/"
WORK = "work/validation/"  # artifacts bucket: plans and partials of chunked validations
UNKNOWN_DATASET = "_unknown"


def split_key(key: str) -> tuple[str, str]:
    """raw/<dataset>/<path> -> (dataset, path); ("", path) when the key names no dataset."""
    rest = key[len(RAW) :] if key.startswith(RAW) else key
    dataset, _, path = rest.partition("/")
    if not path or not re.match(NAME_PATTERN, dataset):
        return "", rest
    return dataset, path


@dataclass(frozen=True)
class Upload:
    """One upload, resolved: the object version actually stored, its dataset and contract."""

    ref: UploadRef
    dataset: str
    path: str
    version_id: str
    size: int
    object_version: str  # the S3 version id, or etag-<etag> in an unversioned bucket
    contract: ContractRecord | None

    @property
    def uri(self) -> str:
        return s3_uri(self.ref.bucket, self.ref.key) + (f"?versionId={self.version_id}" if self.version_id else "")

    @property
    def report_name(self) -> str:
        return self.dataset or UNKNOWN_DATASET

    @property
    def upload_id(self) -> str:
        return datasets.upload_id(self.ref.bucket, self.ref.key, self.object_version)


def resolve(ref: UploadRef, settings: Settings, contract_version: int | None = None) -> Upload | UploadOutcome:
    """The upload as stored now, or a `skipped` outcome when it is gone or was replaced."""
    dataset, path = split_key(ref.key)
    try:
        info = artifacts.head_object(ref.bucket, ref.key, ref.version_id)
    except NotFound:
        # moved or replaced since the event was sent (a late duplicate): nothing left to judge
        return UploadOutcome(dataset=dataset, key=ref.key, verdict="skipped", reason="object no longer exists")
    if not ref.version_id and ref.etag and info.etag != ref.etag:
        return UploadOutcome(dataset=dataset, key=ref.key, verdict="skipped", reason="object was replaced since")
    contract = None
    if dataset:
        try:
            contract = datasets.get_contract(settings.metadata_table, dataset, contract_version)
        except NotFound:
            contract = None
    return Upload(
        ref=ref,
        dataset=dataset,
        path=path,
        version_id=info.version_id,
        size=info.size,
        object_version=info.version_id or ref.version_id or f"etag-{info.etag}",
        contract=contract,
    )


def _limits(settings: Settings) -> Limits:
    return Limits(max_bytes=settings.validate_max_bytes, chunk_bytes=settings.validate_chunk_bytes)


def _no_contract(upload: Upload) -> ValidationReport:
    reason = f"no contract for dataset {upload.dataset!r}" if upload.dataset else "key is not raw/<dataset>/<file>"
    return unreadable(reason, dataset=upload.report_name, source=upload.uri, size_bytes=upload.size, rule="contract")


def process_upload(ref: UploadRef, settings: Settings, actor: Actor, now: datetime | None = None) -> UploadOutcome:
    """Validate one upload here and conclude (or hand a big one to the chunked state machine)."""
    upload = resolve(ref, settings)
    if isinstance(upload, UploadOutcome):
        return upload
    if upload.contract is None:
        return conclude(upload, _no_contract(upload), "", settings, actor, now)
    limits = _limits(settings)
    if limits.chunk_bytes < upload.size <= limits.max_bytes and settings.validate_state_machine_arn:
        execution = datasets.start_chunked_validation(
            settings.validate_state_machine_arn,
            upload.upload_id,
            {"upload": ref.model_dump(mode="json"), "contract_version": upload.contract.version},
        )
        logger.info("chunked validation started", extra={"key": ref.key, "execution": execution})
        return UploadOutcome(
            dataset=upload.dataset, key=ref.key, verdict="delegated", reason=f"validating in chunks: {execution}"
        )
    source: ByteSource
    ranged: artifacts.S3RangeSource | None = None
    sha = ""
    if upload.size <= limits.chunk_bytes:
        data = artifacts.read_object(ref.bucket, ref.key, upload.version_id)
        sha = sha256_hex(data)
        source = BytesSource(data)
    else:
        ranged = artifacts.S3RangeSource(ref.bucket, ref.key, upload.version_id, upload.size)
        source = ranged
    report = validate_source(
        source,
        upload.path,
        upload.contract.contract,
        dataset=upload.dataset,
        contract_version=upload.contract.version,
        uri=upload.uri,
        limits=limits,
    )
    if report.passed and ranged is not None:
        sha = artifacts.sha256_of(ranged)
    return conclude(upload, report, sha, settings, actor, now)


def conclude(
    upload: Upload,
    report: ValidationReport,
    sha: str,
    settings: Settings,
    actor: Actor,
    now: datetime | None = None,
) -> UploadOutcome:
    """Write the report; then register the version (passed) or quarantine the upload."""
    now = now or datetime.now(UTC)
    ref = upload.ref
    body = report.model_dump_json(indent=2)
    rkey = report_key(upload.report_name, upload.object_version)
    artifacts.put_json(settings.artifacts_bucket, rkey, body)
    report_uri = s3_uri(settings.artifacts_bucket, rkey)

    if not report.passed or upload.contract is None:
        moved = _quarantine(upload, body)
        logger.warning(
            "upload quarantined",
            extra={
                "dataset": upload.dataset,
                "key": ref.key,
                "verdict": report.verdict,
                "failed_rules": report.failed_rules,
            },
        )
        return UploadOutcome(
            dataset=upload.report_name,
            key=ref.key,
            verdict=report.verdict if report.verdict != "passed" else "failed",
            reason=report.reason,
            report_uri=report_uri,
            moved_to=moved,
        )

    dest = f"{VALIDATED}{upload.dataset}/{upload.path}"
    dest_version = artifacts.copy_object(ref.bucket, ref.key, upload.version_id, dest, upload.size)
    contract = upload.contract.contract
    draft = DatasetVersion(
        dataset=upload.dataset,
        version=1,  # the number is assigned by create_version
        key=dest,
        bucket=ref.bucket,
        version_id=dest_version,
        source_key=ref.key,
        source_version_id=upload.version_id,
        sha256=sha,
        size_bytes=upload.size,
        format=report.format or "parquet",
        rows=report.rows,
        schema_fingerprint=report.schema_fingerprint,
        contract_version=upload.contract.version,
        report_uri=report_uri,
        created_at=now,
        uploaded_by=ref.uploaded_by,
        training_spec=contract.training_spec,
    )
    record = datasets.create_version(settings.metadata_table, draft, upload.upload_id, actor)
    _build_layouts(settings, record)
    _announce(settings, record, actor)
    training = record.training_status
    if contract.training_spec and record.training_status == "none":
        training = start_lifecycle(record, contract.training_spec, ref.uploaded_by or actor.identity).status
    logger.info(
        "dataset version recorded",
        extra={"dataset": upload.dataset, "version": record.version, "rows": record.rows, "sha256": record.sha256},
    )
    return UploadOutcome(
        dataset=upload.dataset,
        key=ref.key,
        verdict="passed",
        version=record.version,
        report_uri=report_uri,
        moved_to=dest,
        training_status=training,
    )


def _build_layouts(settings: Settings, record: DatasetVersion) -> None:
    """The offline layouts of the feature views over this dataset, built once now, their cost
    recorded on the version. Best effort: the version stands whatever happens here, and a layout
    not built now is built on first use by training."""
    from functions.logic.feature_training import build_source_layouts

    try:
        seconds = build_source_layouts(settings, record.dataset, record.version, record.size_bytes)
        if seconds is not None:
            datasets.set_layout_seconds(settings.metadata_table, record.dataset, record.version, seconds)
    except StepwiseError as exc:
        logger.warning(
            "offline layouts not built at validation; training builds them on first use",
            extra={"dataset": record.dataset, "version": record.version, "error": type(exc).__name__},
        )
        return
    if seconds is not None:
        logger.info(
            "offline layouts built", extra={"dataset": record.dataset, "version": record.version, "seconds": seconds}
        )


def _announce(settings: Settings, record: DatasetVersion, actor: Actor) -> None:
    """Tell the materialization function a new version is validated: every feature view over the
    dataset materializes it (functions/logic/materialize_jobs.py on_validated). Asynchronous and
    best effort: the version stands whatever happens here, and `stepwise materialize` runs it later."""
    if not settings.materialize_function:
        return
    event = {"step": "validated", "dataset": record.dataset, "version": record.version, "by": actor.identity}
    try:
        materializations.invoke_worker(settings.materialize_function, event)
    except StepwiseError as exc:
        logger.warning(
            "materialization not announced; run `stepwise materialize` for the views over this dataset",
            extra={"dataset": record.dataset, "version": record.version, "error": type(exc).__name__},
        )


def _quarantine(upload: Upload, report_body: str) -> str:
    ref = upload.ref
    dest = f"{QUARANTINE}{upload.report_name}/{upload.path}"
    artifacts.copy_object(ref.bucket, ref.key, upload.version_id, dest, upload.size)
    artifacts.put_json(ref.bucket, f"{dest}.report.json", report_body)
    artifacts.delete_object(ref.bucket, ref.key, upload.version_id)
    return dest


# -- chunked validation on AWS: the steps of the Distributed Map -------------------------------------


def plan_chunks_step(event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """{"upload", "contract_version"} -> the same plus "format" and "chunks" (the Map's items).
    A file that cannot be planned (unreadable footer, unknown format) gets no chunks and a reason."""
    ref = UploadRef.model_validate(event["upload"])
    out: dict[str, Any] = {"upload": event["upload"], "contract_version": event["contract_version"]}
    out.update(chunks=[], reason="", format=None)
    upload = resolve(ref, settings, int(event["contract_version"]))
    if isinstance(upload, UploadOutcome) or upload.contract is None:
        out["reason"] = "gone" if isinstance(upload, UploadOutcome) else "no contract"
        return out
    source = artifacts.S3RangeSource(ref.bucket, ref.key, upload.version_id, upload.size)
    fmt = detect_format(upload.path, source.read(0, min(4, upload.size)))
    if fmt is None:
        out["reason"] = "unsupported format: use .parquet, .csv or .jsonl"
        return out
    try:
        chunks = plan_chunks(source, fmt, settings.validate_chunk_bytes)
    except Unreadable as exc:
        out["reason"] = str(exc)
        return out
    out["format"] = fmt
    out["chunks"] = [
        {"index": c.index, "start": c.start, "end": c.end, "row_groups": list(c.row_groups)} for c in chunks
    ]
    return out


def _work_prefix(upload: Upload) -> str:
    return f"{WORK}{upload.upload_id}/"


def check_chunk_step(event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """One Map item {"upload", "contract_version", "format", "chunk"} -> where its partial is."""
    ref = UploadRef.model_validate(event["upload"])
    upload = resolve(ref, settings, int(event["contract_version"]))
    if isinstance(upload, UploadOutcome) or upload.contract is None:
        return {"index": event["chunk"]["index"], "error": "upload or contract gone"}
    item = event["chunk"]
    chunk = Chunk(index=item["index"], start=item["start"], end=item["end"], row_groups=tuple(item["row_groups"]))
    source = artifacts.S3RangeSource(ref.bucket, ref.key, upload.version_id, upload.size)
    try:
        part = check_chunk(source, event["format"], chunk, upload.contract.contract)
    except Unreadable as exc:
        return {"index": chunk.index, "error": str(exc)}
    doc, keys = partial_to_doc(part)
    base = f"{_work_prefix(upload)}{chunk.index:06d}"
    artifacts.put_json(settings.artifacts_bucket, f"{base}.json", json.dumps(doc))
    if keys is not None:
        artifacts.put_bytes(settings.artifacts_bucket, f"{base}.keys.arrow", keys)
    return {"index": chunk.index, "partial": f"{base}.json", "keys": f"{base}.keys.arrow" if keys else ""}


def finish_step(event: dict[str, Any], settings: Settings, actor: Actor) -> dict[str, Any]:
    """{"upload", "contract_version", "format", "chunks", "reason", "results"} -> the outcome."""
    ref = UploadRef.model_validate(event["upload"])
    upload = resolve(ref, settings, int(event["contract_version"]))
    if isinstance(upload, UploadOutcome):
        return upload.model_dump(mode="json")
    if upload.contract is None:
        return conclude(upload, _no_contract(upload), "", settings, actor).model_dump(mode="json")
    results = sorted(event.get("results") or [], key=lambda r: r["index"])
    failures = [r for r in results if r.get("failure")]
    if failures:  # a chunk's task failed (not the file): the upload is not judged
        first = failures[0]
        raise ChunkCheckFailed(
            f"{len(failures)} of {len(results)} chunks could not be checked; chunk {first['index']}: "
            f"{_error_text(first['failure'])}"
        )
    errors = [r["error"] for r in results if r.get("error")]
    reason = event.get("reason") or (errors[0] if errors else "")
    common = {"dataset": upload.dataset, "contract_version": upload.contract.version, "source": upload.uri}
    if reason:
        report = unreadable(reason, size_bytes=upload.size, **common)  # type: ignore[arg-type]
        return conclude(upload, report, "", settings, actor).model_dump(mode="json")
    partials = []
    for r in results:
        doc = json.loads(artifacts.read_object(settings.artifacts_bucket, r["partial"]))
        keys = artifacts.read_object(settings.artifacts_bucket, r["keys"]) if r.get("keys") else None
        partials.append(partial_from_doc(doc, keys))
    report = finish(
        partials,
        upload.contract.contract,
        fmt=event.get("format"),
        size_bytes=upload.size,
        **common,  # type: ignore[arg-type]
    )
    sha = ""
    if report.passed:
        sha = artifacts.sha256_of(artifacts.S3RangeSource(ref.bucket, ref.key, upload.version_id, upload.size))
    return conclude(upload, report, sha, settings, actor).model_dump(mode="json")


MAX_CAUSE = 1_000


def _error_text(error: dict[str, Any]) -> str:
    """`Name: cause` of a Step Functions error ({"Error", "Cause"})."""
    name = str(error.get("Error") or "UnknownError")
    cause = str(error.get("Cause") or "")[:MAX_CAUSE]
    return f"{name}: {cause}" if cause else name


def fail_step(event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """From the state machine's Catch: {"failed_step", "upload", "contract_version", "error"}.

    A step failed after its retries, so the upload was not judged: it stays under raw/ (nothing is
    moved, quarantined or versioned) and its report, at the key `stepwise upload` polls, says
    verdict "error" with the step, the error's name and its cause. Reads nothing, so it still
    records when the stores the step needed are failing."""
    ref = UploadRef.model_validate(event["upload"])
    dataset, _ = split_key(ref.key)
    object_version = ref.version_id or f"etag-{ref.etag}"
    source = s3_uri(ref.bucket, ref.key) + (f"?versionId={ref.version_id}" if ref.version_id else "")
    step = str(event.get("failed_step") or "unknown")
    report = ValidationReport(
        dataset=dataset or UNKNOWN_DATASET,
        contract_version=int(event.get("contract_version") or 0),
        source=source,
        verdict="error",
        reason=f"chunked validation step {step!r} failed: {_error_text(event.get('error') or {})}",
        size_bytes=ref.size,
        chunks=0,
    )
    key = report_key(report.dataset, object_version)
    artifacts.put_json(settings.artifacts_bucket, key, report.model_dump_json(indent=2))
    logger.error("chunked validation failed", extra={"key": ref.key, "step": step, "error": event.get("error")})
    return {"report_uri": s3_uri(settings.artifacts_bucket, key), "verdict": "error"}
