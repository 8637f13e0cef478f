"""Registry records: models, versions, aliases. The shared vocabulary of lifecycle, approvals,
serving, monitoring and governance.

Key layout (registry table, keys `pk`/`sk`, index `gsi1` on `gsi1pk`/`gsi1sk`):
    pk=MODEL#<name>  sk=MODEL              ModelRecord   (gsi1pk=MODELS, gsi1sk=<name>)
    pk=MODEL#<name>  sk=VERSION#<%08d>     ModelVersion
Audit events live in the metadata table (see functions/models/audit.py once it exists):
    pk=AUDIT#<target>  sk=<iso time>#<event id>   (gsi1pk=AUDIT, gsi1sk=<iso time>#<event id>)
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from functions.models.expressions import MAX_DERIVED_FEATURES, DerivedFeature

NAME_PATTERN = r"^[a-z][a-z0-9-]{0,62}$"


def model_pk(name: str) -> str:
    return f"MODEL#{name}"


MAX_VERSION = 99_999_999  # version_sk pads to 8 digits: above this the keys stop sorting by version


def version_sk(version: int) -> str:
    return f"VERSION#{version:08d}"


MODEL_SK = "MODEL"
MODELS_INDEX_PK = "MODELS"


class VersionStatus(StrEnum):
    PENDING_APPROVAL = "PENDING_APPROVAL"
    APPROVED = "APPROVED"
    CANARY = "CANARY"
    PRODUCTION = "PRODUCTION"
    ARCHIVED = "ARCHIVED"
    RETIRED = "RETIRED"
    REJECTED = "REJECTED"
    ROLLED_BACK = "ROLLED_BACK"


S = VersionStatus
# The declared life of a version; anything else is an illegal transition.
TRANSITIONS: dict[VersionStatus, frozenset[VersionStatus]] = {
    S.PENDING_APPROVAL: frozenset({S.APPROVED, S.REJECTED}),
    S.APPROVED: frozenset({S.CANARY, S.PRODUCTION, S.REJECTED, S.RETIRED}),
    S.CANARY: frozenset({S.PRODUCTION, S.ROLLED_BACK}),
    S.PRODUCTION: frozenset({S.ARCHIVED, S.ROLLED_BACK, S.RETIRED}),  # RETIRED: only a withdrawal
    S.ARCHIVED: frozenset({S.PRODUCTION, S.RETIRED}),  # back to PRODUCTION only by rollback
    S.ROLLED_BACK: frozenset({S.RETIRED}),
    S.REJECTED: frozenset({S.RETIRED}),
    S.RETIRED: frozenset(),
}


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Artifact(_Record):
    """One stored file: never loaded unless its bytes hash to sha256."""

    uri: str = Field(pattern=r"^s3://[^/]+/.+")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0)


ColumnType = Literal["int", "float", "bool", "string", "category", "timestamp"]


class Feature(_Record):
    """One input feature as serving and monitoring see it."""

    name: str = Field(min_length=1, max_length=128)
    type: ColumnType
    nullable: bool = False
    categories: list[str] | None = Field(default=None, max_length=10_000)
    max_length: int | None = Field(default=None, ge=1)  # for strings


MAX_FEATURES = 1_000
MAX_VIEWS = 32


class FeatureViewUse(_Record):
    """A feature view version a model was trained through, the source dataset version its offline
    layout came from, and how the point-in-time join fared (see functions/models/features_offline.py
    PitJoinCounts): enough to rebuild the identical training set."""

    view: str = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1)
    entity_keys: list[str] = Field(min_length=1, max_length=8)
    timestamp_column: str
    ttl_seconds: int = Field(gt=0)
    features: list[Feature] = Field(min_length=1, max_length=MAX_FEATURES)  # the view's features joined, as typed there
    source: str = Field(pattern=NAME_PATTERN)
    source_version: int = Field(ge=1)
    source_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    layout: Artifact  # the offline layout (sorted Parquet) the join read
    matched: int = Field(default=0, ge=0)
    missing: int = Field(default=0, ge=0)
    expired: int = Field(default=0, ge=0)

    def columns(self) -> list[Feature]:
        """The joined columns (`view:feature`) with the view's types; any may be null."""
        return [f.model_copy(update={"name": f"{self.view}:{f.name}", "nullable": True}) for f in self.features]


def monitored_derived(pipeline_features: list[Feature], derived: list[DerivedFeature]) -> list[Feature]:
    """The derived features a pipeline takes, as monitoring sees them: the values the merged ONNX
    graph computed (float32, or strings), so numbers are profiled as float and strings as string;
    nullable (NaN or "" is a null)."""
    kinds = {d.name: d.type for d in derived}
    return [
        Feature(name=f.name, type="string" if kinds[f.name] == "string" else "float", nullable=True)
        for f in pipeline_features
        if f.name in kinds
    ]


def graph_input_names(features: list[Feature], graph_inputs: dict[str, str]) -> list[str]:
    """The ONNX graph input each feature feeds, in feature order. An empty mapping (versions
    registered before the mapping was recorded) means each input is named as its feature."""
    return [graph_inputs.get(f.name, f.name) for f in features]


def graph_inputs_problem(features: list[Feature], graph_inputs: dict[str, str]) -> str:
    """Why a feature -> graph input mapping cannot be used with these features ("" when it can):
    it must map every feature, and only features, to distinct input names."""
    if not graph_inputs:
        return ""
    names = [f.name for f in features]
    unmapped = [n for n in names if n not in graph_inputs]
    unknown = sorted(set(graph_inputs) - set(names))
    shared = sorted(i for i, n in Counter(graph_inputs.values()).items() if n > 1)
    problems = [
        f"{label} {values[:20]}" + (f" and {len(values) - 20} more" if len(values) > 20 else "")
        for label, values in (
            ("features without a graph input:", unmapped),
            ("graph inputs mapped from no feature:", unknown),
            ("graph inputs fed by more than one feature:", shared),
        )
        if values
    ]
    return "; ".join(problems)


class GateVerdict(_Record):
    gate: str
    passed: bool
    value: float | None = None
    threshold: float | None = None
    reason: str = ""


def failed_gate_reasons(verdicts: list[GateVerdict]) -> list[str]:
    """The reasons a version is REJECTED, one per failed gate."""
    return [f"gate {v.gate} failed: {v.reason}" for v in verdicts if not v.passed]


class ImportedFrom(_Record):
    """Where an imported version came from: the import (its upload id), who requested it, the
    source URL and commit they gave, and the sha256 of the verified ONNX bytes."""

    import_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    requested_by: str = ""
    requested_at: datetime | None = None
    source_url: str | None = None
    source_commit: str | None = None
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    description: str = ""


class ModelVersion(_Record):
    model: str = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1)
    status: VersionStatus
    created_at: datetime
    updated_at: datetime
    task: Literal["classification", "regression"]
    features: list[Feature] = Field(min_length=1, max_length=MAX_FEATURES)
    # feature name -> the ONNX graph input it feeds (names the data contract allows, such as
    # "mean radius", are not valid graph input names); empty: inputs named as the features
    graph_inputs: dict[str, str] = Field(default_factory=dict, max_length=MAX_FEATURES)
    # With derived features the ONNX graph is transformations + pipeline: `features` are the raw
    # fields it takes (what a request carries), `pipeline_features` the fitted pipeline's inputs
    # (raw and derived, in the spec's order) and `derived` the definitions it was trained with.
    # Empty for versions without derived features (their pipeline takes `features`).
    pipeline_features: list[Feature] = Field(default_factory=list, max_length=MAX_FEATURES)
    derived: list[DerivedFeature] = Field(default_factory=list, max_length=MAX_DERIVED_FEATURES)
    # the feature views (versions, source dataset versions) its training set was joined from, and
    # the label dataset's event-time column the join used; empty for versions without view features
    feature_views: list[FeatureViewUse] = Field(default_factory=list, max_length=MAX_VIEWS)
    event_time: str = ""
    # prediction-time lookups: whether a request may send a looked-up feature's value itself
    allow_request_overrides: bool = False
    target: str
    class_labels: list[str] | None = None  # classifiers: label order of the probabilities
    artifacts: dict[str, Artifact] = Field(default_factory=dict)  # "onnx", "skops", "profile", "card"
    metrics: dict[str, float] = Field(default_factory=dict)
    primary_metric: str = ""
    gates: list[GateVerdict] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)  # why REJECTED / ROLLED_BACK / RETIRED
    # lineage
    spec_name: str = ""
    spec_version: int = 0
    dataset: str = ""
    dataset_version: int = 0
    contract_version: int = 0
    data_key: str = ""
    data_version_id: str = ""
    data_sha256: str = ""
    run_id: str = ""  # the workflow execution ARN (or name) that trained it
    started_by: str = ""  # identity that started the training run (four-eyes)
    source: Literal["trained", "imported"] = "trained"  # imported: trained elsewhere, see `imported`
    imported: ImportedFrom | None = None
    code_version: str = ""
    parameters: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    seed: int = 0
    timings: dict[str, float] = Field(default_factory=dict)
    production_periods: list[dict[str, str]] = Field(default_factory=list)
    restored_from: int | None = Field(default=None, ge=1)  # re-registered from this (retired) version

    @model_validator(mode="after")
    def _graph_inputs_cover_the_features(self) -> ModelVersion:
        problem = graph_inputs_problem(self.features, self.graph_inputs)
        if problem:
            raise ValueError(f"graph_inputs do not match the features: {problem}")
        return self


class ModelRecord(_Record):
    """The model and its aliases. `revision` is the optimistic lock for alias moves."""

    name: str = Field(pattern=NAME_PATTERN)
    latest_version: int = Field(0, ge=0)
    production_version: int | None = None
    candidate_version: int | None = None
    candidate_weight: float = Field(0.0, ge=0, le=1)
    shadow: bool = False
    previous_production: list[int] = Field(default_factory=list)
    revision: int = Field(0, ge=0)
    created_at: datetime
    updated_at: datetime
