"""Artifacts and dataset objects in S3, always with their sha256.

Nothing read here is handed on unless its bytes hash to the sha256 the caller expects
(moto does not verify S3 checksums, and neither would a tampered object).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.dal.clients import client, is_missing, store_error
from functions.models.errors import IntegrityError, NotFound
from functions.models.registry import Artifact

COPY_OBJECT_LIMIT = 5 * 1024**3  # CopyObject's limit; bigger objects use a multipart copy


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
        if is_missing(exc, version_id=version_id):
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


def read_bounded(uri: str, *, max_bytes: int) -> bytes | None:
    """The object's bytes (verification is the caller's job), or None if the store has no such
    object; refuses objects larger than `max_bytes` without reading them. A store that throttled,
    refused or did not answer is Throttled/StoreUnavailable: transient, never an integrity failure."""
    bucket, key = split_uri(uri)
    try:
        reply = client("s3").get_object(Bucket=bucket, Key=key)
        body = reply["Body"]
    except ClientError as exc:
        if is_missing(exc):
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


# -- dataset objects (validation: heads, ranged reads, copies, reports) ----------------------------


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    version_id: str
    etag: str


def head_object(bucket: str, key: str, version_id: str = "") -> ObjectInfo:
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id:
        kwargs["VersionId"] = version_id
    try:
        reply = client("s3").head_object(**kwargs)
    except (ClientError, BotoCoreError) as exc:
        if is_missing(exc, version_id=version_id):
            raise NotFound(f"s3://{bucket}/{key} (version {version_id or 'latest'}) does not exist") from exc
        raise store_error(exc, "object read (head)") from exc
    return ObjectInfo(
        size=int(reply.get("ContentLength", 0)),
        version_id=str(reply.get("VersionId") or ""),
        etag=str(reply.get("ETag", "")).strip('"'),
    )


def read_object(bucket: str, key: str, version_id: str = "") -> bytes:
    return get_object(bucket, key, version_id if version_id != "null" else "")


@dataclass
class S3RangeSource:
    """A ByteSource over ranged GETs of one object version (for files read in chunks)."""

    bucket: str
    key: str
    version_id: str
    size: int

    def read(self, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key, "Range": f"bytes={start}-{end - 1}"}
        if self.version_id and self.version_id != "null":
            kwargs["VersionId"] = self.version_id
        try:
            return client("s3").get_object(**kwargs)["Body"].read()  # type: ignore[no-any-return]
        except (ClientError, BotoCoreError) as exc:
            raise store_error(exc, "ranged object read") from exc


def sha256_of(source: S3RangeSource, part: int = 64 * 1024**2) -> str:
    """sha256 of an object streamed in parts (constant memory)."""
    digest = hashlib.sha256()
    for start in range(0, source.size, part):
        digest.update(source.read(start, min(source.size, start + part)))
    return digest.hexdigest()


def copy_object(bucket: str, key: str, version_id: str, dest_key: str, size: int) -> str:
    """Copy one object version within the bucket; the destination's version id ("" if unversioned)."""
    src: dict[str, str] = {"Bucket": bucket, "Key": key}
    if version_id and version_id != "null":
        src["VersionId"] = version_id
    s3 = client("s3")
    try:
        if size <= COPY_OBJECT_LIMIT:
            reply = s3.copy_object(Bucket=bucket, Key=dest_key, CopySource=src)
            return str(reply.get("VersionId") or "")
        s3.copy(CopySource=src, Bucket=bucket, Key=dest_key)  # managed multipart copy
        return head_object(bucket, dest_key).version_id
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "object copy") from exc


def delete_object(bucket: str, key: str, version_id: str = "") -> None:
    """Delete one object version (only that one: a newer upload of the same key stays)."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id and version_id != "null":
        kwargs["VersionId"] = version_id
    try:
        client("s3").delete_object(**kwargs)
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "object delete") from exc


def put_bytes(bucket: str, key: str, body: bytes) -> None:
    try:
        client("s3").put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/octet-stream")
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "object write") from exc


def put_json(bucket: str, key: str, body: str) -> str:
    """Write a JSON document; its version id ("" if unversioned)."""
    try:
        reply = client("s3").put_object(Bucket=bucket, Key=key, Body=body.encode(), ContentType="application/json")
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "object write") from exc
    return str(reply.get("VersionId") or "")
