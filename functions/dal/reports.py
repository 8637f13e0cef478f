"""Reads of stored reports for the console's pages: a dataset's validation reports (one per upload,
passed or quarantined) and a drift check's JSON and HTML reports, all in the artifacts bucket.

    reports/validation/<dataset>/<object version>.json   (functions/models/datasets.py report_key)
    reports/drift/<model>/<window end>-<check id>.{json,html}
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.dal.clients import client, is_missing, store_error
from functions.models.errors import NotFound

MAX_LISTED = 1_000  # the newest reports a listing considers


def newest_keys(bucket: str, prefix: str, limit: int) -> list[tuple[str, Any]]:
    """(key, last modified) of the newest `limit` objects under `prefix` (of at most MAX_LISTED)."""
    found: list[tuple[str, Any]] = []
    try:
        pages = client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            found += [(o["Key"], o["LastModified"]) for o in page.get("Contents", [])]
            if len(found) >= MAX_LISTED:
                break
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "report listing") from exc
    found.sort(key=lambda item: item[1], reverse=True)
    return found[:limit]


def read_bytes(uri: str) -> bytes:
    """The bytes of the object at s3://bucket/key; NotFound when it does not exist."""
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise NotFound(f"not an S3 uri: {uri!r}")
    bucket, key = uri[5:].partition("?")[0].split("/", 1)
    try:
        return bytes(client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    except (ClientError, BotoCoreError) as exc:
        if is_missing(exc):
            raise NotFound(f"{uri} does not exist") from exc
        raise store_error(exc, "report read") from exc
