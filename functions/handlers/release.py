"""The workflow's release tasks, one Lambda dispatching on `action`:

promote          APPROVED -> PRODUCTION (all at once)
start_canary     APPROVED -> CANARY at strategy.weight
check_canary     after the bake time: the candidate's error rate, latency (and quality) from the
                 serving metrics; failing (or no candidate traffic, unless the check's on_no_data
                 is "pass") -> canary rolled back, CanaryCheckFailed raised
complete_canary  CANARY -> PRODUCTION
rollback_canary  CANARY -> ROLLED_BACK (reason from the caught error)
expire           approval timed out: request EXPIRED, version REJECTED, ApprovalExpired raised

After every step but expire, the model's CloudWatch alarms are synced with what it serves
(functions/logic/model_alarms.py: created when it has a production or canary version, deleted when
it has neither); a failed sync is logged and counted, never fails the step.

Every step that moves an alias reads back what serving resolves and raises ServingMismatch if it
differs; promote, start_canary and complete_canary first verify the version's artifact
(IntegrityError, nothing written). Typed errors propagate by class name to the state machine's
Retry/Catch. A canary the workflow rolls back (a failed check, or rollback_canary) counts one
`CanaryRollbacks` (service dimension): the metric the monitoring stack's canary alarm watches.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from functions.handlers.errors import typed_aws_errors
from functions.logic import approvals, model_alarms, releases
from functions.models.approvals import ApprovalExpired, CanaryCheckFailed, ReleaseResult, ReleaseTaskEvent
from functions.models.audit import Actor
from functions.models.errors import InvalidInput
from functions.models.registry import ModelRecord
from functions.models.settings import Settings, get_settings
from functions.observability import NAMESPACE, SERVICE, logger, metrics, tracer


def _result(task: ReleaseTaskEvent, record: ModelRecord, **extra: Any) -> dict[str, Any]:
    return ReleaseResult(
        model=task.model,
        version=task.version,
        action=task.action,
        production_version=record.production_version,
        candidate_version=record.candidate_version,
        candidate_weight=record.candidate_weight,
        revision=record.revision,
        **extra,
    ).model_dump(mode="json")


def _cause(task: ReleaseTaskEvent) -> str:
    if task.reason:
        return task.reason
    if task.error:
        return f"{task.error.get('Error', 'error')}: {str(task.error.get('Cause', ''))[:500]}"
    return "rolled back by the workflow"


def _count_canary_rollback() -> None:
    """CanaryRollbacks with the service dimension only: the one metric the canary alarm watches."""
    with single_metric(name="CanaryRollbacks", unit=MetricUnit.Count, value=1, namespace=NAMESPACE) as metric:
        metric.add_dimension("service", SERVICE)


def run(task: ReleaseTaskEvent) -> dict[str, Any]:
    settings = get_settings()
    actor = Actor(identity=f"workflow:{task.execution or 'unknown'}", correlation_id=task.execution)
    if task.action == "expire":
        _expire(task)
    try:
        return _release(settings, task, actor)
    finally:
        # after the step's transaction (or its refusal): the model's alarms follow what it serves
        model_alarms.sync(settings, task.model, actor, f"{task.action} of version {task.version}")


def _expire(task: ReleaseTaskEvent) -> None:
    approvals.expire(get_settings(), task.model, task.version, execution=task.execution)
    raise ApprovalExpired(f"{task.model} version {task.version}: nobody decided in time; the version is REJECTED")


def _release(settings: Settings, task: ReleaseTaskEvent, actor: Actor) -> dict[str, Any]:
    if task.action == "promote" or task.action == "complete_canary":
        record = releases.promote(settings, task.model, task.version, actor, task.reason or task.action)
        return _result(task, record)
    if task.action == "start_canary":
        w = task.strategy.weight
        record = releases.start_canary(settings, task.model, task.version, w, actor, task.reason or "canary")
        return _result(task, record, bake_seconds=task.strategy.bake_seconds)
    if task.action == "check_canary":
        try:
            verdict, detail = releases.check_canary_traffic(
                settings, task.model, task.version, task.strategy.check, task.strategy.bake_seconds, actor
            )
        except CanaryCheckFailed:
            _count_canary_rollback()
            raise
        logger.info("canary check", extra={"verdict": verdict, "detail": detail})
        state = releases.read_state(settings, task.model)
        return _result(task, state.record, verdict=verdict, detail=detail)
    if task.action == "rollback_canary":
        record = releases.rollback_canary(settings, task.model, task.version, actor, _cause(task))
        _count_canary_rollback()
        return _result(task, record)
    raise InvalidInput(f"release task action {task.action!r} is not a release step")


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
@typed_aws_errors
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        task = ReleaseTaskEvent.model_validate(event)
    except ValidationError as exc:
        raise InvalidInput(f"release task input: {exc.errors(include_url=False, include_input=False)}") from None
    logger.append_keys(model=task.model, version=task.version, action=task.action, execution=task.execution)
    return run(task)
