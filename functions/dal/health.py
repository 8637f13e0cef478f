"""Probes that tell whether each store answers."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from functions.dal.clients import client, error_code


def bucket_answers(bucket: str) -> tuple[bool, str]:
    try:
        client("s3").head_bucket(Bucket=bucket)
    except (ClientError, BotoCoreError) as exc:
        return False, error_code(exc)
    return True, "ok"


def table_answers(table: str) -> tuple[bool, str]:
    try:
        status = client("dynamodb").describe_table(TableName=table)["Table"]["TableStatus"]
    except (ClientError, BotoCoreError) as exc:
        return False, error_code(exc)
    return status == "ACTIVE", status.lower()
