"""Artifacts and dataset objects in S3, always with their sha256.

Nothing read here is handed on unless its bytes hash to the sha256 the caller expects
(moto does not verify S3 checksums, and neither would a tampered object).
"""

from __future__ import annotations

import hashlib

from botocore.exceptions import BotoCoreError, ClientError

from functions.dal.clients import client, store_error
from functions.models.errors import IntegrityError, NotFound
from functions.models.registry import Artifact


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def split_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"not an s3 uri: {uri!r}")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


def put_artifact(bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream") -> Artifact:
    digest = sha256_hex(data)
    try:
        client("s3").put_object(
            Bucket=bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            Metadata={"sha256": digest},
        )
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "artifact write") from exc
    return Artifact(uri=s3_uri(bucket, key), sha256=digest, size_bytes=len(data))


def get_object(bucket: str, key: str, version_id: str = "") -> bytes:
    kwargs = {"Bucket": bucket, "Key": key}
    if version_id:
        kwargs["VersionId"] = version_id
    try:
        return client("s3").get_object(**kwargs)["Body"].read()  # type: ignore[no-any-return]
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        if code in ("NoSuchKey", "NoSuchVersion", "404", "InvalidArgument"):
            raise NotFound(f"s3://{bucket}/{key} (version {version_id or 'latest'}) does not exist") from exc
        raise store_error(exc, "object read") from exc
    except BotoCoreError as exc:
        raise store_error(exc, "object read") from exc


def get_verified(bucket: str, key: str, expected_sha256: str, version_id: str = "", what: str = "object") -> bytes:
    """The object's bytes, only if they hash to `expected_sha256`; IntegrityError otherwise."""
    data = get_object(bucket, key, version_id)
    actual = sha256_hex(data)
    if actual != expected_sha256:
        raise IntegrityError(
            f"refusing to load {what} s3://{bucket}/{key}: its bytes hash to sha256 {actual}, "
            f"but the registry records {expected_sha256}"
        )
    return data


def get_artifact(artifact: Artifact, what: str = "artifact") -> bytes:
    bucket, key = split_uri(artifact.uri)
    return get_verified(bucket, key, artifact.sha256, what=what)


MISSING_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "404", "NoSuchVersion"})


def read_bounded(uri: str, *, max_bytes: int) -> bytes | None:
    """The object's bytes (verification is the caller's job), or None if the store has no such
    object; refuses objects larger than `max_bytes` without reading them. A store that throttled,
    refused or did not answer is Throttled/StoreUnavailable: transient, never an integrity failure."""
    bucket, key = split_uri(uri)
    try:
        reply = client("s3").get_object(Bucket=bucket, Key=key)
        body = reply["Body"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code", "") in MISSING_CODES:
            return None
        raise store_error(exc, "artifact read") from exc
    except BotoCoreError as exc:
        raise store_error(exc, "artifact read") from exc
    try:
        if int(reply.get("ContentLength", 0)) > max_bytes:
            raise IntegrityError(f"artifact larger than its registered {max_bytes} bytes; not loaded")
        return bytes(body.read())
    except BotoCoreError as exc:  # the connection broke mid-body: transient
        raise store_error(exc, "artifact read") from exc
    finally:
        body.close()
