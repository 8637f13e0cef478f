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

from pydantic import BaseModel, ConfigDict, Field

from functions.models.errors import InvalidInput

PREDICTIONS_PREFIX = "predictions/"
OUTPUT_COLUMNS = ("prediction", "probabilities", "model_version")
REJECT_COLUMNS = ("chunk", "row", "reason")
MAX_PASSTHROUGH = 20


class BatchInputInvalid(InvalidInput):
    """The input cannot be scored as given (unsupported format, unreadable, a feature column or a
    pass-through column missing): nothing is written."""


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
