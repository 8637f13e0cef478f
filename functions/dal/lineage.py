"""Reads for lineage and explain: capture objects (gzip JSON Lines) and stored JSON documents.

Capture keys (written by serving, functions/logic/capture.py):
    captures/<model>/dt=YYYY-MM-DD/hour=HH/<epoch ms>-<uuid>.jsonl.gz
"""

from __future__ import annotations

import gzip
import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.dal.clients import client, is_missing, store_error
from functions.models.errors import NotFound

CAPTURES_PREFIX = "captures/"
MAX_KEYS = 10_000


def capture_keys(bucket: str, model: str, *, since_day: str = "", limit: int = MAX_KEYS) -> list[str]:
    """The model's capture object keys, newest first (keys sort by day, hour, then epoch ms)."""
    prefix = f"{CAPTURES_PREFIX}{model}/"
    params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    if since_day:
        params["StartAfter"] = f"{prefix}dt={since_day}"
    keys: list[str] = []
    try:
        for page in client("s3").get_paginator("list_objects_v2").paginate(**params):
            keys.extend(o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".jsonl.gz"))
            if len(keys) >= limit:
                break
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "capture listing") from exc
    return sorted(keys, reverse=True)[:limit]


def capture_lines(bucket: str, key: str) -> list[str]:
    """One capture object's lines (decompressed)."""
    try:
        body = client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    except (ClientError, BotoCoreError) as exc:
        if is_missing(exc):
            raise NotFound(f"s3://{bucket}/{key} does not exist") from exc
        raise store_error(exc, "capture read") from exc
    return gzip.decompress(body).decode().splitlines()


def read_json(uri: str) -> dict[str, Any]:
    """A JSON document at s3://bucket/key[?versionId=...]."""
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise NotFound(f"not an S3 uri: {uri!r}")
    path, _, query = uri[5:].partition("?")
    bucket, key = path.split("/", 1)
    params: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if query.startswith("versionId=") and query[10:] and query[10:] != "null":
        params["VersionId"] = query[10:]
    try:
        body = client("s3").get_object(**params)["Body"].read()
    except (ClientError, BotoCoreError) as exc:
        if is_missing(exc, version_id=params.get("VersionId", "")):
            raise NotFound(f"{uri} does not exist") from exc
        raise store_error(exc, "document read") from exc
    data = json.loads(body)
    if not isinstance(data, dict):
        raise NotFound(f"{uri} is not a JSON object")
    return data


# -- retention: tags the artifacts bucket's lifecycle rule matches, and model cards ------------------
RETIRED_TAG = "stepwise-retired"  # the artifacts bucket's lifecycle rule matches this tag = "true"


def tag_retired(uri: str, retired: bool) -> None:
    """Set (or clear) the retired tag on the object's current version."""
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise NotFound(f"not an S3 uri: {uri!r}")
    bucket, key = uri[5:].split("/", 1)
    try:
        client("s3").put_object_tagging(
            Bucket=bucket,
            Key=key,
            Tagging={"TagSet": [{"Key": RETIRED_TAG, "Value": "true" if retired else "false"}]},
        )
    except (ClientError, BotoCoreError) as exc:
        if is_missing(exc):
            raise NotFound(f"{uri} does not exist") from exc
        raise store_error(exc, "artifact tagging") from exc


def object_tags(uri: str) -> dict[str, str]:
    bucket, key = uri[5:].split("/", 1)
    try:
        reply = client("s3").get_object_tagging(Bucket=bucket, Key=key)
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "artifact tag read") from exc
    return {t["Key"]: t["Value"] for t in reply.get("TagSet", [])}


def put_text(bucket: str, key: str, text: str, content_type: str) -> str:
    """Write a text document (model cards); its s3 uri."""
    try:
        client("s3").put_object(Bucket=bucket, Key=key, Body=text.encode(), ContentType=content_type)
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "object write") from exc
    return f"s3://{bucket}/{key}"


def get_text(bucket: str, key: str) -> str:
    try:
        return str(client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode())
    except (ClientError, BotoCoreError) as exc:
        if is_missing(exc):
            raise NotFound(f"s3://{bucket}/{key} does not exist") from exc
        raise store_error(exc, "document read") from exc
