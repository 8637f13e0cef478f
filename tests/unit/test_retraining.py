from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from functions.logic.retraining import TrainingTarget, decide_retraining, retrain
from functions.models.drift import RetrainingDecision, RetrainingPolicy
from functions.models.errors import StoreUnavailable
from functions.models.runs import RunRecord, RunStatus

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
TARGET = TrainingTarget("churn-spec", "churn", 7)


def _run(status: RunStatus) -> RunRecord:
    return RunRecord(
        run_id="churn-7-1",
        model="churn",
        spec_name="churn-spec",
        spec_version=1,
        dataset="churn",
        dataset_version=7,
        status=status,
        started_at=NOW - timedelta(hours=1),
    )


def _started(hours_ago: float) -> RetrainingDecision:
    return RetrainingDecision(
        model="churn",
        decided_at=NOW - timedelta(hours=hours_ago),
        verdict="drift",
        action="start",
        reason="drift",
        started=True,
    )


def _decide(**kw: object) -> RetrainingDecision:
    args: dict[str, object] = {
        "model": "churn",
        "verdict": "drift",
        "check_id": "c1",
        "now": NOW,
        "policy": RetrainingPolicy(),
        "runs": [],
        "history": [],
        "target": TARGET,
    }
    args.update(kw)
    return decide_retraining(**args)  # type: ignore[arg-type]


def test_retraining_drift_with_no_history_starts() -> None:
    decision = _decide()
    assert decision.action == "start" and decision.dataset_version == 7 and "churn@7" in decision.reason


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"verdict": "no_drift"}, "does not trigger"),
        ({"policy": RetrainingPolicy(enabled=False)}, "disabled"),
        ({"runs": [_run(RunStatus.RUNNING)]}, "in progress"),
        ({"history": [_started(hours_ago=3)]}, "cooldown"),
        ({"history": [_started(2), _started(5)], "policy": RetrainingPolicy(cooldown_hours=1, daily_cap=2)}, "cap"),
        ({"target": None}, "no training target"),
    ],
)
def test_retraining_guardrails_skip_with_a_reason(kw: dict[str, object], reason: str) -> None:
    decision = _decide(**kw)
    assert decision.action == "skip" and reason in decision.reason


def test_retraining_after_cooldown_and_finished_runs_starts() -> None:
    decision = _decide(history=[_started(hours_ago=25)], runs=[_run(RunStatus.REGISTERED)])
    assert decision.action == "start"


def test_retraining_cooldown_counts_only_started_runs() -> None:
    skipped = _started(1).model_copy(update={"action": "skip", "started": False})
    assert _decide(history=[skipped]).action == "start"


def test_retrain_records_the_execution_or_the_failure() -> None:
    decision = _decide()
    started = retrain(decision, lambda t: (f"arn:exec:{t.dataset_version}", True))
    assert started.started and started.execution_arn == "arn:exec:7"
    existing = retrain(decision, lambda t: ("arn:exec:7", False))
    assert not existing.started and "not started again" in existing.reason

    def broken(target: TrainingTarget) -> tuple[str, bool]:
        raise StoreUnavailable("throttled")

    failed = retrain(decision, broken)
    assert failed.action == "skip" and "StoreUnavailable" in failed.reason
    skipped = _decide(verdict="no_drift")
    assert retrain(skipped, broken) is skipped
