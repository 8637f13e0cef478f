"""Lineage and governance replies: how a version was made, who let it in, what happened to it.

    production periods -> version -> training run -> dataset version (object key, S3 version id,
    sha256, contract version, validation report) -> evaluation (metrics, gates, comparison with the
    then-production version) -> approval (who, when, why)

Every link that could not be resolved is named in `Lineage.missing`, never silently dropped.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from functions.models.audit import AuditEvent
from functions.models.expressions import MAX_DERIVED_FEATURES, DerivedFeature
from functions.models.registry import (
    MAX_FEATURES,
    MAX_VIEWS,
    Artifact,
    Feature,
    FeatureViewUse,
    GateVerdict,
    ImportedFrom,
    VersionStatus,
)

MAX_EVENTS = 1000
MAX_OTHER_MATCHES = 100
MAX_BATCH_JOBS = 100  # newest jobs listed in a lineage; `batch_jobs_total` counts them all


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ProductionPeriod(_Model):
    started: str  # ISO time
    ended: str = ""  # "" while still in production
    promoted_by: str = ""
    ended_by: str = ""
    ended_as: str = ""
    reason: str = ""


class RunLineage(_Model):
    run_id: str
    execution_arn: str = ""
    status: str = ""
    started_by: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    code_version: str = ""
    spec_name: str = ""
    spec_version: int = 0
    parameters: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    seed: int = 0
    source: Literal["trained", "imported"] = "trained"
    imported: ImportedFrom | None = None  # an imported version's origin (ModelVersion.imported)


class DatasetLineage(_Model):
    dataset: str
    version: int
    bucket: str = ""
    key: str
    version_id: str = ""
    sha256: str
    size_bytes: int | None = None
    rows: int | None = None
    contract_version: int = 0
    report_uri: str = ""
    report_verdict: str = ""  # the validation report's verdict, when it could be read
    source_key: str = ""
    source_version_id: str = ""
    uploaded_by: str = ""
    created_at: datetime | None = None


class Comparison(_Model):
    """The candidate against the version in production when it was evaluated."""

    production_version: int | None = None
    production_metrics: dict[str, float] = Field(default_factory=dict)
    primary_metric: str = ""
    delta: float | None = None  # candidate minus production on the primary metric
    source: Literal["approval", "gates", "none"] = "none"


class EvaluationLineage(_Model):
    metrics: dict[str, float] = Field(default_factory=dict)
    primary_metric: str = ""
    gates: list[GateVerdict] = Field(default_factory=list)
    passed: bool = True
    comparison: Comparison = Field(default_factory=Comparison)


class ApprovalLineage(_Model):
    status: str  # APPROVED | REJECTED | EXPIRED | PENDING
    who: str = ""
    at: datetime | None = None
    reason: str = ""
    requested_at: datetime | None = None


class BatchJobUse(_Model):
    """A batch job that scored with the version: where its predictions are and how it ended."""

    job_id: str
    status: str
    requested_by: str = ""
    requested_at: datetime
    finished_at: datetime | None = None
    rows: int = 0
    scored: int = 0
    rejected: int = 0
    output_prefix: str = ""


class Lineage(_Model):
    model: str
    version: int
    status: VersionStatus
    created_at: datetime
    production_periods: list[ProductionPeriod] = Field(default_factory=list)
    run: RunLineage
    dataset: DatasetLineage
    evaluation: EvaluationLineage
    approval: ApprovalLineage | None = None
    artifacts: dict[str, Artifact] = Field(default_factory=dict)
    features: list[Feature] = Field(default_factory=list, max_length=MAX_FEATURES)
    graph_inputs: dict[str, str] = Field(default_factory=dict, max_length=MAX_FEATURES)  # as ModelVersion's
    pipeline_features: list[Feature] = Field(default_factory=list, max_length=MAX_FEATURES)  # as ModelVersion's
    derived: list[DerivedFeature] = Field(default_factory=list, max_length=MAX_DERIVED_FEATURES)  # as ModelVersion's
    feature_views: list[FeatureViewUse] = Field(default_factory=list, max_length=MAX_VIEWS)  # as ModelVersion's
    event_time: str = ""  # as ModelVersion's
    reasons: list[str] = Field(default_factory=list)
    events: list[AuditEvent] = Field(default_factory=list, max_length=MAX_EVENTS)
    missing: list[str] = Field(default_factory=list)  # links that could not be resolved, and why
    batch_jobs: list[BatchJobUse] = Field(default_factory=list, max_length=MAX_BATCH_JOBS)  # newest first
    batch_jobs_total: int = 0


MAX_LOOKUP_ROWS = 1_000


class CaptureMatch(_Model):
    """One captured request with the id asked about (its rows share version, variant and time)."""

    version: int
    variant: str = ""
    time: str = ""
    capture_key: str = ""
    # a version trained through feature views: per captured row, per view, the lookup's status and
    # the source dataset version and event time its values came from (the Explanation shows the
    # newest match's; not serialized here)
    lookups: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_LOOKUP_ROWS, exclude=True)


class Explanation(_Model):
    """Which version answered a prediction, found in the model's capture lines by request id.

    Request ids are chosen by callers and not unique: when several captured requests of the model
    carry the id, the newest answers, `matches` counts them and `other_matches` lists the rest
    (`searched_all` False: the search stopped at its object limit, older captures unread)."""

    request_id: str
    model: str
    version: int
    variant: str = ""
    time: str = ""
    capture_key: str = ""
    lookups: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_LOOKUP_ROWS)  # see CaptureMatch
    lineage: Lineage
    matches: int = Field(1, ge=1)
    other_matches: list[CaptureMatch] = Field(default_factory=list, max_length=MAX_OTHER_MATCHES)
    searched_all: bool = True


class AuditList(_Model):
    events: list[AuditEvent] = Field(default_factory=list, max_length=MAX_EVENTS)
    next_token: str | None = None  # more events: pass it as ?next_token= for the next page


class RetireRequest(_Model):
    """Body of POST /v1/models/{name}/versions/{v}/retire. Who retires is never in the body."""

    reason: str = Field(max_length=4096)
    # the production version, with no canary, may be retired only with this: the model then serves
    # nothing (and loses its per-model alarms) until another version is released
    withdraw: bool = False

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("a reason is required")
        return value


class RestoreRequest(_Model):
    reason: str = Field(default="", max_length=4096)


class Retired(_Model):
    model: str
    version: int
    status: VersionStatus
    reason: str
    tagged: list[str] = Field(default_factory=list)  # artifact uris tagged for the colder class
    card_uri: str = ""


class Restored(_Model):
    model: str
    from_version: int
    version: int
    status: VersionStatus
    verified: dict[str, str] = Field(default_factory=dict)  # artifact name -> sha256 verified


class ModelCard(_Model):
    model: str
    version: int
    markdown: str
    html_uri: str = ""
    markdown_uri: str = ""


class ExportDay(_Model):
    """Body of POST /v1/audit/export: the UTC day to export (default: yesterday)."""

    day: date | None = None


class Exported(_Model):
    day: date
    events: int = Field(ge=0)
    key: str
    version_id: str = ""
    sha256: str
