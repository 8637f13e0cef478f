"""Imported models: an ONNX artifact trained outside the platform, uploaded through a presigned URL
and then named, with the dataset version it is evaluated on, by an import request.

Key layout (metadata table, keys `pk`/`sk`):
    pk=IMPORT#<model>  sk=<upload id>   ImportRecord (one per upload; its request is stored with it)
Artifacts bucket:
    imports/<model>/<upload id>/model.onnx   the uploaded bytes (untrusted until verified)
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from functions.models.contracts import COLUMN_NAME_PATTERN
from functions.models.registry import NAME_PATTERN

IMPORTS_PREFIX = "imports/"
UPLOAD_ID_PATTERN = r"^[0-9a-f]{32}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
UPLOAD_URL_SECONDS = 900  # how long a presigned upload URL stays valid


def import_key(model: str, upload_id: str) -> str:
    return f"{IMPORTS_PREFIX}{model}/{upload_id}/model.onnx"


def import_pk(model: str) -> str:
    return f"IMPORT#{model}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class UploadRequest(_Model):
    """POST /v1/models/{name}/imports/upload: the size of the file to upload (refused at once over
    the import size limit)."""

    size_bytes: int = Field(ge=1, le=2**40)


class UploadTicket(_Model):
    """Where to PUT the artifact: `url` with `method` and `headers`, within `expires_in` seconds;
    then name `upload_id` in the import request."""

    upload_id: str = Field(pattern=UPLOAD_ID_PATTERN)
    bucket: str
    key: str
    url: str
    method: Literal["PUT"] = "PUT"
    headers: dict[str, str]
    expires_in: int = Field(ge=1)


class ImportRequest(_Model):
    """POST /v1/models/{name}/imports: the uploaded artifact and what to evaluate it on."""

    upload_id: str = Field(pattern=UPLOAD_ID_PATTERN)
    sha256: str = Field(pattern=SHA256_PATTERN, description="sha256 (hex) of the uploaded bytes")
    dataset: str = Field(pattern=NAME_PATTERN)
    dataset_version: int = Field(ge=1)
    task: Literal["classification", "regression"]
    target: str | None = Field(default=None, pattern=COLUMN_NAME_PATTERN, description="default: the contract's target")
    source_url: str | None = Field(default=None, max_length=2048, pattern=r"^https?://[^\s]+$")
    source_commit: str | None = Field(default=None, pattern=r"^[0-9a-f]{7,64}$")
    description: str = Field(default="", max_length=2000)


class ImportStatus(StrEnum):
    # accepted by the API; the lifecycle run named `execution_name` verifies, evaluates and
    # registers it (its progress and outcome are the run's: GET /v1/models/{name}/runs/{run id})
    RECEIVED = "RECEIVED"


class ImportRecord(_Model):
    import_id: str = Field(pattern=UPLOAD_ID_PATTERN)  # the upload id
    model: str = Field(pattern=NAME_PATTERN)
    request: ImportRequest
    status: ImportStatus
    artifact_uri: str
    size_bytes: int = Field(ge=1)
    target: str
    requested_by: str
    requested_at: datetime
    execution_name: str = ""  # the lifecycle execution that verifies, evaluates and registers it
    joined: bool = False  # a repeat of the same request: the stored import, nothing new
