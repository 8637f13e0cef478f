"""Request bodies and list replies of the control API that are not domain records themselves
(the routes declare them, so the router validates them and the OpenAPI document describes them)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from functions.models.datasets import ContractRecord, DatasetSummary, DatasetVersion
from functions.models.registry import NAME_PATTERN
from functions.models.runs import ModelSummary, RunRecord, VersionSummary
from functions.models.specs import TrainingSpec


class SpecBody(TrainingSpec):
    """Body of PUT /v1/specs/{name}: a training spec; its name is the route's (when the body names
    one too, the two must agree)."""

    name: str | None = Field(default=None, pattern=NAME_PATTERN)  # type: ignore[assignment]


class _Reply(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetList(_Reply):
    datasets: list[DatasetSummary]
    next_token: str | None = None  # more datasets: pass it as ?next_token= for the next page


class ContractList(_Reply):
    dataset: str
    contracts: list[ContractRecord]


class DatasetVersionList(_Reply):
    dataset: str
    versions: list[DatasetVersion]


class ModelList(_Reply):
    models: list[ModelSummary]
    next_token: str | None = None  # more models: pass it as ?next_token= for the next page


class VersionList(_Reply):
    model: str
    versions: list[VersionSummary]
    next_token: str | None = None  # more versions: pass it as ?next_token= for the next page


class RunList(_Reply):
    model: str
    runs: list[RunRecord]
    next_token: str | None = None  # more runs: pass it as ?next_token= for the next page


class FieldProblem(_Reply):
    field: str  # a body field ("columns.0.type", "body" for the whole body), "path.NAME" or "query.NAME"
    reason: str
    type: str | None = None


class ErrorReply(_Reply):
    """Every error reply: 400 InvalidInput (a malformed body, path or query parameter; `details`
    names each field), 403, 404, 409, 410, 429 and 503 (with `retry_after_seconds` and a
    Retry-After header), 500 (only a correlation id)."""

    error: str
    message: str
    details: list[FieldProblem] | None = None
    retry_after_seconds: int | None = None
    correlation_id: str | None = None
