"""Batch scoring vocabulary: where a job's output goes, what one scored chunk reports, and the
errors a batch input can raise.

Output layout (data bucket), one job:
    predictions/<model>/<job id>/part-<chunk:05d>.parquet          scored rows of one chunk
    predictions/<model>/<job id>/rejects/part-<chunk:05d>.parquet  rows that did not fit the model
    predictions/<model>/<job id>/_manifest.json                    written when the job finishes
A part holds the pass-through columns (as read), `prediction`, `probabilities` (classifiers: a
fixed-size list of float32 in `ModelVersion.class_labels` order) and `model_version`. A rejects
part holds the pass-through columns as text, `chunk`, `row` (0-based among the chunk's data rows)
and `reason`. Parts are deterministic: the same chunk, model and options give the same bytes.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from functions.models.errors import InvalidInput, StepwiseError
from functions.models.registry import MAX_VERSION, NAME_PATTERN

PREDICTIONS_PREFIX = "predictions/"
OUTPUT_COLUMNS = ("prediction", "probabilities", "model_version")
REJECT_COLUMNS = ("chunk", "row", "reason")
MAX_PASSTHROUGH = 20


class BatchInputInvalid(InvalidInput):
    """The input cannot be scored as given (unsupported format, unreadable, a feature column or a
    pass-through column missing): nothing is written."""


class BatchJobFailed(StepwiseError):
    """The job concluded FAILED (chunks not scored, too many rejects); its record names why."""


def part_key(model: str, job: str, chunk: int) -> str:
    return f"{PREDICTIONS_PREFIX}{model}/{job}/part-{chunk:05d}.parquet"


def rejects_key(model: str, job: str, chunk: int) -> str:
    return f"{PREDICTIONS_PREFIX}{model}/{job}/rejects/part-{chunk:05d}.parquet"


def manifest_key(model: str, job: str) -> str:
    return f"{PREDICTIONS_PREFIX}{model}/{job}/_manifest.json"


class ChunkCounts(BaseModel):
    """What scoring one chunk did: rows read, scored and rejected, and rejects per reason
    (`missing:<feature>`, `range:<feature>`, `type:<feature>`, `category:<feature>`,
    `length:<feature>`, `unparseable`)."""

    model_config = ConfigDict(extra="forbid")

    chunk: int = Field(ge=0)
    rows: int = Field(ge=0)
    scored: int = Field(ge=0)
    rejected: int = Field(ge=0)
    reasons: dict[str, int] = Field(default_factory=dict)
    captured: int = Field(default=0, ge=0)  # scored rows sampled into the capture store (capturing jobs)


# -- jobs --------------------------------------------------------------------------------------------
# Key layout (metadata table): one item per job
#     pk=BATCH#<model>  sk=JOB#<job id>   status, version, doc (the BatchJob as JSON)
# A job id is random, or derived from (model, caller, client token) when the request carries a
# token: a repeated request with the same token is the same job.

JOB_ID_PATTERN = r"^[0-9a-f]{20}$"
CLIENT_TOKEN_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
COLUMN_NAME = Annotated[str, Field(min_length=1, max_length=128)]
DEFAULT_REJECT_THRESHOLD = 0.01


def job_pk(model: str) -> str:
    return f"BATCH#{model}"


def job_sk(job_id: str) -> str:
    return f"JOB#{job_id}"


class DatasetInput(BaseModel):
    """A validated dataset version as the input."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(pattern=NAME_PATTERN, max_length=63)
    version: int = Field(ge=1, le=MAX_VERSION)


class ObjectInput(BaseModel):
    """An object in the data bucket, under one of the prefixes batch scoring may read."""

    model_config = ConfigDict(extra="forbid")

    uri: str = Field(pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,62}/\S+$", max_length=1100)


class BatchRequest(BaseModel):
    """POST /v1/models/{name}/batch: what to score and with which version (the production version
    unless `model_version` or `alias` says otherwise)."""

    model_config = ConfigDict(extra="forbid")

    input: DatasetInput | ObjectInput
    model_version: int | None = Field(default=None, ge=1, le=MAX_VERSION)
    alias: Literal["production", "candidate"] | None = None
    passthrough: list[COLUMN_NAME] = Field(default_factory=list, max_length=MAX_PASSTHROUGH)
    # a sample of the scored rows goes to the capture store the drift check reads (batch_capture.py)
    capture: bool = False
    reject_threshold: float = Field(default=DEFAULT_REJECT_THRESHOLD, ge=0, le=1)
    client_token: str | None = Field(default=None, pattern=CLIENT_TOKEN_PATTERN)
    # a version trained through feature views: the input column holding each row's event time (the
    # time its features are looked up as of); default the version's training event-time column
    event_time: COLUMN_NAME | None = None

    @model_validator(mode="after")
    def _one_choice(self) -> BatchRequest:
        if self.model_version is not None and self.alias is not None:
            raise ValueError("give model_version or alias, not both")
        if len(set(self.passthrough)) != len(self.passthrough):
            raise ValueError("passthrough names a column twice")
        return self


class JobStatus(StrEnum):
    PENDING = "PENDING"  # recorded; the workflow has not started it yet
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"  # `error` names the typed error, `message` what went wrong


class InputRef(BaseModel):
    """The exact object a job reads (its version pinned when the job was created)."""

    model_config = ConfigDict(extra="forbid")

    bucket: str
    key: str
    version_id: str = ""
    size_bytes: int = Field(ge=0)
    format: Literal["parquet", "csv", "jsonl"]
    dataset: str = ""  # when the input is a dataset version
    dataset_version: int = Field(default=0, ge=0)
    sha256: str = ""  # a dataset version's recorded sha256


class BatchJob(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    job_id: str = Field(pattern=JOB_ID_PATTERN)
    model: str = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1)  # resolved once, when the job was created
    artifact_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    status: JobStatus
    input: InputRef
    passthrough: list[str] = Field(default_factory=list)
    capture: bool = False
    event_time: str = ""  # versions trained through feature views: the input's event-time column
    reject_threshold: float = Field(default=DEFAULT_REJECT_THRESHOLD, ge=0, le=1)
    client_token: str | None = None
    request_sha256: str = ""  # of the request as given: a repeated token with another body is refused
    requested_by: str = Field(min_length=1, max_length=2048)
    requested_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    output_prefix: str
    chunks_total: int = Field(default=0, ge=0)
    chunks_done: int = Field(default=0, ge=0)
    rows: int = Field(default=0, ge=0)
    scored: int = Field(default=0, ge=0)
    rejected: int = Field(default=0, ge=0)
    execution_arn: str = ""
    resumes: int = Field(default=0, ge=0)  # times the failed job was resumed (its chunks with no report re-run)
    error: str = ""
    message: str = Field(default="", max_length=4096)
    joined: bool = False  # in a reply: a repeated request (same client token) joined this job


class BatchJobs(BaseModel):
    """A model's batch jobs, newest first."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[BatchJob]


class ChunkTask(BaseModel):
    """One item of the workflow's map: a chunk of a job's input."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(pattern=NAME_PATTERN)
    job_id: str = Field(pattern=JOB_ID_PATTERN)
    index: int = Field(ge=0)
    start: int = Field(default=0, ge=0)
    end: int = Field(default=0, ge=0)
    row_groups: list[int] = Field(default_factory=list)


class PartRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str
    rows: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0)


class ChunkReport(BaseModel):
    """What a scored chunk wrote (stored beside its part, read by the finish step)."""

    model_config = ConfigDict(extra="forbid")

    counts: ChunkCounts
    part: PartRef
    rejects: PartRef | None = None
    version: int = Field(ge=1)
    artifact_sha256: str
    # where the chunk lies in the input (what explaining a row re-reads for its inputs)
    start: int = Field(default=0, ge=0)
    end: int = Field(default=0, ge=0)
    row_groups: list[int] = Field(default_factory=list)


ROW_ID_PATTERN = r"^[^/\x00-\x1f]{1,256}$"


class ExplainedRow(BaseModel):
    """One scored row of a job: its pass-through columns, the feature values it was scored on (read
    again from the pinned input; empty when they cannot be told apart from another row's), what the
    model answered, and the part that holds it with that part's sha256 from the manifest."""

    model_config = ConfigDict(extra="forbid")

    chunk: int = Field(ge=0)
    passthrough: dict[str, Any]
    inputs: dict[str, Any]
    prediction: Any
    probabilities: list[float] | None = None
    model_version: int
    part: str
    part_sha256: str


class RowExplanation(BaseModel):
    """GET /v1/models/{name}/batch/{job}/rows/{row}: the rows of a job whose pass-through `column`
    is `row`, and what scored them."""

    model_config = ConfigDict(extra="forbid")

    job_id: str
    model: str
    version: int
    artifact_sha256: str
    input: InputRef
    column: str
    row: str
    rows: list[ExplainedRow]


class Manifest(BaseModel):
    """`_manifest.json` of a job that succeeded."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    job_id: str
    model: str
    version: int
    artifact_sha256: str
    input: InputRef
    requested_by: str
    started_at: datetime | None
    finished_at: datetime
    rows: int
    scored: int
    rejected: int
    reasons: dict[str, int]
    parts: list[PartRef]
    rejects: list[PartRef]
    captured: int = 0  # scored rows sampled into captures/ for monitoring
    captures: list[str] = Field(default_factory=list)  # their capture objects' keys


def report_key(model: str, job: str, chunk: int) -> str:
    return f"{PREDICTIONS_PREFIX}{model}/{job}/_chunks/part-{chunk:05d}.json"
