"""Bring your own model, the API's side: hand out a presigned upload URL for an ONNX artifact, then
accept an import request naming the uploaded object and the dataset version to evaluate it on, and
start its lifecycle run (functions/logic/import_run.py verifies it in place of training).

The API function never parses or loads the artifact (untrusted bytes): it checks what it can from
the stores (the object exists, its size is within the import limit, the dataset version and its
contract exist, the target is a column of it) and records the import with its audit event. The
graph itself is verified by functions/logic/import_verify.py in the workflow's evaluate step.

Every attempt is audited: an upload URL handed out (`model.import.upload`), an import accepted
(`model.import.request`, with the record in the same transaction) or refused (`model.import.refused`,
with the reason). Idempotency: an upload is imported at most once; the same request again answers
the stored import (`joined`), another request for the same upload is a Conflict.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from functions.dal import artifacts
from functions.dal import audit as audit_store
from functions.dal import datasets as dataset_store
from functions.dal import imports as store
from functions.models.audit import Actor, AuditEvent, model_target
from functions.models.errors import Conflict, ImportRefused, InvalidInput, NotFound, StepwiseError
from functions.models.imports import (
    UPLOAD_URL_SECONDS,
    ImportRecord,
    ImportRequest,
    ImportStatus,
    UploadRequest,
    UploadTicket,
    import_key,
)
from functions.models.settings import Settings
from functions.observability import logger

UPLOAD_ACTION = "model.import.upload"
REQUEST_ACTION = "model.import.request"
REFUSED_ACTION = "model.import.refused"


def _over_limit(size: int, limit: int) -> ImportRefused:
    reason = f"{size} bytes is over the import size limit of {limit} bytes"
    return ImportRefused(f"the imported model refused: size: {reason}", [{"field": "size_bytes", "reason": reason}])


def request_upload(settings: Settings, model: str, body: UploadRequest, actor: Actor) -> UploadTicket:
    """A presigned PUT URL under imports/<model>/<upload id>/, or ImportRefused over the size limit."""
    if body.size_bytes > settings.import_max_bytes:
        refusal = _over_limit(body.size_bytes, settings.import_max_bytes)
        audit_refusal(settings, model, actor, refusal, {"size_bytes": body.size_bytes})
        raise refusal
    upload_id = uuid.uuid4().hex
    key = import_key(model, upload_id)
    url, headers = store.presign_put(settings.artifacts_bucket, key, UPLOAD_URL_SECONDS)
    after = {"upload_id": upload_id, "size_bytes": body.size_bytes}
    audit_store.record(settings.metadata_table, AuditEvent.of(actor, UPLOAD_ACTION, model_target(model), after=after))
    return UploadTicket(
        upload_id=upload_id,
        bucket=settings.artifacts_bucket,
        key=key,
        url=url,
        headers=headers,
        expires_in=UPLOAD_URL_SECONDS,
    )


def request_import(
    settings: Settings, model: str, body: ImportRequest, actor: Actor, now: datetime | None = None
) -> ImportRecord:
    """Record the import (RECEIVED) with its audit event; a refusal is audited and raised: NotFound
    for a missing upload or dataset version, ImportRefused over the size limit, InvalidInput for a
    target that is not a column of the version's contract."""
    stored = store.get(settings.metadata_table, model, body.upload_id)
    if stored is not None:
        if stored.request != body:
            raise Conflict(f"upload {body.upload_id} of {model} was already imported with another request")
        start_run(settings, stored)  # a no-op when it started; starts it when the first start failed
        return stored.model_copy(update={"joined": True})
    try:
        record = _checked(settings, model, body, actor, now or datetime.now(UTC))
    except (NotFound, InvalidInput) as refusal:
        audit_refusal(settings, model, actor, refusal, body.model_dump(mode="json"))
        raise
    event = AuditEvent.of(
        actor,
        REQUEST_ACTION,
        model_target(model),
        after={
            "import_id": record.import_id,
            "sha256": body.sha256,
            "dataset": f"{body.dataset}@{body.dataset_version}",
        },
    )
    try:
        store.start(settings.metadata_table, record, event)
    except Conflict:
        # another request for the same upload got there first: answer it if it is this request
        raced = store.get(settings.metadata_table, model, body.upload_id)
        if raced is None or raced.request != body:
            raise
        start_run(settings, raced)
        return raced.model_copy(update={"joined": True})
    start_run(settings, record)
    return record


def start_run(settings: Settings, record: ImportRecord) -> bool:
    """Start the lifecycle run of the import (named after it: a second start is a no-op); True
    when this call started it. The import stays recorded when the start fails, and the same
    request again starts it."""
    from functions.dal import workflow
    from functions.models.approvals import ReleaseStrategy
    from functions.models.runs import LifecycleInput

    if not settings.lifecycle_state_machine_arn:
        raise InvalidInput("the lifecycle workflow is not deployed (STEPWISE_LIFECYCLE_SM_ARN is unset)")
    payload = LifecycleInput(
        spec=record.model,
        spec_version=1,
        dataset=record.request.dataset,
        dataset_version=record.request.dataset_version,
        started_by=record.requested_by,
        release=ReleaseStrategy().model_dump(mode="json"),
        import_id=record.import_id,
    )
    _, started = workflow.start_execution(
        settings.lifecycle_state_machine_arn, record.execution_name, payload.model_dump(mode="json")
    )
    return started


def _checked(settings: Settings, model: str, body: ImportRequest, actor: Actor, now: datetime) -> ImportRecord:
    if not settings.lifecycle_state_machine_arn:  # nothing could verify it: refused before it is recorded
        raise InvalidInput("the lifecycle workflow is not deployed (STEPWISE_LIFECYCLE_SM_ARN is unset)")
    key = import_key(model, body.upload_id)
    try:
        info = artifacts.head_object(settings.artifacts_bucket, key)
    except NotFound as exc:
        raise NotFound(
            f"upload {body.upload_id} of {model} has no uploaded object (PUT it to its upload URL first)"
        ) from exc
    if info.size > settings.import_max_bytes:
        raise _over_limit(info.size, settings.import_max_bytes)
    version = dataset_store.get_version(settings.metadata_table, body.dataset, body.dataset_version)
    contract = dataset_store.get_contract(settings.metadata_table, body.dataset, version.contract_version).contract
    columns = {c.name for c in contract.columns}
    target = body.target or contract.target
    if target is None:
        raise InvalidInput(
            f"dataset {body.dataset!r} declares no target: name the target column",
            [{"field": "target", "reason": "required: the contract declares no target"}],
        )
    if target not in columns:
        reason = f"{target!r} is not a column of {body.dataset}@{body.dataset_version}'s contract"
        raise InvalidInput(f"target: {reason}", [{"field": "target", "reason": reason}])
    return ImportRecord(
        import_id=body.upload_id,
        model=model,
        request=body,
        status=ImportStatus.RECEIVED,
        artifact_uri=artifacts.s3_uri(settings.artifacts_bucket, key),
        size_bytes=info.size,
        target=target,
        requested_by=actor.identity,
        requested_at=now,
        execution_name=import_execution_name(model, body.dataset_version, body.upload_id),
    )


def import_execution_name(model: str, dataset_version: int, import_id: str) -> str:
    """`<model>-<dataset version>-1-i<import id>`: one lifecycle execution per import."""
    from functions.models.runs import execution_name

    return execution_name(model, dataset_version, 1, f"i{import_id}")


def audit_refusal(
    settings: Settings, model: str, actor: Actor, refusal: StepwiseError, attempted: dict[str, object]
) -> None:
    """A `model.import.refused` event with the refusal's message (the API's refusals, and the
    workflow's VerifyImport step's); a store that cannot record it is logged, never masks the refusal."""
    event = AuditEvent.of(actor, REFUSED_ACTION, model_target(model), after=attempted, reason=refusal.message[:4096])
    try:
        audit_store.record(settings.metadata_table, event)
    except StepwiseError:
        logger.exception("could not audit a refused import")  # the caller still gets the refusal
