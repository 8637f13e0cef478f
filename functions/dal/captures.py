"""Capture and feedback objects in the data bucket (gzip JSON Lines). Write-only."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from functions.dal.clients import client, store_error


def put_jsonl_gz(bucket: str, key: str, body: bytes) -> None:
    try:
        client("s3").put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentType="application/gzip",
        )
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "capture write") from exc
