"""Drift Lambda: one model on demand, or every model with a production version on the schedule.

Events:
    {"model": "churn", "window_hours": 24, ...}          DriftCheckRequest -> DriftCheckResult
    {"all_models": true, "window_hours": 1}              DriftScheduleEvent -> {"results": [...], "errors": [...]}
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.dal import monitoring as monitoring_dal
from functions.dal import registry as registry_dal
from functions.handlers.errors import typed_aws_errors
from functions.logic.drift_check import run_drift_check
from functions.models.drift import (
    DriftCheckRequest,
    DriftCheckResult,
    DriftReport,
    DriftScheduleEvent,
    DriftSettings,
    ModelVerdict,
)
from functions.models.errors import StepwiseError
from functions.models.settings import get_settings
from functions.observability import NAMESPACE, logger, metrics, tracer


def publish_metrics(result: DriftCheckResult, report: DriftReport) -> None:
    """EMF. Service level (alarms): DriftChecks, DriftedModels, PerformanceDrops. Per model:
    DriftShare (%), DriftedFeatures, DriftCheckRows, CapturedRowsRejected, Performance_<metric>.
    Per model and feature: FeatureDriftScore (KS D for numeric features, Jensen-Shannon distance
    for categorical ones)."""
    metrics.add_metric(name="DriftChecks", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="DriftedModels", unit=MetricUnit.Count, value=int(result.verdict == ModelVerdict.DRIFT))
    dropped = report.performance is not None and report.performance.verdict == "drop"
    metrics.add_metric(name="PerformanceDrops", unit=MetricUnit.Count, value=int(dropped))
    metrics.flush_metrics()
    metrics.add_dimension(name="Model", value=result.model)
    metrics.add_metric(name="DriftShare", unit=MetricUnit.Percent, value=result.drift_share * 100)
    metrics.add_metric(name="DriftedFeatures", unit=MetricUnit.Count, value=len(result.drifted_features))
    metrics.add_metric(name="DriftCheckRows", unit=MetricUnit.Count, value=result.row_count)
    metrics.add_metric(name="CapturedRowsRejected", unit=MetricUnit.Count, value=result.rejected_rows)
    for m in report.performance.metrics if report.performance else []:
        metrics.add_metric(name=f"Performance_{m.name}", unit=MetricUnit.NoUnit, value=m.value)
    metrics.flush_metrics()
    for f in report.features:
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
        result, report = run_drift_check(req, get_settings(), workdir=Path(tmp))
    publish_metrics(result, report)
    logger.info(
        "drift check",
        extra={
            "model": result.model,
            "verdict": result.verdict,
            "drift_share": result.drift_share,
            "drifted": result.drifted_features,
            "retraining": result.retraining.action if result.retraining else None,
            "report": result.report_html,
        },
    )
    return result


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@typed_aws_errors
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("all_models"):
        schedule = DriftScheduleEvent.model_validate(event)
        results, errors = [], []
        for record in registry_dal.list_models(get_settings().registry_table, limit=1_000):
            if not record.production_version:
                continue
            try:
                stored = monitoring_dal.get_settings(get_settings().metadata_table, record.name) or DriftSettings()
                req = DriftCheckRequest(
                    model=record.name, window_hours=schedule.window_hours, config=stored.config, policy=stored.policy
                )
                results.append(_check(req).model_dump(mode="json"))
            except StepwiseError as exc:  # one model's problem does not stop the others
                logger.warning("drift check failed", extra={"model": record.name, "error": exc.message})
                errors.append({"model": record.name, "error": type(exc).__name__, "message": exc.message})
        return {"results": results, "errors": errors}
    return _check(DriftCheckRequest.model_validate(event)).model_dump(mode="json")
