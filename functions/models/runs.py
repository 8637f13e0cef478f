"""Lifecycle runs: the workflow's state between steps, and the run record.

Workflow state (the execution's JSON; each task adds its result under its own key):
    {"spec": "churn", "spec_version": 3, "dataset": "churn", "dataset_version": 7,
     "started_by": "...",
     "run": RunStarted, "train": TrainResult, "evaluation": EvaluationResult,
     "registered": Registered, "error": {"Error": ..., "Cause": ...}}

Run record key layout (metadata table):
    pk=RUN#<model>  sk=RUN#<run id>     RunRecord  (gsi1pk=RUNS#<model>, gsi1sk=<started UTC>#<run id>)
The run id is the execution name `<model>-<dataset version>-<spec version>`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from functions.models.expressions import MAX_DERIVED_FEATURES, DerivedFeature
from functions.models.registry import (
    MAX_FEATURES,
    MAX_VIEWS,
    NAME_PATTERN,
    Artifact,
    Feature,
    FeatureViewUse,
    GateVerdict,
    ImportedFrom,
    VersionStatus,
    graph_inputs_problem,
)

RUNS_INDEX_PK = "RUNS"  # runs index partition: RUNS#<model>, sorted by start time (runs_index_sk)
GATE_FAILED_ERROR = "GateFailed"  # the execution's error when a gate failed (version REJECTED)
MAX_EXECUTION_NAME = 80


def run_pk(model: str) -> str:
    return f"RUN#{model}"


def run_sk(run_id: str) -> str:
    return f"RUN#{run_id}"


def runs_index_pk(model: str) -> str:
    return f"{RUNS_INDEX_PK}#{model}"


def runs_index_sk(started_at: datetime, run_id: str) -> str:
    """`<UTC start, microseconds>#<run id>`: unique, and its order is start-time order, so pages
    of a model's runs read newest first never skip or repeat a run (a start time is never changed)."""
    return f"{started_at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}#{run_id}"


def execution_name(model: str, dataset_version: int, spec_version: int, trigger: str = "") -> str:
    """`<model>-<dataset version>-<spec version>`: a second start of the same triple is a no-op.

    A deliberate retraining names what triggered it (`-r<check id>`): it is a new run on the same
    data, and a second delivery of the same trigger is still a no-op."""
    suffix = f"-{dataset_version}-{spec_version}" + (f"-{trigger}" if trigger else "")
    return model[: MAX_EXECUTION_NAME - len(suffix)] + suffix


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class StepName(StrEnum):
    START = "start"
    TRAIN = "train"
    VERIFY_IMPORT = "verify_import"  # an import run's step in place of train
    EVALUATE = "evaluate"
    REGISTER = "register"


class RunStatus(StrEnum):
    RUNNING = "RUNNING"
    REGISTERED = "REGISTERED"  # a version registered, waiting for approval
    REJECTED = "REJECTED"  # a version registered as REJECTED (a gate failed)
    FAILED = "FAILED"  # a step failed: before Register, nothing registered; after it, `version` was not released


class StepRecord(_Model):
    name: str = Field(min_length=1, max_length=64)
    started_at: datetime
    ended_at: datetime | None = None
    outcome: Literal["running", "succeeded", "failed"] = "running"
    error: str = ""  # the typed error's name, as the state machine saw it
    cause: str = Field(default="", max_length=4_000)
    attempt: int = Field(default=1, ge=1)


class RunRecord(_Model):
    run_id: str = Field(min_length=1, max_length=MAX_EXECUTION_NAME)
    model: str = Field(pattern=NAME_PATTERN)
    spec_name: str
    spec_version: int = Field(ge=1)
    dataset: str
    dataset_version: int = Field(ge=1)
    execution_arn: str = ""
    started_by: str = ""
    status: RunStatus = RunStatus.RUNNING
    started_at: datetime
    ended_at: datetime | None = None
    steps: list[StepRecord] = Field(default_factory=list, max_length=64)
    version: int | None = None  # the registered version
    # the train step's point-in-time joins: per view, its version, source version and how many
    # label rows matched, were missing or expired (imputed by the pipeline)
    feature_views: list[FeatureViewUse] = Field(default_factory=list, max_length=MAX_VIEWS)
    error: str = ""
    cause: str = Field(default="", max_length=4_000)


class LifecycleInput(BaseModel):
    """What starts an execution (and stays at the top of its state)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    spec: str = Field(pattern=NAME_PATTERN)
    spec_version: int = Field(ge=1)
    dataset: str = Field(pattern=NAME_PATTERN)
    dataset_version: int = Field(ge=1)
    started_by: str = Field(default="", max_length=2_048)
    # the spec's release strategy, where the approval chain reads it ($.release)
    release: dict[str, Any] | None = None
    # an import run (functions/models/imports.py): verify and evaluate this upload instead of
    # training; its `spec` names the model and `spec_version` is 1 (there is no spec record)
    import_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")


class DatasetRef(_Model):
    """The exact object a run trained on: the lineage of every version."""

    dataset: str
    version: int = Field(ge=1)
    bucket: str
    key: str
    version_id: str = ""
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    contract_version: int = Field(default=0, ge=0)
    format: Literal["parquet", "csv", "jsonl", ""] = ""
    columns: list[Feature] = Field(default_factory=list, max_length=1_000)  # types from the contract


class RunStarted(_Model):
    run_id: str
    model: str
    compute: Literal["lambda", "sagemaker"] = "lambda"
    started_at: datetime
    data_uri: str = ""  # s3://bucket/key of the dataset version (the SageMaker job's input)


class TrainResult(_Model):
    run_id: str
    model: str
    spec_name: str
    spec_version: int
    dataset: DatasetRef
    task: Literal["classification", "regression"]
    features: list[Feature]
    graph_inputs: dict[str, str] = Field(default_factory=dict, max_length=MAX_FEATURES)  # see ModelVersion
    pipeline_features: list[Feature] = Field(default_factory=list, max_length=MAX_FEATURES)  # see ModelVersion
    derived: list[DerivedFeature] = Field(default_factory=list, max_length=MAX_DERIVED_FEATURES)  # see ModelVersion
    feature_views: list[FeatureViewUse] = Field(default_factory=list, max_length=MAX_VIEWS)  # see ModelVersion
    event_time: str = ""
    allow_request_overrides: bool = False  # see ModelVersion
    target: str
    class_labels: list[str] | None = None
    artifacts: dict[str, Artifact]  # "skops", "onnx", "profile" (and "training_set" with feature views)
    parameters: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    seed: int
    train_rows: int
    holdout_rows: int
    timings: dict[str, float] = Field(default_factory=dict)
    imported: ImportedFrom | None = None  # an import run's candidate: trained elsewhere

    @model_validator(mode="after")
    def _graph_inputs_cover_the_features(self) -> TrainResult:
        problem = graph_inputs_problem(self.features, self.graph_inputs)
        if problem:
            raise ValueError(f"graph_inputs do not match the features: {problem}")
        return self


class LatencyFigures(_Model):
    calls: int
    median_ms: float
    p99_ms: float


class EvaluationResult(_Model):
    metrics: dict[str, float]
    primary_metric: str
    production_version: int | None = None
    production_metrics: dict[str, float] = Field(default_factory=dict)
    parity_max_abs_diff: float
    parity_label_mismatches: int
    latency: LatencyFigures
    gates: list[GateVerdict]
    passed: bool
    timings: dict[str, float] = Field(default_factory=dict)
    # the reference profile with the holdout outputs (prediction drift); replaces the training one
    profile: Artifact | None = None


class Registered(_Model):
    model: str
    version: int
    status: VersionStatus
    reasons: list[str] = Field(default_factory=list)


class StepFailure(BaseModel):
    """Step Functions' Catch output: {"Error": name, "Cause": text}."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    error: str = Field(default="", alias="Error")
    cause: str = Field(default="", alias="Cause")


class LifecycleState(LifecycleInput):
    run: RunStarted | None = None
    train: TrainResult | None = None
    evaluation: EvaluationResult | None = None
    registered: Registered | None = None
    error: StepFailure | None = None


class RunRecordRequest(BaseModel):
    """The run-record task: `start` a run, `fail` it (from a Catch), or `finish` it."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["start", "fail", "finish"]
    step: str = ""
    state: LifecycleState
    execution_name: str = ""
    execution_arn: str = ""


# -- registry views (GET /v1/models...) -------------------------------------------------------
class ModelSummary(_Model):
    name: str
    latest_version: int
    production_version: int | None = None
    candidate_version: int | None = None
    candidate_weight: float = 0.0
    versions: int = 0
    by_status: dict[str, int] = Field(default_factory=dict)
    updated_at: datetime


class VersionSummary(_Model):
    version: int
    status: VersionStatus
    primary_metric: str
    primary_value: float | None = None
    dataset: str
    dataset_version: int
    spec_version: int
    created_at: datetime


class TrainRequest(_Model):
    spec: str = Field(pattern=NAME_PATTERN)
    dataset_version: int = Field(ge=1)


class TrainStarted(_Model):
    execution_arn: str
    execution_name: str
    started: bool
