"""The offline store in S3: one sorted Parquet layout per (source dataset version, entity keys,
timestamp column), with its manifest, under `offline/` in the artifacts bucket.

    offline/<dataset>/v<%08d>/<keys digest>/layout.parquet   the layout (functions/logic/offline_store.py)
    offline/<dataset>/v<%08d>/<keys digest>/manifest.json    OfflineLayoutManifest: sha256, size, and
                                                             the dataset version it came from

The manifest is written after the layout, so a manifest found means its layout was written; the
layout is used only when its bytes hash to the manifest's sha256 (load_layout checks). Two builds
of the same source version write the same bytes (the layout is deterministic), so a race between
them is harmless.
"""

from __future__ import annotations

import hashlib

from pydantic import ValidationError

from functions.dal import artifacts as store
from functions.models.errors import IntegrityError, NotFound
from functions.models.features_offline import OfflineLayoutManifest
from functions.models.registry import Artifact

OFFLINE_PREFIX = "offline/"
LAYOUT_FILE = "layout.parquet"
MANIFEST_FILE = "manifest.json"


def layout_prefix(dataset: str, version: int, entity_keys: list[str], timestamp_column: str) -> str:
    """Where the layout of `dataset`@`version` sorted by these keys and this timestamp lives."""
    digest = hashlib.sha256("\x00".join([*entity_keys, "", timestamp_column]).encode()).hexdigest()[:16]
    return f"{OFFLINE_PREFIX}{dataset}/v{version:08d}/{digest}/"


def get_manifest(bucket: str, prefix: str) -> OfflineLayoutManifest | None:
    """The stored manifest under `prefix`, None when there is none yet."""
    try:
        data = store.get_object(bucket, prefix + MANIFEST_FILE)
    except NotFound:
        return None
    try:
        return OfflineLayoutManifest.model_validate_json(data)
    except ValidationError as exc:
        raise IntegrityError(f"offline layout manifest s3://{bucket}/{prefix}{MANIFEST_FILE} is unreadable") from exc


def put_layout(bucket: str, prefix: str, data: bytes, manifest: OfflineLayoutManifest) -> Artifact:
    """Write the layout, then its manifest; the layout as an artifact (uri, sha256, size)."""
    artifact = store.put_artifact(bucket, prefix + LAYOUT_FILE, data, "application/vnd.apache.parquet")
    store.put_json(bucket, prefix + MANIFEST_FILE, manifest.model_dump_json())
    return artifact


def layout_artifact(bucket: str, prefix: str, manifest: OfflineLayoutManifest) -> Artifact:
    return Artifact(
        uri=store.s3_uri(bucket, prefix + LAYOUT_FILE), sha256=manifest.sha256, size_bytes=manifest.size_bytes
    )


def get_layout(artifact: Artifact, what: str) -> bytes:
    """The layout's bytes, only if they hash to the artifact's sha256 (IntegrityError otherwise)."""
    return store.get_artifact(artifact, what)
