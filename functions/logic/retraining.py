"""Retraining guardrails: decide whether a verdict starts the lifecycle workflow, and record why.

`decide_retraining` is pure: it gets the verdict, the policy, the model's runs and its past
decisions, and the training target; `retrain` applies the decision through an injected starter
(functions.logic.lifecycle.start_training in the drift Lambda). A retrained version still goes
through the gates and human approval: this only starts training.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from functions.models.drift import RetrainingDecision, RetrainingPolicy
from functions.models.errors import StepwiseError
from functions.models.runs import RunRecord, RunStatus


@dataclass(frozen=True)
class TrainingTarget:
    """What a retraining run would train: the spec of the current version, on the newest
    validated version of its dataset."""

    spec_name: str
    dataset: str
    dataset_version: int
    trigger: str = ""  # names the run: a retraining is a new run even on the same data


Starter = Callable[[TrainingTarget], tuple[str, bool]]  # -> (execution arn, started)


def decide_retraining(
    *,
    model: str,
    verdict: str,
    check_id: str,
    now: datetime,
    policy: RetrainingPolicy,
    runs: Sequence[RunRecord],
    history: Sequence[RetrainingDecision],
    target: TrainingTarget | None,
) -> RetrainingDecision:
    """Start only if enabled, the verdict asks for it, no run is in progress, the cooldown since
    the last started run has passed and fewer than daily_cap runs started in the last 24 hours."""

    def skip(reason: str) -> RetrainingDecision:
        return RetrainingDecision(
            model=model,
            decided_at=now,
            check_id=check_id,
            verdict=verdict,
            action="skip",
            reason=reason,
            spec_name=target.spec_name if target else "",
            dataset=target.dataset if target else "",
            dataset_version=target.dataset_version if target else 0,
        )

    if verdict not in policy.on_verdicts:
        return skip(f"verdict {verdict!r} does not trigger retraining")
    if not policy.enabled:
        return skip("retraining is disabled for this model")
    running = [r.run_id for r in runs if r.status == RunStatus.RUNNING]
    if running:
        return skip(f"a run is in progress: {running[0]}")
    started = sorted((d.decided_at for d in history if d.action == "start" and d.started), reverse=True)
    if started:
        since = now - started[0]
        cooldown = timedelta(hours=policy.cooldown_hours)
        if since < cooldown:
            remaining = cooldown - since
            return skip(
                f"cooldown: last retraining started at {started[0].isoformat()}, "
                f"{remaining.total_seconds() / 3600:.1f} h of {policy.cooldown_hours:g} h remain"
            )
    recent = [t for t in started if now - t < timedelta(hours=24)]
    if len(recent) >= policy.daily_cap:
        return skip(f"daily cap: {len(recent)} retraining run(s) started in the last 24 h (cap {policy.daily_cap})")
    if target is None:
        return skip("no training target: the model's spec or a validated dataset version is unknown")
    return RetrainingDecision(
        model=model,
        decided_at=now,
        check_id=check_id,
        verdict=verdict,
        action="start",
        reason=f"{verdict}: retraining {target.spec_name} on {target.dataset}@{target.dataset_version}",
        spec_name=target.spec_name,
        dataset=target.dataset,
        dataset_version=target.dataset_version,
    )


def retrain(decision: RetrainingDecision, start: Starter) -> RetrainingDecision:
    """Apply a decision: start the workflow when it says so. A start that fails becomes a recorded
    skip with the error as its reason (never raised: the check itself succeeded)."""
    if decision.action != "start":
        return decision
    trigger = f"r{decision.check_id}" if decision.check_id else ""
    target = TrainingTarget(decision.spec_name, decision.dataset, decision.dataset_version, trigger)
    try:
        arn, started = start(target)
    except StepwiseError as exc:
        return decision.model_copy(
            update={"action": "skip", "reason": f"start failed: {type(exc).__name__}: {exc.message}"}
        )
    reason = decision.reason if started else f"{decision.reason}; an execution of that name exists, not started again"
    return decision.model_copy(update={"execution_arn": arn, "started": started, "reason": reason})
