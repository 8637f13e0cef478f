"""Reproduce a registered version inside the stack.

The API (`request_reproduction`) checks the version records what retraining needs, stores the
reproduction RUNNING with its audit event, and invokes the reproduce function asynchronously; the
function (`run_reproduction`, the training image) retrains with functions/logic/reproduce.py and
stores the outcome with its audit event. Imports no numpy/pyarrow at module level: the API
function runs this module too.

Idempotency: a version has at most one reproduction RUNNING. A request while it runs joins it (the
same reproduction id, no second training, no second audit event); a delivery of the function's
event that is not the version's RUNNING reproduction (a duplicate, a retry after the outcome was
stored, or one superseded after its lease) does nothing. A RUNNING reproduction older than
STALE_AFTER (longer than the function's event age, timeout and retry allow) is taken as dead: the
next request starts a new one.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from functions.dal import reproductions as store
from functions.logic.lineage import version_or_404
from functions.logic.reproduce import reproduce
from functions.models.audit import Actor, AuditEvent, model_target
from functions.models.errors import Conflict, InvalidInput, NotFound, StepwiseError, StoreUnavailable
from functions.models.registry import ModelVersion
from functions.models.reproduction import ReproduceJob, ReproduceResult, Reproduction, ReproductionStatus
from functions.models.settings import Settings
from functions.observability import logger

# infra/constructs/reproduction.py: max event age 30 min + 2 attempts of at most 15 min each
STALE_AFTER = timedelta(minutes=65)
REQUEST_ACTION = "version.reproduce.request"
RESULT_ACTION = "version.reproduce.result"


def check_reproducible(v: ModelVersion) -> None:
    """What retraining needs from the version's records: a skops artifact, a spec, a dataset version."""
    if "skops" not in v.artifacts or not v.spec_name or v.dataset_version < 1:
        raise InvalidInput(f"{v.model} version {v.version} records no skops artifact, spec or dataset version")


def request_reproduction(
    settings: Settings, model: str, number: int, actor: Actor, now: datetime | None = None
) -> Reproduction:
    """Start (or join) the version's reproduction; NotFound for an unknown version, InvalidInput
    for one whose records cannot be retrained."""
    check_reproducible(version_or_404(settings, model, number))
    if not settings.reproduce_function:
        raise InvalidInput("the reproduce function is not deployed (STEPWISE_REPRODUCE_FUNCTION is unset)")
    now = now or datetime.now(UTC)
    record = Reproduction(
        reproduction_id=uuid.uuid4().hex[:16],
        model=model,
        version=number,
        status=ReproductionStatus.RUNNING,
        requested_by=actor.identity,
        requested_at=now,
    )
    event = AuditEvent.of(
        actor, REQUEST_ACTION, model_target(model), version=number, after={"reproduction_id": record.reproduction_id}
    )
    try:
        store.start(settings.metadata_table, record, event, stale_before=int((now - STALE_AFTER).timestamp()))
    except Conflict:
        running = store.get(settings.metadata_table, model, number)
        if running is None or running.status is not ReproductionStatus.RUNNING:
            raise  # it ended between the two calls: the caller asks again and starts a new one
        return running.model_copy(update={"joined": True})
    except StoreUnavailable:
        # a lost reply may hide a write that took effect: then this request owns it and invokes it
        stored = store.get(settings.metadata_table, model, number)
        if stored is None or stored.reproduction_id != record.reproduction_id:
            raise
    job = ReproduceJob(reproduction_id=record.reproduction_id, model=model, version=number)
    try:
        store.invoke_async(settings.reproduce_function, job.model_dump(mode="json"))
    except StoreUnavailable as exc:
        # nothing will run it: end it FAILED so the caller's retry starts a new one at once
        try:
            _finish(settings, record, error=type(exc).__name__, message=exc.message, now=now)
        except StepwiseError:
            logger.warning("could not end the unstarted reproduction; it ends at its lease")
        raise
    return record


def get_reproduction(settings: Settings, model: str, number: int) -> Reproduction:
    version_or_404(settings, model, number)
    found = store.get(settings.metadata_table, model, number)
    if found is None:
        raise NotFound(f"{model} version {number} has not been reproduced")
    return found


def run_reproduction(settings: Settings, job: ReproduceJob, now: datetime | None = None) -> Reproduction | None:
    """The function's work: retrain and compare, then store the outcome. None when the event is not
    the version's RUNNING reproduction (nothing done) or its outcome was stored by another delivery."""
    current = store.get(settings.metadata_table, job.model, job.version)
    running = current is not None and current.status is ReproductionStatus.RUNNING
    if current is None or not running or current.reproduction_id != job.reproduction_id:
        logger.info("reproduction not running; nothing to do", extra={"job": job.model_dump(mode="json")})
        return None
    try:
        result = reproduce(settings, job.model, job.version)
    except StepwiseError as exc:  # the records cannot be retrained, or a store failed: say which
        return _store_outcome(settings, current, error=type(exc).__name__, message=exc.message, now=now)
    except Exception:  # a defect: recorded as such (details in the logs), never left RUNNING
        logger.exception("reproduction failed")
        message = f"internal error; see logs (correlation id {logger.get_correlation_id() or '-'})"
        return _store_outcome(settings, current, error="InternalError", message=message, now=now)
    return _store_outcome(settings, current, result=result, now=now)


def _store_outcome(settings: Settings, running: Reproduction, **outcome: Any) -> Reproduction | None:
    """The worker's outcome stored; None when another delivery stored one first or a newer request
    replaced it. A refusal while the item still holds this reproduction RUNNING is no such race:
    StoreUnavailable, so Lambda's retry runs it again."""
    try:
        return _finish(settings, running, **outcome)
    except Conflict as exc:
        now_stored = store.get(settings.metadata_table, running.model, running.version)
        if (
            now_stored is not None
            and now_stored.reproduction_id == running.reproduction_id
            and now_stored.status is ReproductionStatus.RUNNING
        ):
            raise StoreUnavailable("reproduction result write was refused; retry later") from exc
        logger.info("reproduction outcome already stored", extra={"reproduction_id": running.reproduction_id})
        return None


def _finish(
    settings: Settings,
    running: Reproduction,
    *,
    result: ReproduceResult | None = None,
    error: str = "",
    message: str = "",
    now: datetime | None = None,
) -> Reproduction:
    done = running.model_copy(
        update={
            "status": ReproductionStatus.FAILED if error else ReproductionStatus.SUCCEEDED,
            "finished_at": now or datetime.now(UTC),
            "result": result,
            "error": error,
            "message": message[:4096],
        }
    )
    summary: dict[str, object] = {"reproduction_id": done.reproduction_id, "status": done.status.value}
    if done.result is not None:
        summary |= done.result.model_dump(include={"identical", "label_mismatches", "max_abs_diff", "holdout_rows"})
    else:
        summary |= {"error": error, "message": done.message}
    event = AuditEvent.of(
        Actor(identity=f"reproduce:{done.reproduction_id}", correlation_id=logger.get_correlation_id() or ""),
        RESULT_ACTION,
        model_target(done.model),
        version=done.version,
        after=summary,
    )
    store.finish(settings.metadata_table, done, event)
    return done
