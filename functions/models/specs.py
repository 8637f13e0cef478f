"""Training specs: what to train on which dataset, and the gates a new version must pass.

A spec never imports scikit-learn (the API Lambda validates specs without it): estimators and
their parameters are checked against an allow-list here, the values' types by scikit-learn when
the train step builds the estimator.

Key layout (metadata table, keys `pk`/`sk`, index `gsi1` on `gsi1pk`/`gsi1sk`):
    pk=SPEC#<name>  sk=SPEC                 the spec's head: latest version number (the counter)
    pk=SPEC#<name>  sk=VERSION#<%08d>       SpecRecord (gsi1pk=SPECS, gsi1sk=<name>#<%08d>)
Old versions are never deleted or changed.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from functions.models.approvals import ReleaseStrategy
from functions.models.contracts import COLUMN_NAME_PATTERN
from functions.models.expressions import MAX_DERIVED_FEATURES, DerivedFeature
from functions.models.registry import NAME_PATTERN

SPEC_HEAD_SK = "SPEC"
SPECS_INDEX_PK = "SPECS"
VIEW_SEPARATOR = ":"  # a feature named `view:feature` is looked up in a feature view
MAX_SPEC_VIEWS = 32


def split_view_feature(name: str) -> tuple[str, str] | None:
    """(view, feature) of a `view:feature` name; None for a raw column or a derived feature."""
    view, sep, feature = name.partition(VIEW_SEPARATOR)
    return (view, feature) if sep else None


def spec_pk(name: str) -> str:
    return f"SPEC#{name}"


def spec_version_sk(version: int) -> str:
    return f"VERSION#{version:08d}"


Task = Literal["classification", "regression"]
ParamValue = str | int | float | bool | None


class EstimatorName(StrEnum):
    """Only estimators that skl2onnx converts (checked by tests/unit/test_training*.py)."""

    HIST_GRADIENT_BOOSTING_CLASSIFIER = "HistGradientBoostingClassifier"
    HIST_GRADIENT_BOOSTING_REGRESSOR = "HistGradientBoostingRegressor"
    RANDOM_FOREST_CLASSIFIER = "RandomForestClassifier"
    RANDOM_FOREST_REGRESSOR = "RandomForestRegressor"
    LOGISTIC_REGRESSION = "LogisticRegression"
    RIDGE = "Ridge"


E = EstimatorName
ESTIMATOR_TASK: dict[EstimatorName, Task] = {
    E.HIST_GRADIENT_BOOSTING_CLASSIFIER: "classification",
    E.HIST_GRADIENT_BOOSTING_REGRESSOR: "regression",
    E.RANDOM_FOREST_CLASSIFIER: "classification",
    E.RANDOM_FOREST_REGRESSOR: "regression",
    E.LOGISTIC_REGRESSION: "classification",
    E.RIDGE: "regression",
}
# Linear models get standardized numeric features.
SCALED_ESTIMATORS = frozenset({E.LOGISTIC_REGRESSION, E.RIDGE})

_HGB = {"learning_rate", "max_iter", "max_leaf_nodes", "max_depth", "min_samples_leaf", "l2_regularization",
        "max_bins", "early_stopping", "validation_fraction", "n_iter_no_change", "tol"}  # fmt: skip
_RF = {"n_estimators", "max_depth", "min_samples_split", "min_samples_leaf", "max_features", "max_leaf_nodes",
       "bootstrap", "max_samples", "min_impurity_decrease"}  # fmt: skip
# The parameters a spec may set; random_state comes from split.seed, n_jobs from the runtime.
ALLOWED_PARAMS: dict[EstimatorName, frozenset[str]] = {
    E.HIST_GRADIENT_BOOSTING_CLASSIFIER: frozenset(_HGB | {"class_weight"}),
    E.HIST_GRADIENT_BOOSTING_REGRESSOR: frozenset(_HGB | {"loss", "quantile"}),
    E.RANDOM_FOREST_CLASSIFIER: frozenset(_RF | {"criterion", "class_weight"}),
    E.RANDOM_FOREST_REGRESSOR: frozenset(_RF | {"criterion"}),
    E.LOGISTIC_REGRESSION: frozenset({"C", "l1_ratio", "solver", "max_iter", "tol", "class_weight", "fit_intercept"}),
    E.RIDGE: frozenset({"alpha", "fit_intercept", "solver", "max_iter", "tol"}),
}


class Metric(StrEnum):
    ACCURACY = "accuracy"
    F1 = "f1"  # macro average
    ROC_AUC = "roc_auc"  # one-vs-rest for more than two classes
    LOG_LOSS = "log_loss"
    RMSE = "rmse"
    MAE = "mae"
    R2 = "r2"


M = Metric
METRIC_TASK: dict[Metric, Task] = {
    M.ACCURACY: "classification",
    M.F1: "classification",
    M.ROC_AUC: "classification",
    M.LOG_LOSS: "classification",
    M.RMSE: "regression",
    M.MAE: "regression",
    M.R2: "regression",
}
LOWER_IS_BETTER = frozenset({M.LOG_LOSS, M.RMSE, M.MAE})
DEFAULT_METRICS: dict[Task, list[Metric]] = {
    "classification": [M.ACCURACY, M.F1, M.ROC_AUC, M.LOG_LOSS],
    "regression": [M.RMSE, M.MAE, M.R2],
}


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class EstimatorSpec(_Spec):
    name: EstimatorName
    params: dict[str, ParamValue] = Field(default_factory=dict, max_length=32)

    @model_validator(mode="after")
    def _allowed(self) -> EstimatorSpec:
        unknown = sorted(set(self.params) - ALLOWED_PARAMS[self.name])
        if unknown:
            raise ValueError(
                f"{self.name} does not accept {unknown} here; allowed: {sorted(ALLOWED_PARAMS[self.name])}"
            )
        return self


class SplitSpec(_Spec):
    holdout_fraction: float = Field(default=0.2, ge=0.05, le=0.5)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    stratify: bool = True  # classification only


class GateSpec(_Spec):
    """Every set gate must pass; ONNX parity always applies."""

    min_primary: float | None = None  # for higher-is-better primary metrics
    max_primary: float | None = None  # for lower-is-better primary metrics
    max_regression: float | None = Field(default=None, ge=0)  # allowed worsening of the primary metric vs production
    max_p99_latency_ms: float | None = Field(default=None, gt=0)  # ONNX single-row predict, in-process
    max_artifact_bytes: int | None = Field(default=None, gt=0)  # each of the ONNX and skops files
    parity_tolerance: float = Field(default=1e-5, gt=0, le=1e-2)


class TrainingSpec(_Spec):
    name: str = Field(pattern=NAME_PATTERN)  # the spec's name (a contract names it)
    model: str = Field(pattern=NAME_PATTERN)  # the registry model it produces versions of
    dataset: str = Field(pattern=NAME_PATTERN)
    target: str = Field(min_length=1, max_length=128)
    # raw columns of the dataset, `view:feature` names of feature-view features (joined point in
    # time) and names of `derived` features, in the pipeline's input order
    features: list[str] = Field(min_length=1, max_length=1_000)
    # the label dataset's event-time column: each row gets the view values known at that time
    event_time: str | None = Field(default=None, pattern=COLUMN_NAME_PATTERN)
    # view name -> the version the spec reads; filled in (latest) for every view the spec names
    # when it is stored, so a later view version never changes what an existing spec trains on
    views: dict[str, int] = Field(default_factory=dict, max_length=MAX_SPEC_VIEWS)
    # at prediction time: may a request send a looked-up view feature's value itself (overriding
    # the online store's)? Off: such a request is refused with a 400 naming the feature
    allow_request_overrides: bool = False
    # features computed from raw columns by expressions (functions/logic/expressions.py), compiled
    # into the served ONNX graph; type-checked against the dataset's contract when the spec is stored
    derived: list[DerivedFeature] = Field(default_factory=list, max_length=MAX_DERIVED_FEATURES)
    task: Task
    estimator: EstimatorSpec
    split: SplitSpec = Field(default_factory=lambda: SplitSpec())
    metrics: list[Metric] = Field(default_factory=list, max_length=16)  # empty: the task's defaults
    primary_metric: Metric | None = None  # default: the first metric
    gates: GateSpec = Field(default_factory=lambda: GateSpec())
    compute: Literal["lambda", "sagemaker"] = "lambda"  # where the train step runs
    latency_calls: int = Field(default=300, ge=50, le=5_000)  # single-row ONNX calls measured
    description: str = Field(default="", max_length=1_000)
    intended_use: str = Field(default="", max_length=2_000)  # the model card's "intended use"
    limitations: str = Field(default="", max_length=2_000)  # the model card's "limitations"
    release: ReleaseStrategy = Field(default_factory=lambda: ReleaseStrategy())  # after approval

    @model_validator(mode="after")
    def _coherent(self) -> TrainingSpec:
        if len(set(self.features)) != len(self.features):
            raise ValueError("features must be unique")
        if self.target in self.features:
            raise ValueError(f"target {self.target!r} cannot also be a feature")
        derived = [d.name for d in self.derived]
        if len(set(derived)) != len(derived):
            raise ValueError("derived feature names must be unique")
        if self.target in derived:
            raise ValueError(f"derived feature {self.target!r} has the name of the target")
        for name in self.features:
            parts = split_view_feature(name)
            if parts is None:
                continue
            if not re.match(NAME_PATTERN, parts[0]) or not re.match(COLUMN_NAME_PATTERN, parts[1]):
                raise ValueError(f"feature {name!r}: a view feature is named view:feature (a view name, a column name)")
            if self.event_time is None:
                raise ValueError(
                    f"feature {name!r} comes from feature view {parts[0]!r}: set event_time to the label "
                    "dataset's event-time column, the time each row's view values are looked up at"
                )
        bad = sorted(v for v, n in self.views.items() if not re.match(NAME_PATTERN, v) or n < 1)
        if bad:
            raise ValueError(f"views: {bad} are not a view name with a version >= 1")
        if self.event_time is not None and self.event_time == self.target:
            raise ValueError(f"event_time {self.event_time!r} is the target")
        if ESTIMATOR_TASK[self.estimator.name] != self.task:
            raise ValueError(f"{self.estimator.name} is not a {self.task} estimator")
        if not self.metrics:
            self.metrics = list(DEFAULT_METRICS[self.task])
        wrong = [m.value for m in self.metrics if METRIC_TASK[m] != self.task]
        if wrong:
            raise ValueError(f"metrics {wrong} do not apply to {self.task}")
        if self.primary_metric is None:
            self.primary_metric = self.metrics[0]
        elif self.primary_metric not in self.metrics:
            self.metrics.append(self.primary_metric)
        lower = self.primary_metric in LOWER_IS_BETTER
        if lower and self.gates.min_primary is not None:
            raise ValueError(f"{self.primary_metric} is lower-is-better: use gates.max_primary, not min_primary")
        if not lower and self.gates.max_primary is not None:
            raise ValueError(f"{self.primary_metric} is higher-is-better: use gates.min_primary, not max_primary")
        return self

    @property
    def view_features(self) -> dict[str, list[str]]:
        """View name -> the view features `features` lists, in order."""
        out: dict[str, list[str]] = {}
        for name in self.features:
            parts = split_view_feature(name)
            if parts is not None:
                out.setdefault(parts[0], []).append(parts[1])
        return out

    @property
    def primary(self) -> Metric:
        assert self.primary_metric is not None  # set by the validator
        return self.primary_metric

    @property
    def lower_is_better(self) -> bool:
        return self.primary in LOWER_IS_BETTER


class SpecRecord(_Spec):
    """One stored version of a spec."""

    name: str = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1)
    spec: TrainingSpec
    created_at: datetime
    created_by: str = ""
