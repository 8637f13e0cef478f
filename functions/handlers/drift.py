"""Drift Lambda: one model on demand, or every model with a production version on the schedule.

Events:
    {"model": "churn", "window_hours": 24, ...}          DriftCheckRequest -> DriftCheckResult
    {"all_models": true, "window_hours": 1}              DriftScheduleEvent -> {"results": [...], "errors": [...]}
                                                         (the sequential sweep, invoked directly)
    {"fleet_page": {"time", "window_hours", "next_token"}}   FleetPageRequest -> FleetPage
    {"fleet_record": {"round_id", "time", "outcomes", ...}}  FleetRecordRequest -> DriftRound
    {"fleet_failure": {"time", "error", "cause"}}             FleetRoundFailure -> recorded on the round
                                                         (steps of the drift-fleet workflow the schedule
                                                         starts: a page of due models, then each model's
                                                         check as its own invocation, then the summary)

Invoked asynchronously (the API route, the hourly schedule), so an event can arrive twice. One
model's check is the unit of work, made idempotent with Powertools on the metadata table
(pk=idempotency#drift-check), keyed on the event's identity [model, check_id]; the rest of the
request (window, end, reference version, config, policy, retrain, requester) is payload-validated.
- The API route names its check (check_id, end): a repeated delivery returns the first result and
  writes no second report, metrics, decision or retraining start.
- The schedule's checks are named after the scheduled time when the event carries it ("time",
  EventBridge's <aws.events.event.time>), else after the invocation's request id (Lambda's own
  retries of an asynchronous event keep it): a retry re-runs only the models that failed.
- A direct invoke without a check id is named after its request id the same way.
- Same identity, different payload (settings changed between deliveries, a reused check id):
  Conflict (409), nothing runs. A delivery while the same check is in progress: Conflict; the
  asynchronous retry comes back after the in-progress lease (functions/handlers/lease.py).
The check's clock is the request's `end` when it names one, so a retry after a failure writes the
same report keys, summary and decision as the first attempt would have (see logic/drift_check.py).
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.dal import monitoring as monitoring_dal
from functions.dal.idempotency import run_once
from functions.handlers import lease
from functions.handlers.errors import typed_aws_errors
from functions.logic.drift_check import run_drift_check
from functions.logic.drift_schedule import plan_page, record_page, record_round_failure, run_schedule
from functions.models.drift import (
    DriftCheckRequest,
    DriftCheckResult,
    DriftReport,
    DriftScheduleEvent,
    FleetPageRequest,
    FleetRecordRequest,
    FleetRoundFailure,
    ModelVerdict,
)
from functions.models.settings import get_settings
from functions.observability import NAMESPACE, logger, metrics, tracer

IDEMPOTENCY = IdempotencyConfig(
    event_key_jmespath="[model, check_id]",
    payload_validation_jmespath="[window_hours, end, version, config, policy, retrain, requested_by]",
    raise_on_no_idempotency_key=True,
    expires_after_seconds=24 * 3600,  # past the 2 h maximum event age and the schedule's retries
)


def publish_metrics(result: DriftCheckResult, report: DriftReport) -> None:
    """EMF. Service level (alarms): DriftChecks, DriftedModels, PerformanceDrops, OutputDriftedModels
    (prediction drift), DataQualityFailures (a contract rule broken above its rate). Per model:
    DriftShare (%), DriftedFeatures, DriftCheckRows, CapturedRowsRejected, DataQualityViolationRate
    (%, the most broken rule's), Performance_<metric>, ModelPerformanceDrops (the model's alarm).
    Per model and feature: FeatureDriftScore (KS D for numeric features, Jensen-Shannon distance
    for categorical ones; outputs too, as "prediction" and "probability:<class>")."""
    metrics.add_metric(name="DriftChecks", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="DriftedModels", unit=MetricUnit.Count, value=int(result.verdict == ModelVerdict.DRIFT))
    dropped = report.performance is not None and report.performance.verdict == "drop"
    metrics.add_metric(name="PerformanceDrops", unit=MetricUnit.Count, value=int(dropped))
    output_drift = report.outputs is not None and report.outputs.verdict == "drift"
    metrics.add_metric(name="OutputDriftedModels", unit=MetricUnit.Count, value=int(output_drift))
    quality_failed = report.data_quality is not None and report.data_quality.verdict == "fail"
    metrics.add_metric(name="DataQualityFailures", unit=MetricUnit.Count, value=int(quality_failed))
    metrics.flush_metrics()
    metrics.add_dimension(name="Model", value=result.model)
    metrics.add_metric(name="DriftShare", unit=MetricUnit.Percent, value=result.drift_share * 100)
    metrics.add_metric(name="ModelPerformanceDrops", unit=MetricUnit.Count, value=int(dropped))  # per-model alarm
    metrics.add_metric(name="DriftedFeatures", unit=MetricUnit.Count, value=len(result.drifted_features))
    metrics.add_metric(name="DriftCheckRows", unit=MetricUnit.Count, value=result.row_count)
    metrics.add_metric(name="CapturedRowsRejected", unit=MetricUnit.Count, value=result.rejected_rows)
    if report.data_quality is not None and report.data_quality.rows:
        worst = max((r.rate for r in report.data_quality.rules), default=0.0)
        metrics.add_metric(name="DataQualityViolationRate", unit=MetricUnit.Percent, value=worst * 100)
    for m in report.performance.metrics if report.performance else []:
        metrics.add_metric(name=f"Performance_{m.name}", unit=MetricUnit.NoUnit, value=m.value)
    metrics.flush_metrics()
    outputs = report.outputs.outputs if report.outputs else []
    for f in [*report.features, *outputs]:
        score = f.numeric.ks_d if f.numeric else f.categorical.js_distance if f.categorical else None
        if score is None:
            continue
        with single_metric(
            name="FeatureDriftScore", unit=MetricUnit.NoUnit, value=score, namespace=NAMESPACE
        ) as metric:
            metric.add_dimension(name="Model", value=result.model)
            metric.add_dimension(name="Feature", value=f.name[:250])


def _check(req: DriftCheckRequest) -> DriftCheckResult:
    with tempfile.TemporaryDirectory(prefix="drift-") as tmp:
        result, report = run_drift_check(req, get_settings(), workdir=Path(tmp), now=req.end)
    publish_metrics(result, report)
    logger.info(
        "drift check",
        extra={
            "model": result.model,
            "verdict": result.verdict,
            "drift_share": result.drift_share,
            "drifted": result.drifted_features,
            "outputs": result.output_verdict,
            "data_quality": result.data_quality_verdict,
            "overall": result.overall_verdict,
            "retraining": result.retraining.action if result.retraining else None,
            "report": result.report_html,
        },
    )
    return result


def _check_data(data: dict[str, Any]) -> dict[str, Any]:
    return _check(DriftCheckRequest.model_validate(data)).model_dump(mode="json")


def check_once(req: DriftCheckRequest) -> dict[str, Any]:
    """One model's check, once per [model, check_id] (the first result for a repeat)."""
    return run_once(  # type: ignore[no-any-return]
        _check_data,
        data=req.model_dump(mode="json"),
        table=get_settings().metadata_table,
        partition=monitoring_dal.DRIFT_IDEMPOTENCY_PK,
        config=IDEMPOTENCY,
    )


def delivery_id(event: dict[str, Any], context: LambdaContext) -> tuple[str, datetime | None]:
    """The check id (and window end) an event without its own check id gets: the scheduled time
    when the schedule sends it, else the invocation's request id (kept by Lambda's retries)."""
    scheduled = event.get("time")
    if scheduled:
        at = datetime.fromisoformat(str(scheduled).replace("Z", "+00:00")).astimezone(UTC)
        return f"s{at:%Y%m%dT%H%M%SZ}", at
    return f"r-{context.aws_request_id}"[:64], None


def _schedule(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    check_id, end = delivery_id(event, context)
    schedule = DriftScheduleEvent.model_validate({k: v for k, v in event.items() if k != "time"})
    return run_schedule(schedule, check_id=check_id, end=end, settings=get_settings(), check=check_once)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@typed_aws_errors
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    lease.register(IDEMPOTENCY, context)
    if "fleet_page" in event:
        return plan_page(FleetPageRequest.model_validate(event["fleet_page"]), get_settings()).model_dump(mode="json")
    if "fleet_record" in event:
        page = FleetRecordRequest.model_validate(event["fleet_record"])
        return record_page(page, get_settings()).model_dump(mode="json")
    if "fleet_failure" in event:
        record_round_failure(FleetRoundFailure.model_validate(event["fleet_failure"]), get_settings())
        return {"recorded": True}
    if event.get("all_models"):
        return _schedule(event, context)
    req = DriftCheckRequest.model_validate(event)
    if not req.check_id:
        req = req.model_copy(update={"check_id": delivery_id({}, context)[0]})
    return check_once(req)
