"""The ingestion use case: one uploaded object under raw/<dataset>/ becomes a dataset version or
is quarantined with its report.

    raw/<dataset>/<path>  --validate-->  passed: copied to validated/<dataset>/<path>, version recorded
                                         failed: moved to quarantine/<dataset>/<path> with
                                                 quarantine/<dataset>/<path>.report.json beside it
The report is always written to the artifacts bucket at `report_key(dataset, object version)`,
which `stepwise upload` polls for. Exactly one version per upload: the handler's idempotency
stops duplicate deliveries, and the UPLOAD item (dal/datasets.py) stops any that get through.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from functions.dal import datasets
from functions.dal.artifacts import s3_uri, sha256_hex
from functions.logic.lifecycle_trigger import start_lifecycle
from functions.logic.validation import unreadable
from functions.logic.validation_files import ByteSource, BytesSource, Limits, validate_source
from functions.models.audit import Actor
from functions.models.datasets import DatasetVersion, UploadOutcome, UploadRef, report_key
from functions.models.errors import NotFound
from functions.models.registry import NAME_PATTERN
from functions.models.settings import Settings
from functions.observability import logger

RAW = "raw/"
VALIDATED = "validated/"
QUARANTINE = "quarantine/"
UNKNOWN_DATASET = "_unknown"


def split_key(key: str) -> tuple[str, str]:
    """raw/<dataset>/<path> -> (dataset, path); ("", path) when the key names no dataset."""
    rest = key[len(RAW) :] if key.startswith(RAW) else key
    dataset, _, path = rest.partition("/")
    if not path or not re.match(NAME_PATTERN, dataset):
        return "", rest
    return dataset, path


def process_upload(ref: UploadRef, settings: Settings, actor: Actor, now: datetime | None = None) -> UploadOutcome:
    now = now or datetime.now(UTC)
    dataset, path = split_key(ref.key)
    try:
        info = datasets.head_object(ref.bucket, ref.key, ref.version_id)
    except NotFound:
        # moved or replaced since the event was sent (a late duplicate): nothing left to judge
        return UploadOutcome(dataset=dataset, key=ref.key, verdict="skipped", reason="object no longer exists")
    if not ref.version_id and ref.etag and info.etag != ref.etag:
        return UploadOutcome(dataset=dataset, key=ref.key, verdict="skipped", reason="object was replaced since")
    object_version = info.version_id or ref.version_id or f"etag-{info.etag}"
    uri = s3_uri(ref.bucket, ref.key) + (f"?versionId={info.version_id}" if info.version_id else "")
    name_for_reports = dataset or UNKNOWN_DATASET

    contract_record = None
    if dataset:
        try:
            contract_record = datasets.get_contract(settings.metadata_table, dataset)
        except NotFound:
            contract_record = None
    sha = ""
    if contract_record is None:
        reason = f"no contract for dataset {dataset!r}" if dataset else "key is not raw/<dataset>/<file>"
        report = unreadable(reason, dataset=name_for_reports, source=uri, size_bytes=info.size, rule="contract")
    else:
        source: ByteSource
        ranged: datasets.S3RangeSource | None = None
        limits = Limits(max_bytes=settings.validate_max_bytes, chunk_bytes=settings.validate_chunk_bytes)
        if info.size <= limits.chunk_bytes:
            data = datasets.read_object(ref.bucket, ref.key, info.version_id)
            sha = sha256_hex(data)
            source = BytesSource(data)
        else:
            ranged = datasets.S3RangeSource(ref.bucket, ref.key, info.version_id, info.size)
            source = ranged
        report = validate_source(
            source,
            path,
            contract_record.contract,
            dataset=dataset,
            contract_version=contract_record.version,
            uri=uri,
            limits=limits,
        )
        if report.passed and ranged is not None:
            sha = datasets.sha256_of(ranged)

    body = report.model_dump_json(indent=2)
    rkey = report_key(name_for_reports, object_version)
    datasets.put_json(settings.artifacts_bucket, rkey, body)
    report_uri = s3_uri(settings.artifacts_bucket, rkey)

    if not report.passed or contract_record is None:
        moved = _quarantine(ref, name_for_reports, path, info.version_id, info.size, body)
        logger.warning(
            "upload quarantined",
            extra={"dataset": dataset, "key": ref.key, "verdict": report.verdict, "failed_rules": report.failed_rules},
        )
        return UploadOutcome(
            dataset=name_for_reports,
            key=ref.key,
            verdict=report.verdict if report.verdict != "passed" else "failed",
            reason=report.reason,
            report_uri=report_uri,
            moved_to=moved,
        )

    dest = f"{VALIDATED}{dataset}/{path}"
    dest_version = datasets.copy_object(ref.bucket, ref.key, info.version_id, dest, info.size)
    contract = contract_record.contract
    draft = DatasetVersion(
        dataset=dataset,
        version=1,  # the number is assigned by create_version
        key=dest,
        bucket=ref.bucket,
        version_id=dest_version,
        source_key=ref.key,
        source_version_id=info.version_id,
        sha256=sha,
        size_bytes=info.size,
        format=report.format or "parquet",
        rows=report.rows,
        schema_fingerprint=report.schema_fingerprint,
        contract_version=contract_record.version,
        report_uri=report_uri,
        created_at=now,
        uploaded_by=ref.uploaded_by,
        training_spec=contract.training_spec,
    )
    record = datasets.create_version(
        settings.metadata_table, draft, datasets.upload_id(ref.bucket, ref.key, object_version), actor
    )
    training = record.training_status
    if contract.training_spec and record.training_status == "none":
        training = start_lifecycle(record, contract.training_spec, ref.uploaded_by or actor.identity).status
    logger.info(
        "dataset version recorded",
        extra={"dataset": dataset, "version": record.version, "rows": record.rows, "sha256": record.sha256},
    )
    return UploadOutcome(
        dataset=dataset,
        key=ref.key,
        verdict="passed",
        version=record.version,
        report_uri=report_uri,
        moved_to=dest,
        training_status=training,
    )


def _quarantine(ref: UploadRef, dataset: str, path: str, version_id: str, size: int, report_body: str) -> str:
    dest = f"{QUARANTINE}{dataset}/{path}"
    datasets.copy_object(ref.bucket, ref.key, version_id, dest, size)
    datasets.put_json(ref.bucket, f"{dest}.report.json", report_body)
    datasets.delete_object(ref.bucket, ref.key, version_id)
    return dest
