"""Drift check configuration and report.

A report is written as JSON (this model) and rendered to a self-contained HTML page
(functions/logic/drift_report.py). Report key layout in the artifacts bucket (see dal/monitoring.py):
    reports/drift/<model>/<window end, %Y%m%dT%H%M%SZ>-<check id>.json|.html
"""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DRIFT_REPORT_FORMAT_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class DriftConfig(_Model):
    """Thresholds of a drift check; every field has a default that suits hourly checks."""

    correction: Literal["bonferroni", "benjamini-hochberg"] = "benjamini-hochberg"
    alpha: float = Field(default=0.01, gt=0, lt=1)  # family-wise (Bonferroni) or false-discovery (BH) level
    # rows needed, in the window and in the reference, for a feature's null-fraction test (fewer:
    # insufficient data); non-null values needed on both sides for its distribution test
    min_rows: int = Field(default=1_000, ge=1)
    min_ks_d: float = Field(default=0.05, ge=0, le=1)  # numeric effect: KS D ...
    min_psi: float = Field(default=0.1, ge=0)  # ... or PSI (numeric and categorical)
    min_js: float = Field(default=0.1, ge=0, le=1)  # categorical effect: Jensen-Shannon distance (base 2) ... or PSI
    # a null-fraction change counts as drift when significant and large in relative terms: Cohen's h
    # (|2 asin sqrt(p1) - 2 asin sqrt(p0)|, which grows as the base rate shrinks, so 1% -> 3% counts
    # and 40% -> 41% does not) at least min_null_h, or an absolute change of at least min_null_delta
    # (h >= 2 * delta always, so at the defaults the absolute gate adds nothing h does not)
    min_null_h: float = Field(default=0.1, ge=0, le=math.pi)
    min_null_delta: float = Field(default=0.05, ge=0, le=1)
    psi_bins: int = Field(default=10, ge=2, le=100)  # PSI on reference-quantile bins
    drift_share: float = Field(default=0.2, gt=0, le=1)  # model drifts when this share of checked features drift
    critical_features: list[str] = Field(default_factory=list, max_length=1_000)  # ... or any of these
    report_bins: int = Field(default=64, ge=4, le=512)  # histogram resolution kept in the report
    min_labels: int = Field(default=200, ge=1)  # labelled predictions needed for a performance verdict
    # prediction drift: holdout outputs needed in the reference profile (the window needs min_rows)
    min_output_reference_rows: int = Field(default=200, ge=1)
    # live data quality: a contract rule broken by more than this share of the window's rows fails
    max_violation_rate: float = Field(default=0.01, ge=0, le=1)
    max_performance_drop: float = Field(default=0.05, ge=0)  # accuracy/F1: absolute; RMSE/MAE: relative


class FeatureVerdict(StrEnum):
    # checked: the null-fraction test ran, and the distribution test too unless distribution_skipped says why
    NO_DRIFT = "no_drift"
    DRIFT = "drift"
    INSUFFICIENT_DATA = "insufficient_data"  # fewer than min_rows rows in the window or the reference
    MISSING_COLUMN = "missing_column"
    WRONG_TYPE = "wrong_type"


class ModelVerdict(StrEnum):
    NO_DRIFT = "no_drift"
    DRIFT = "drift"
    INSUFFICIENT_DATA = "insufficient_data"  # fewer rows than the minimum
    NO_DATA = "no_data"  # empty window
    SCHEMA_MISMATCH = "schema_mismatch"  # features missing or of the wrong type, no drift found elsewhere


class NumericStats(_Model):
    ks_d: float
    ks_p_value: float
    psi: float
    wasserstein: float  # in feature units, on the binned data
    wasserstein_std: float  # divided by the reference standard deviation (0 when it is 0)
    below_range_fraction: float  # current rows under the training minimum
    above_range_fraction: float  # ... over the training maximum
    reference_mean: float
    current_mean: float  # from the binned data
    reference_std: float


class CategoricalStats(_Model):
    chi2: float
    chi2_dof: int
    chi2_p_value: float
    js_distance: float  # Jensen-Shannon distance, base 2, in [0, 1]
    psi: float
    unseen_fraction: float  # current rows outside the reference categories
    reference_unseen_fraction: float


class Histogram(_Model):
    """What the HTML report draws: reference vs current shares over the same buckets."""

    labels: list[str] = Field(max_length=1_024)  # bucket labels (numeric: left edges; "<min", ">max")
    reference: list[float] = Field(max_length=1_024)  # shares, sum to 1 (or all 0)
    current: list[float] = Field(max_length=1_024)


class FeatureDrift(_Model):
    name: str
    kind: Literal["numeric", "categorical"]
    type: str
    critical: bool = False
    verdict: FeatureVerdict
    reason: str = ""
    reference_count: int = 0
    current_count: int = 0  # non-null values checked
    rows_without_column: int = 0  # rows of files that lack the column
    rows_with_wrong_type: int = 0  # rows of files where the column had another type
    reference_null_fraction: float = 0.0
    current_null_fraction: float = 0.0
    null_p_value: float | None = None
    null_p_value_adjusted: float | None = None  # of the null-fraction test, after the correction
    p_value: float | None = None  # of the distribution test (KS or chi-square)
    p_value_adjusted: float | None = None  # after the multiple-testing correction
    # why a checked feature's distribution test could not run (too few non-null values): its verdict
    # rests on the null-fraction test alone; "" when the distribution was tested
    distribution_skipped: str = ""
    numeric: NumericStats | None = None
    categorical: CategoricalStats | None = None
    histogram: Histogram | None = None


class PerformanceMetric(_Model):
    name: str
    value: float
    reference: float | None = None  # recorded at registration (ModelVersion.metrics)
    drop: float | None = None  # how much worse (absolute for accuracy/F1, relative for RMSE/MAE)
    dropped: bool = False


class PerformanceReport(_Model):
    """Predictions joined with feedback labels by request id."""

    verdict: Literal["ok", "drop", "insufficient_labels"]
    reason: str = ""
    labels: int = Field(default=0, ge=0)  # distinct labelled requests found
    matched: int = Field(default=0, ge=0)  # labelled predictions scored
    ambiguous_requests_rows: int = Field(default=0, ge=0)  # rows of multi-row requests (not joined)
    metrics: list[PerformanceMetric] = Field(default_factory=list, max_length=16)


# ---------------------------------------------------------------- the report's output and data-quality sections


class OutputDrift(_Model):
    """Prediction drift: the window's outputs of the reference version against its holdout outputs
    (recorded at evaluation), tested like input features. `outputs` are named "prediction" (class
    label or regression value) and "probability:<class>" (classifiers)."""

    verdict: Literal["no_drift", "drift", "insufficient_data", "no_data", "no_reference"]
    reason: str
    rows: int = Field(default=0, ge=0)  # window rows answered by the reference version (no shadow)
    reference_rows: int = Field(default=0, ge=0)  # holdout rows of the reference
    drifted: list[str] = Field(default_factory=list, max_length=1_000)
    outputs: list[FeatureDrift] = Field(default_factory=list, max_length=1_000)


class RuleViolations(_Model):
    """One single-row contract rule on the window's captured inputs."""

    rule: str  # the contract's rule name, e.g. range:alcohol, nulls:ph, categories:color, pattern:code
    column: str
    violations: int = Field(ge=0)
    rate: float = Field(ge=0, le=1)  # violations / window rows
    failed: bool  # rate above max_violation_rate
    request_ids: list[str] = Field(default_factory=list, max_length=20)  # the first offending requests
    values: list[str | None] = Field(default_factory=list, max_length=20)  # their offending values


class LookupQuality(_Model):
    """One looked-up feature view of a version trained through views: of the window's captured
    rows, how many looked it up and the share whose values were null because the online store
    had no item for the entity (missing) or only one older than the view's TTL (expired)."""

    view: str
    lookups: int = Field(default=0, ge=0)
    missing: int = Field(default=0, ge=0)
    expired: int = Field(default=0, ge=0)
    missing_share: float = Field(default=0.0, ge=0, le=1)
    expired_share: float = Field(default=0.0, ge=0, le=1)


class DataQuality(_Model):
    """Live data quality: the contract the version was trained under, its single-row rules (types,
    nullability, ranges, categories, patterns) evaluated on the window's captured inputs."""

    verdict: Literal["pass", "fail", "no_data", "no_contract"]
    reason: str
    rows: int = Field(default=0, ge=0)
    dataset: str = ""
    contract_version: int = Field(default=0, ge=0)
    max_violation_rate: float = Field(default=0.01, ge=0, le=1)
    failed_rules: list[str] = Field(default_factory=list, max_length=10_000)
    rules: list[RuleViolations] = Field(default_factory=list, max_length=10_000)
    # versions trained through feature views: the missing/expired share of each view's lookups
    lookups: list[LookupQuality] = Field(default_factory=list, max_length=32)


class Overall(_Model):
    """One verdict over the three sections (inputs, outputs, data quality): fail when any fails
    (inputs drift or mismatch the schema, outputs drift, data quality fails), pass when all three
    pass, else inconclusive (not enough data somewhere, nothing failing)."""

    verdict: Literal["pass", "fail", "inconclusive"]
    reason: str


class DriftReport(_Model):
    format_version: Literal[1] = 1
    check_id: str = ""
    model: str
    version: int = Field(ge=0)  # the model version whose reference profile was used
    versions_seen: list[int] = Field(default_factory=list, max_length=1_000)  # versions in the captures
    window_start: datetime | None = None
    window_end: datetime | None = None
    created_at: datetime
    verdict: ModelVerdict
    reason: str
    row_count: int = Field(ge=0)  # rows in the window
    shadow_rows: int = Field(default=0, ge=0)  # shadow scorings of counted requests, not counted again
    rejected_rows: int = Field(default=0, ge=0)  # captured rows compaction could not type (kept aside)
    checked_features: int = Field(default=0, ge=0)
    drifted_features: list[str] = Field(default_factory=list, max_length=1_000)
    drift_share: float = Field(default=0.0, ge=0, le=1)
    config: DriftConfig
    features: list[FeatureDrift] = Field(default_factory=list, max_length=1_000)
    problems: list[str] = Field(default_factory=list, max_length=1_000)
    performance: PerformanceReport | None = None
    outputs: OutputDrift | None = None
    data_quality: DataQuality | None = None
    overall: Overall | None = None


# ---------------------------------------------------------------- retraining guardrails


class RetrainingPolicy(_Model):
    """When a drift (or performance) verdict may start the lifecycle workflow."""

    enabled: bool = True
    cooldown_hours: float = Field(default=24.0, ge=0, le=24 * 90)  # since the last started run
    daily_cap: int = Field(default=1, ge=0, le=100)  # started runs per rolling 24 hours
    # "drift" (inputs), "performance_drop", and "output_drift" (prediction drift alone; opt-in)
    on_verdicts: list[str] = Field(default_factory=lambda: ["drift", "performance_drop"], max_length=8)


class RetrainingDecision(_Model):
    """Recorded for every verdict that could trigger retraining, started or not."""

    model: str
    decided_at: datetime
    check_id: str = ""
    verdict: str
    action: Literal["start", "skip"]
    reason: str
    spec_name: str = ""
    dataset: str = ""
    dataset_version: int = Field(default=0, ge=0)
    execution_arn: str = ""
    started: bool = False  # the workflow accepted the start (False: skipped, or an execution of that name exists)


# ---------------------------------------------------------------- the drift Lambda's event and reply


class DriftCheckRequest(_Model):
    """Event of the drift Lambda for one model (on demand: CLI, API route).

    The hourly schedule sends {"all_models": true, "window_hours": 1} instead (DriftScheduleEvent).
    """

    model: str = Field(pattern=r"^[a-z][a-z0-9-]{0,62}$")
    window_hours: float = Field(default=1.0, gt=0, le=24 * 31)
    end: datetime | None = None  # default: now
    version: int | None = Field(default=None, ge=1)  # reference version; default: production
    config: DriftConfig = Field(default_factory=DriftConfig)
    retrain: bool = True
    policy: RetrainingPolicy = Field(default_factory=RetrainingPolicy)
    requested_by: str = Field(default="schedule", max_length=2_048)
    check_id: str = Field(default="", max_length=64, pattern=r"^[A-Za-z0-9-]*$")


class DriftScheduleEvent(_Model):
    all_models: Literal[True]
    window_hours: float = Field(default=1.0, gt=0, le=24 * 31)


# ---------------------------------------------------------------- the scheduled fan-out (a round)

ROUND_PAGE_SIZE = 25  # models listed per page of a round (one Map state per page)
MAX_ROUND_PAGE = 100
MAX_REASON = 300  # characters of a failed check's reason kept in the round summary


class FleetPageRequest(_Model):
    """Event of the drift Lambda's `fleet_page` step: one page of the registry's models, turned
    into the checks that are due at the round's scheduled time."""

    time: datetime  # the scheduled time (EventBridge's event time): names the round and its checks
    window_hours: float = Field(default=1.0, gt=0, le=24 * 31)  # for models without their own window
    page_size: int = Field(default=ROUND_PAGE_SIZE, ge=1, le=MAX_ROUND_PAGE)
    next_token: str | None = Field(default=None, max_length=2_048)


class FleetPage(_Model):
    """One page of a round: the checks to run (DriftCheckRequest as JSON, one per model), the
    models skipped (no production version, or not due under their cadence) and the next page."""

    round_id: str
    checks: list[dict[str, object]] = Field(default_factory=list, max_length=MAX_ROUND_PAGE)
    skipped: list[str] = Field(default_factory=list, max_length=MAX_ROUND_PAGE)
    next_token: str | None = None
    final: bool = True  # no page after this one


class FleetOutcome(_Model):
    """What happened to one model's check in a round (the Map iteration's output)."""

    model: str = Field(pattern=r"^[a-z][a-z0-9-]{0,62}$")
    status: Literal["checked", "failed"]
    verdict: str = Field(default="", max_length=64)
    error: str = Field(default="", max_length=256)
    cause: str = Field(default="", max_length=262_144)  # Step Functions' Cause (trimmed when recorded)


class FleetRecordRequest(_Model):
    """Event of the drift Lambda's `fleet_record` step: a page's outcomes added to the round."""

    round_id: str = Field(pattern=r"^[A-Za-z0-9-]{1,64}$")
    time: datetime
    outcomes: list[FleetOutcome] = Field(default_factory=list, max_length=MAX_ROUND_PAGE)
    skipped: list[str] = Field(default_factory=list, max_length=MAX_ROUND_PAGE)
    final: bool = False


class FleetRoundFailure(_Model):
    """Event of the drift Lambda's `fleet_failure` step: the round's own step (listing a page or
    recording one) failed past its retries; recorded on the round before the execution fails."""

    time: datetime
    error: str = Field(default="", max_length=256)
    cause: str = Field(default="", max_length=262_144)


class FleetFailure(_Model):
    model: str
    reason: str


class DriftRound(_Model):
    """The summary of one scheduled round: checked, skipped and failed models (with reasons).
    A model retried successfully by a later delivery of the same round counts as checked."""

    round_id: str
    scheduled_at: datetime
    updated_at: datetime
    complete: bool = False
    pages: int = 0
    checked: list[str] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)
    failed: list[FleetFailure] = Field(default_factory=list)
    error: str = ""  # the round's own failure (a page not listed or not recorded), if any


class DriftRoundList(_Model):
    rounds: list[DriftRound]


class DriftCheckResult(_Model):
    check_id: str
    model: str
    version: int
    verdict: ModelVerdict
    reason: str
    row_count: int
    rejected_rows: int = 0
    drift_share: float
    drifted_features: list[str] = Field(default_factory=list, max_length=1_000)
    window_start: datetime
    window_end: datetime
    report_json: str
    report_html: str
    hours_compacted: int = 0
    retraining: RetrainingDecision | None = None
    output_verdict: str = ""  # the report's three sections' verdicts and the overall one
    data_quality_verdict: str = ""
    overall_verdict: str = ""


class DriftRunBody(_Model):
    """Body of POST /v1/models/{name}/drift (all optional; config defaults to the model's stored
    drift settings, else DriftConfig())."""

    window_hours: float = Field(default=24.0, gt=0, le=24 * 31)
    retrain: bool = True
    config: DriftConfig | None = None


class DriftCheckAccepted(_Model):
    """202 reply of the drift route: the check runs asynchronously and writes these reports."""

    check_id: str
    model: str
    window_start: datetime
    window_end: datetime
    report_json: str
    report_html: str


CADENCE_HOURS = (1, 2, 3, 4, 6, 8, 12, 24)  # hourly, every N hours (dividing a day), daily


class DriftSettings(_Model):
    """A model's stored drift settings (the schedule and the API use them as defaults).

    `cadence_hours`: the scheduled round checks the model when the scheduled hour (UTC) is a
    multiple of it (1 hourly, 24 daily at 00:00); `window_hours`: the window those checks read
    (default: the cadence, so consecutive checks cover every hour once)."""

    config: DriftConfig = Field(default_factory=DriftConfig)
    policy: RetrainingPolicy = Field(default_factory=RetrainingPolicy)
    cadence_hours: Literal[1, 2, 3, 4, 6, 8, 12, 24] = 1
    window_hours: float | None = Field(default=None, gt=0, le=24 * 31)
    updated_at: datetime | None = None
    updated_by: str = Field(default="", max_length=2_048)


# ---------------------------------------------------------------- reads of stored checks (console)

CHECK_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"


class DriftCheckSummary(_Model):
    """One stored check as the check list shows it (functions/dal/monitoring.py put_check_summary)."""

    check_id: str
    model: str
    version: int = Field(ge=0)
    verdict: str
    reason: str = ""
    row_count: int = Field(default=0, ge=0)
    drift_share: float = Field(default=0.0, ge=0, le=1)
    drifted_features: list[str] = Field(default_factory=list, max_length=1_000)
    window_start: datetime | None = None
    window_end: datetime | None = None
    created_at: datetime
    report_json: str = ""
    report_html: str = ""
    performance_value: float | None = None  # the primary metric on labelled traffic, when measured


class DriftCheckList(_Model):
    model: str
    checks: list[DriftCheckSummary] = Field(max_length=100)  # newest first


class SectionVerdict(_Model):
    section: Literal["inputs", "outputs", "data_quality", "performance", "overall"]
    verdict: str
    reason: str = ""


class DriftCheckDetail(_Model):
    """One check with its report: the verdict of each section and the HTML report's text (untrusted
    content: a page shows it only in a sandboxed frame)."""

    check: DriftCheckSummary
    sections: list[SectionVerdict] = Field(max_length=5)
    html: str
