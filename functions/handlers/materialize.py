"""Materialization Lambda (data layer: pyarrow): the materialization workflow's tasks and its
asynchronous starts, {"step": ..., ...} (functions/logic/materialize.py).

- validated {"dataset", "version", "by"}: a new validated source version (from validation) ->
  one materialization per view over it (latest view version)
- start     {"view", "materialization_id"}: start the recorded run's workflow (or run it here)
- plan      {"view", "materialization_id"} -> {"chunks": [ChunkTask, ...]} (the Map's items)
- chunk     {"task": ChunkTask} -> its ChunkResult
- finish    {"view", "materialization_id"} -> the record; emits the view's freshness metric and makes
  its alarms exist (functions/logic/view_alarms.py)
- fail      {"view", "materialization_id", "error": {"Error", "Cause"}}: a Catch records the failure
Typed errors propagate, so the state machine's Retry/Catch match them by name.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.handlers.errors import typed_aws_errors
from functions.logic import materialize, materialize_jobs, view_alarms
from functions.models.audit import Actor
from functions.models.errors import InvalidInput
from functions.models.materialize import (
    FRESHNESS_MAX_METRIC,
    FRESHNESS_METRIC,
    METRIC_NAMESPACE,
    ChunkTask,
    MaterializationStatus,
)
from functions.models.settings import get_settings
from functions.observability import SERVICE, logger, tracer


def emit_freshness(view: str, age_seconds: float) -> None:
    """The view's online age (EMF): per view (dimensions service and view, what the view's
    freshness alarm watches), and the same value without a view, whose Maximum over a period is the
    oldest view's age (the stack's one alarm)."""
    with single_metric(
        name=FRESHNESS_METRIC, unit=MetricUnit.Seconds, value=age_seconds, namespace=METRIC_NAMESPACE
    ) as metric:
        metric.add_dimension("service", SERVICE)
        metric.add_dimension("view", view[:250])
    with single_metric(
        name=FRESHNESS_MAX_METRIC, unit=MetricUnit.Seconds, value=age_seconds, namespace=METRIC_NAMESPACE
    ):
        pass


def _freshness(settings: Any, view: str, materialization_id: str) -> None:
    """After a run succeeded (Finish, or a run that ran here in-process): emit the view's online age
    and make its alarms exist (created by its first successful run; a failure is logged, never raised)."""
    fresh = materialize_jobs.view_freshness(settings, view)
    if fresh.age_seconds is not None:
        emit_freshness(view, fresh.age_seconds)
    view_alarms.ensure(settings, view, Actor(identity="stepwise:materialize", correlation_id=materialization_id))


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@typed_aws_errors
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    step = event.get("step")
    if step == "validated":
        actor = Actor(identity=str(event.get("by") or "s3:upload"), correlation_id=context.aws_request_id)
        runs = materialize_jobs.on_validated(settings, str(event["dataset"]), int(event["version"]), actor)
        for run in runs:
            if run.status is MaterializationStatus.SUCCEEDED and not run.joined:  # it ran here, in-process
                _freshness(settings, run.view, run.materialization_id)
        return {"materializations": [r.materialization_id for r in runs]}
    view, mid = str(event.get("view", "")), str(event.get("materialization_id", ""))
    if step == "start":
        record = materialize.start(settings, view, mid)
        if record.status is MaterializationStatus.SUCCEEDED and not settings.materialize_state_machine_arn:
            _freshness(settings, view, mid)  # it ran here, in-process
        return record.model_dump(mode="json")
    if step == "plan":
        return {"chunks": [t.model_dump(mode="json") for t in materialize.plan(settings, view, mid)]}
    if step == "chunk":
        return materialize.run_chunk(settings, ChunkTask.model_validate(event["task"])).model_dump(mode="json")
    if step == "finish":
        record = materialize.finish(settings, view, mid)
        _freshness(settings, view, mid)
        return {"materialization_id": mid, "status": record.status.value, "entities_written": record.entities_written}
    if step == "fail":
        error = event.get("error") or {}
        name, cause = str(error.get("Error", "")), str(error.get("Cause", ""))
        record = materialize.record_failure(settings, view, mid, name, cause)
        return {"materialization_id": mid, "status": record.status.value}
    raise InvalidInput(f"unknown materialization step {step!r}")
