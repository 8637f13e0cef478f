"""Validation Lambda: S3 ObjectCreated under raw/<dataset>/ -> validate, then version or quarantine.

Invoked asynchronously by the data bucket's notification. Idempotent on bucket + key + version id
(Powertools idempotency on the metadata table), so a repeated delivery returns the first outcome
and registers nothing new. Store failures raise (the asynchronous retry and the DLQ take over);
a bad file never raises: it is quarantined with its report.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import S3Event
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.dal.idempotency import run_once
from functions.handlers import lease
from functions.handlers.errors import typed_aws_errors
from functions.logic.validation_upload import (
    check_chunk_step,
    fail_step,
    finish_step,
    plan_chunks_step,
    process_upload,
)
from functions.models.audit import Actor
from functions.models.datasets import UploadRef
from functions.models.errors import InvalidInput
from functions.models.settings import get_settings
from functions.observability import logger, metrics, tracer

IDEMPOTENCY_PK = "idempotency#validate"
IDEMPOTENCY = IdempotencyConfig(
    event_key_jmespath="[bucket, key, version_id, etag]",  # one S3 object version
    payload_validation_jmespath="size",  # the same identity with another size is refused (409)
    raise_on_no_idempotency_key=True,
    expires_after_seconds=7 * 24 * 3600,
)


def upload_refs(event: dict[str, Any]) -> list[UploadRef]:
    """The uploads an S3 notification names (keys URL-decoded)."""
    refs = []
    for record in S3Event(event).records:
        obj = record.s3.get_object
        refs.append(
            UploadRef(
                bucket=record.s3.bucket.name,
                key=unquote_plus(obj["key"]),
                version_id=obj.get("versionId") or "",
                etag=(obj.get("eTag") or "").strip('"'),
                size=int(obj.get("size") or 0),
                uploaded_by=(record.get("userIdentity") or {}).get("principalId", ""),
            )
        )
    return refs


def _validate(data: UploadRef) -> dict[str, Any]:
    settings = get_settings()
    actor = Actor(identity=data.uploaded_by or "s3:upload", correlation_id=logger.get_correlation_id() or "")
    return process_upload(data, settings, actor).model_dump(mode="json")


def _once(ref: UploadRef) -> dict[str, Any]:
    """Validate `ref` once (functions/dal/idempotency.py: a repeat returns the first outcome; a
    failed idempotency record read or write is a typed store error like any other)."""
    return run_once(
        _validate, data=ref, table=get_settings().metadata_table, partition=IDEMPOTENCY_PK, config=IDEMPOTENCY
    )


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@typed_aws_errors
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    lease.register(IDEMPOTENCY, context)
    outcomes = [_once(ref) for ref in upload_refs(event)]
    for outcome in outcomes:
        metrics.add_metric(name=f"Uploads_{outcome['verdict']}", unit=MetricUnit.Count, value=1)
    return {"outcomes": outcomes}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def chunk_step_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The chunked-validation state machine's tasks: {"step": "plan" | "check" | "finish" | "fail", ...}
    ("fail": a Catch records that a step failed after its retries)."""
    settings = get_settings()
    step = event.get("step")
    if step == "plan":
        return plan_chunks_step(event, settings)
    if step == "check":
        return check_chunk_step(event, settings)
    if step == "finish":
        upload = event.get("upload") or {}
        actor = Actor(identity=upload.get("uploaded_by") or "s3:upload", correlation_id=context.aws_request_id)
        return finish_step(event, settings, actor)
    if step == "fail":
        return fail_step(event, settings)
    raise InvalidInput(f"unknown chunked-validation step {step!r}")
