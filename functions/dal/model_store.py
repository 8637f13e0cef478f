"""Model artifacts in S3: read the bytes of one stored file. Verification is the caller's job
(functions/logic/serving_runtime.py checks sha256 and size before anything parses the bytes)."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from functions.dal.clients import client, error_code, store_error
from functions.models.errors import IntegrityError
from functions.models.serving import ModelUnavailable

_MISSING = {"NoSuchKey", "NoSuchBucket", "404", "NoSuchVersion"}


def split_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` -> (bucket, key)."""
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"not an s3 uri: {uri!r}")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


def read_artifact(uri: str, *, max_bytes: int) -> bytes:
    """The object's bytes; refuses objects larger than max_bytes without reading them."""
    bucket, key = split_uri(uri)
    s3 = client("s3")
    try:
        reply = s3.get_object(Bucket=bucket, Key=key)
    except (ClientError, BotoCoreError) as exc:
        if isinstance(exc, ClientError) and error_code(exc) in _MISSING:
            raise ModelUnavailable("the model artifact is missing from the artifacts bucket") from exc
        raise store_error(exc, "artifact read") from exc
    body = reply["Body"]
    try:
        if int(reply.get("ContentLength", 0)) > max_bytes:
            raise IntegrityError(f"artifact larger than its registered {max_bytes} bytes; not loaded")
        return bytes(body.read())
    finally:
        body.close()
