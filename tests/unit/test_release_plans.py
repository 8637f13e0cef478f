"""Pure release planning, the canary verdict and caller identity matching (no AWS)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from functions.logic import releases
from functions.models.approvals import (
    CallerIdentity,
    CanaryCheck,
    CanaryMetrics,
    DecisionRequest,
    IllegalTransition,
    StaleExpectation,
)
from functions.models.audit import Actor
from functions.models.errors import Conflict
from functions.models.registry import TRANSITIONS, Feature, ModelRecord, ModelVersion
from functions.models.registry import VersionStatus as S

NOW = datetime(2026, 1, 1, tzinfo=UTC)
OPS = Actor(identity="ops")


def version(n: int, status: S) -> ModelVersion:
    return ModelVersion(
        model="churn",
        version=n,
        status=status,
        created_at=NOW,
        updated_at=NOW,
        task="classification",
        features=[Feature(name="x", type="float")],
        target="y",
    )


def state(statuses: dict[int, S], **record: object) -> releases.State:
    rec = ModelRecord.model_validate({"name": "churn", "created_at": NOW, "updated_at": NOW, **record})
    return releases.State(record=rec, versions={n: version(n, s) for n, s in statuses.items()})


@pytest.mark.parametrize("source", list(S))
@pytest.mark.parametrize("to", list(S))
def test_release_check_transition_follows_the_declared_table(source: S, to: S) -> None:
    v = version(1, source)
    if to in TRANSITIONS[source]:
        releases.check_transition(v, to)
    else:
        with pytest.raises(IllegalTransition, match=f"{source.value} -> {to.value}"):
            releases.check_transition(v, to)


def test_release_plan_promote_archives_production_and_audits_each_change() -> None:
    # Given 1 in production and 2 approved
    s = state({1: S.PRODUCTION, 2: S.APPROVED}, production_version=1, revision=4)
    # When 2's promotion is planned
    plan = releases.plan_promote(s, 2, OPS, "better", now=NOW)
    # Then 2 -> PRODUCTION, 1 -> ARCHIVED, the alias moves under the next revision, all audited
    assert [(c.version.version, c.to) for c in plan.changes] == [(2, S.PRODUCTION), (1, S.ARCHIVED)]
    assert plan.record_after is not None
    assert (plan.record_after.production_version, plan.record_after.previous_production) == (2, [1])
    assert plan.record_after.revision == 5
    assert [e.action for e in plan.events] == ["version.promote", "version.archive", "model.aliases"]


def test_release_plan_promote_refuses_while_another_canary_runs() -> None:
    s = state({1: S.PRODUCTION, 2: S.CANARY, 3: S.APPROVED}, production_version=1, candidate_version=2)
    with pytest.raises(Conflict, match="canary of version 2"):
        releases.plan_promote(s, 3, OPS, now=NOW)


def test_release_plan_canary_needs_a_production_version() -> None:
    with pytest.raises(Conflict, match="no production"):
        releases.plan_start_canary(state({1: S.APPROVED}), 1, 0.1, OPS, now=NOW)


def test_release_rollback_target_skips_versions_no_longer_archived() -> None:
    # Given previous productions 1 (retired) and 2 (archived), 3 in production
    s = state({1: S.RETIRED, 2: S.ARCHIVED, 3: S.PRODUCTION}, production_version=3, previous_production=[1, 2])
    assert releases.rollback_target(s, None).version == 2
    with pytest.raises(Conflict):
        releases.rollback_target(s, 1)


@pytest.mark.parametrize(
    ("observed", "verdict"),
    [
        (CanaryMetrics(), "no_data"),
        (CanaryMetrics(requests=0), "no_data"),
        (CanaryMetrics(requests=100, error_rate=0.0, latency_ms=20), "pass"),
        (CanaryMetrics(requests=100, error_rate=0.05, latency_ms=20), "fail"),
        (CanaryMetrics(requests=100, error_rate=0.0, latency_ms=900), "fail"),
        (CanaryMetrics(requests=100, error_rate=0.0, latency_ms=20, quality=0.5), "fail"),
    ],
)
def test_release_judge_canary(observed: CanaryMetrics, verdict: str) -> None:
    check = CanaryCheck(max_error_rate=0.01, max_latency_ms=500, min_quality=0.7)
    assert releases.judge_canary(observed, check)[0] == verdict


@pytest.mark.parametrize(
    ("started_by", "same"),
    [
        ("arn:aws:iam::123456789012:user/alice", True),
        ("alice", True),
        ("LOCALalice", True),
        ("AWS:AIDAALICE", True),  # an S3 event's principalId for the same IAM user
        ("arn:aws:iam::123456789012:user/bob", False),
        ("", False),
    ],
)
def test_approval_caller_identity_matches_any_of_its_forms(started_by: str, same: bool) -> None:
    alice = CallerIdentity(user_arn="arn:aws:iam::123456789012:user/alice", caller="AIDAALICE", access_key="LOCALalice")
    assert alice.is_(started_by) is same


@pytest.mark.parametrize("reason", ["", "  ", "\n"])
def test_approval_decision_needs_a_reason(reason: str) -> None:
    with pytest.raises(ValueError, match="reason is required"):
        DecisionRequest(reason=reason)


def test_release_plan_rollback_refuses_a_stale_expectation_naming_both() -> None:
    # Given production 3 and no canary (the canary 4 already rolled back)
    s = state({2: S.ARCHIVED, 3: S.PRODUCTION, 4: S.ROLLED_BACK}, production_version=3, previous_production=[1, 2])
    # When a rollback expecting production 3 with canary 4 is planned, Then it is refused
    with pytest.raises(StaleExpectation) as refused:
        releases.plan_rollback(s, OPS, "again", expected_production=3, expected_canary=4, now=NOW)
    assert refused.value.message.startswith(
        "churn: expected production version 3 with canary version 4, found production version 3 with no canary "
        "(version 4 is ROLLED_BACK); nothing was rolled back"
    )
    # And expecting what is there, production goes back to 2
    plan = releases.plan_rollback(s, OPS, "bad", expected_production=3, expected_canary=None, now=NOW)
    assert [(c.version.version, c.to) for c in plan.changes] == [(3, S.ROLLED_BACK), (2, S.PRODUCTION)]
