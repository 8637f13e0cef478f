"""The audit archive: Parquet files in the Object Lock (governance mode) bucket. Write-only; the
bucket's default retention locks every object version written here."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.dal.clients import client, store_error
from functions.models.errors import StoreUnavailable

IDEMPOTENCY_PK = "idempotency#audit-export"  # Powertools records of exported days (metadata table)


def put_parquet(bucket: str, key: str, body: bytes) -> str:
    """Write one export (with a checksum, as Object Lock buckets require); its version id."""
    digest = hashlib.sha256(body).hexdigest()
    try:
        reply = client("s3").put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentType="application/vnd.apache.parquet",
            ChecksumAlgorithm="SHA256",
            Metadata={"sha256": digest},
        )
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "audit export write") from exc
    return str(reply.get("VersionId") or "")


def invoke_export(function_name: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Run the export function synchronously (the on-demand route); its result."""
    try:
        reply = client("lambda").invoke(
            FunctionName=function_name, InvocationType="RequestResponse", Payload=json.dumps(payload).encode()
        )
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "audit export invoke") from exc
    body = json.loads(reply["Payload"].read() or b"null")
    if reply.get("FunctionError") or not isinstance(body, dict):
        message = body.get("errorMessage", "") if isinstance(body, dict) else ""
        raise StoreUnavailable(f"audit export failed: {message or reply.get('FunctionError')}")
    return body
