"""Imported models' records in the metadata table (key layout: functions/models/imports.py), and the
presigned upload URL of their artifacts.

`start` writes the record with its audit event in one TransactWriteItems call, conditional on no
record for that upload: an upload is imported at most once."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.dal.audit import audit_put
from functions.dal.clients import client, store_error
from functions.dal.versioned import create_audited, read_item
from functions.models.audit import AuditEvent
from functions.models.errors import Conflict
from functions.models.imports import ImportRecord, import_pk

UPLOAD_CONTENT_TYPE = "application/octet-stream"


def presign_put(bucket: str, key: str, expires_in: int) -> tuple[str, dict[str, str]]:
    """A presigned PUT URL for `key` and the headers the upload must send with it."""
    try:
        url = client("s3").generate_presigned_url(
            "put_object",
            Params={"Bucket": bucket, "Key": key, "ContentType": UPLOAD_CONTENT_TYPE},
            ExpiresIn=expires_in,
            HttpMethod="PUT",
        )
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "upload URL signing") from exc
    return str(url), {"Content-Type": UPLOAD_CONTENT_TYPE}


def _key(model: str, upload_id: str) -> dict[str, Any]:
    return {"pk": {"S": import_pk(model)}, "sk": {"S": upload_id}}


def get(table: str, model: str, upload_id: str) -> ImportRecord | None:
    item = read_item(table, _key(model, upload_id), "import read")
    return ImportRecord.model_validate_json(item["doc"]["S"]) if item else None


def start(table: str, record: ImportRecord, event: AuditEvent) -> None:
    """Store `record` and its audit event; Conflict (nothing written) when the upload has a record."""
    item = {
        **_key(record.model, record.import_id),
        "kind": {"S": "import"},
        "status": {"S": record.status.value},
        "doc": {"S": record.model_dump_json(exclude={"joined"})},
    }
    if not create_audited(table, item, audit_put(table, event), "import start"):
        raise Conflict(f"upload {record.import_id} of {record.model} was already imported")
