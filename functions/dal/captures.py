"""Capture and feedback objects in the data bucket (gzip JSON Lines). Write-only."""

from __future__ import annotations

from botocore.exceptions import ClientError

from functions.dal.clients import client
from functions.models.errors import StoreUnavailable


def put_jsonl_gz(bucket: str, key: str, body: bytes) -> None:
    try:
        client("s3").put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentType="application/gzip",
        )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise StoreUnavailable(f"capture write failed: {code}") from exc
