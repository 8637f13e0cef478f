"""Scheduled drift work.

The schedule starts the drift-fleet workflow (infra/constructs/drift_fleet.py), a round per
scheduled time: `plan_page` lists one page of models and turns those due into check requests,
the workflow runs each as its own invocation (a Map state, concurrency-limited, retried and
dead-lettered per model), and `record_page` adds the page's outcomes to the round's summary.
Every check of a round is named after the scheduled time, so a repeated round returns the first
result of every model already checked (the drift handler's idempotency).

`run_schedule` is the sequential sweep of one invocation (`{"all_models": true}` invoked
directly): every model with a production version, one after the other.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from functions.dal import monitoring as monitoring_dal
from functions.dal import registry as registry_dal
from functions.models.drift import (
    MAX_REASON,
    DriftCheckRequest,
    DriftRound,
    DriftScheduleEvent,
    DriftSettings,
    FleetOutcome,
    FleetPage,
    FleetPageRequest,
    FleetRecordRequest,
    FleetRoundFailure,
)
from functions.models.errors import StepwiseError, StoreUnavailable
from functions.models.settings import Settings
from functions.observability import logger


def round_id(scheduled: datetime) -> str:
    """The round's id, also the check id of each of its checks (as the hourly sweep named them)."""
    return f"s{scheduled.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def is_due(stored: DriftSettings, scheduled: datetime) -> bool:
    """A model is due when the scheduled hour (UTC) is a multiple of its cadence."""
    return scheduled.astimezone(UTC).hour % stored.cadence_hours == 0


def check_request(
    model: str, stored: DriftSettings, *, window_hours: float, check_id: str, end: datetime | None
) -> DriftCheckRequest:
    """A scheduled check of `model` with its stored settings; its window is the stored one, else
    the longer of the cadence and the schedule's window (consecutive checks miss no hour)."""
    window = stored.window_hours or max(float(stored.cadence_hours), window_hours)
    return DriftCheckRequest(
        model=model,
        window_hours=window,
        end=end,
        config=stored.config,
        policy=stored.policy,
        check_id=check_id,
    )


def plan_page(req: FleetPageRequest, settings: Settings) -> FleetPage:
    """One page of the registry's models: a check request for each with a production version
    that is due at the scheduled time; the others are skipped, with why."""
    scheduled = req.time.astimezone(UTC)
    rid = round_id(scheduled)
    records, token = registry_dal.list_models_page(settings.registry_table, req.page_size, req.next_token)
    checks: list[dict[str, object]] = []
    skipped: list[str] = []
    for record in records:
        if not record.production_version:
            skipped.append(f"{record.name}: no production version")
            continue
        stored = monitoring_dal.get_settings(settings.metadata_table, record.name) or DriftSettings()
        if not is_due(stored, scheduled):
            skipped.append(f"{record.name}: not due (every {stored.cadence_hours} h)")
            continue
        request = check_request(record.name, stored, window_hours=req.window_hours, check_id=rid, end=scheduled)
        checks.append(request.model_dump(mode="json"))
    return FleetPage(round_id=rid, checks=checks, skipped=skipped, next_token=token, final=token is None)


def _reason(outcome: FleetOutcome) -> str:
    """A failed check's reason: its error name and message (from Step Functions' Cause)."""
    message = outcome.cause
    try:
        cause = json.loads(outcome.cause)
        if isinstance(cause, dict):
            message = str(cause.get("errorMessage", outcome.cause))
    except (ValueError, RecursionError):
        pass
    return f"{outcome.error or 'Error'}: {message}"[:MAX_REASON]


def record_page(req: FleetRecordRequest, settings: Settings, now: datetime | None = None) -> DriftRound:
    """Adds a page's outcomes to the round's summary (idempotent: sets of models) and returns it."""
    checked = [o.model for o in req.outcomes if o.status == "checked"]
    failed = {o.model: _reason(o) for o in req.outcomes if o.status == "failed"}
    for model, reason in failed.items():
        logger.warning("scheduled drift check failed", extra={"model": model, "round": req.round_id, "reason": reason})
    return monitoring_dal.record_round(
        settings.metadata_table,
        req.round_id,
        scheduled_at=req.time,
        updated_at=now or datetime.now(UTC),
        checked=checked,
        skipped=req.skipped,
        failed=failed,
        final=req.final,
    )


def record_round_failure(req: FleetRoundFailure, settings: Settings, now: datetime | None = None) -> None:
    """Records on the round that one of its own steps failed past its retries, with the error and cause."""
    reason = _reason(FleetOutcome(model="round", status="failed", error=req.error, cause=req.cause))
    logger.error("scheduled drift round failed", extra={"round": round_id(req.time), "reason": reason})
    monitoring_dal.record_round_failure(
        settings.metadata_table,
        round_id(req.time),
        scheduled_at=req.time,
        updated_at=now or datetime.now(UTC),
        reason=reason,
    )


def recent_rounds(settings: Settings, limit: int) -> list[DriftRound]:
    """The latest scheduled rounds' summaries, newest first."""
    return monitoring_dal.recent_rounds(settings.metadata_table, limit)


def run_schedule(
    schedule: DriftScheduleEvent,
    *,
    check_id: str,
    end: datetime | None,
    settings: Settings,
    check: Callable[[DriftCheckRequest], dict[str, Any]],
) -> dict[str, Any]:
    """Check every model in production with its stored drift settings: {"results", "errors"}.
    Models whose check failed on a store error are retried: StoreUnavailable naming them is raised
    once every model was tried (the asynchronous retry re-runs the sweep; checks that passed
    return their first result)."""
    results: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    retry: list[str] = []
    for record in registry_dal.iter_models(settings.registry_table):
        if not record.production_version:
            continue
        try:
            stored = monitoring_dal.get_settings(settings.metadata_table, record.name) or DriftSettings()
            req = DriftCheckRequest(
                model=record.name,
                window_hours=schedule.window_hours,
                end=end,
                config=stored.config,
                policy=stored.policy,
                check_id=check_id,
            )
            results.append(check(req))
        except StepwiseError as exc:  # one model's problem does not stop the others
            logger.warning("drift check failed", extra={"model": record.name, "error": exc.message})
            errors.append({"model": record.name, "error": type(exc).__name__, "message": exc.message})
            if isinstance(exc, StoreUnavailable):
                retry.append(record.name)
    if retry:
        raise StoreUnavailable(f"drift checks of {', '.join(retry)} failed on a store error; retry later")
    return {"results": results, "errors": errors}
