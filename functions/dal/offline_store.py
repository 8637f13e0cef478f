"""The offline store in S3: one sorted Parquet layout per (source dataset version, entity keys,
timestamp column), with its manifest (OfflineLayoutManifest: sha256, size, and the dataset version
it came from), under `offline/` in the artifacts bucket; the keys are
functions/logic/offline_paths.py's (layout_key, manifest_key).

The manifest is written after the layout, so a manifest found means its layout was written; the
layout is used only when its bytes hash to the manifest's sha256 (load_layout checks). Two builds
of the same source version write the same bytes (the layout is deterministic), so a race between
them is harmless.
"""

from __future__ import annotations

from pydantic import ValidationError

from functions.dal import artifacts as store
from functions.models.errors import IntegrityError, NotFound
from functions.models.features_offline import OfflineLayoutManifest
from functions.models.registry import Artifact


def get_manifest(bucket: str, manifest_key: str) -> OfflineLayoutManifest | None:
    """The stored manifest at `manifest_key`, None when there is none yet."""
    try:
        data = store.get_object(bucket, manifest_key)
    except NotFound:
        return None
    try:
        return OfflineLayoutManifest.model_validate_json(data)
    except ValidationError as exc:
        raise IntegrityError(f"offline layout manifest s3://{bucket}/{manifest_key} is unreadable") from exc


def put_layout(
    bucket: str, layout_key: str, manifest_key: str, data: bytes, manifest: OfflineLayoutManifest
) -> Artifact:
    """Write the layout, then its manifest; the layout as an artifact (uri, sha256, size)."""
    artifact = store.put_artifact(bucket, layout_key, data, "application/vnd.apache.parquet")
    store.put_json(bucket, manifest_key, manifest.model_dump_json())
    return artifact


def layout_artifact(bucket: str, layout_key: str, manifest: OfflineLayoutManifest) -> Artifact:
    return Artifact(uri=store.s3_uri(bucket, layout_key), sha256=manifest.sha256, size_bytes=manifest.size_bytes)


def get_layout(artifact: Artifact, what: str) -> bytes:
    """The layout's bytes, only if they hash to the artifact's sha256 (IntegrityError otherwise)."""
    return store.get_artifact(artifact, what)
