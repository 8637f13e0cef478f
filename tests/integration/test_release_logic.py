from __future__ import annotations

import boto3
import pytest

from functions.dal import audit
from functions.logic import releases
from functions.models.approvals import IllegalTransition, ServingMismatch
from functions.models.audit import Actor, model_target, utcnow
from functions.models.errors import Conflict, IntegrityError
from functions.models.registry import VersionStatus as S
from functions.models.settings import Settings, get_settings
from tests.integration.conftest import Stores
from tests.integration.release_support import register

OPS = Actor(identity="arn:aws:iam::123456789012:user/ops", correlation_id="c-ops")


def approved(stores: Stores, model: str = "churn") -> int:
    v = register(stores, model)
    releases.approve(get_settings(), model, v.version, OPS, "looks good")
    return v.version


def statuses(settings: Settings, model: str) -> dict[int, S]:
    return {n: v.status for n, v in releases.read_state(settings, model).versions.items()}


def actions(stores: Stores, model: str) -> list[tuple[str, int | None]]:
    return [(e.action, e.version) for e in audit.list_events(stores.metadata_table, target=model_target(model))]


def test_release_promote_archives_the_previous_production(stores: Stores) -> None:
    # Given version 1 in production and version 2 approved
    s = get_settings()
    v1 = approved(stores)
    releases.promote(s, "churn", v1, OPS, "first")
    v2 = approved(stores)
    # When version 2 is promoted
    record = releases.promote(s, "churn", v2, OPS, "better")
    # Then 2 serves, 1 is archived and remembered as the previous production
    assert (record.production_version, record.previous_production, record.revision) == (2, [1], 2)
    assert statuses(s, "churn") == {1: S.ARCHIVED, 2: S.PRODUCTION}
    periods = releases.read_state(s, "churn").versions[1].production_periods
    assert periods[0]["promoted_by"] == OPS.identity and periods[0]["ended_as"] == "ARCHIVED"


def test_release_illegal_transition_is_refused_naming_from_and_to(stores: Stores) -> None:
    # Given a version still waiting for approval
    v = register(stores, "churn")
    # When it is promoted, Then the refusal names both statuses and nothing changes
    with pytest.raises(IllegalTransition, match="PENDING_APPROVAL -> PRODUCTION"):
        releases.promote(get_settings(), "churn", v.version, OPS)
    assert statuses(get_settings(), "churn") == {1: S.PENDING_APPROVAL}


def test_release_two_promotions_from_one_stale_read_leave_one_production(stores: Stores) -> None:
    # Given two approved versions and two writers that read the registry at the same time
    s = get_settings()
    v1, v2 = approved(stores), approved(stores)
    stale = releases.read_state(s, "churn")
    first = releases.plan_promote(stale, v1, OPS, "writer A", now=utcnow())
    second = releases.plan_promote(stale, v2, OPS, "writer B", now=utcnow())
    # When both write, one after the other
    releases.apply(s, first)
    with pytest.raises(Conflict, match="promote"):
        releases.apply(s, second)
    # Then exactly one production, and only the winner's change is audited
    assert statuses(s, "churn") == {1: S.PRODUCTION, 2: S.APPROVED}
    assert ("version.promote", 2) not in actions(stores, "churn")
    assert releases.read_state(s, "churn").record.production_version == 1


def test_release_rollback_after_bad_canary_keeps_previous_production(stores: Stores) -> None:
    # Given version 1 in production and version 2 in canary at 10%
    s = get_settings()
    v1 = approved(stores)
    releases.promote(s, "churn", v1, OPS)
    v2 = approved(stores)
    canary = releases.start_canary(s, "churn", v2, 0.1, OPS, "try it")
    assert (canary.production_version, canary.candidate_version, canary.candidate_weight) == (1, 2, 0.1)
    # When the canary is rolled back (one call)
    record = releases.rollback(s, "churn", OPS, "error rate 7%", expected_production=1, expected_canary=2)
    # Then version 1 still serves alone, 2 is ROLLED_BACK with the reason, both steps audited
    assert (record.production_version, record.candidate_version, record.candidate_weight) == (1, None, 0.0)
    v2_after = releases.read_state(s, "churn").versions[2]
    assert v2_after.status == S.ROLLED_BACK and v2_after.reasons == ["ROLLED_BACK: error rate 7%"]
    trail = actions(stores, "churn")
    assert trail.index(("version.canary", 2)) < trail.index(("version.rollback", 2))


def test_release_complete_canary_moves_all_traffic(stores: Stores) -> None:
    s = get_settings()
    releases.promote(s, "churn", approved(stores), OPS)
    v2 = approved(stores)
    releases.start_canary(s, "churn", v2, 0.25, OPS)
    # When the canary completes
    record = releases.promote(s, "churn", v2, OPS, "canary passed")
    # Then it is production and no candidate remains
    assert (record.production_version, record.candidate_version, record.previous_production) == (2, None, [1])


def test_release_rollback_production_returns_to_previous(stores: Stores) -> None:
    # Given 1 then 2 in production
    s = get_settings()
    for _ in range(2):
        releases.promote(s, "churn", approved(stores), OPS)
    # When production is rolled back
    record = releases.rollback(s, "churn", OPS, "bad predictions", expected_production=2)
    # Then 1 serves again, 2 is ROLLED_BACK
    assert (record.production_version, record.previous_production) == (1, [])
    assert statuses(s, "churn") == {1: S.PRODUCTION, 2: S.ROLLED_BACK}
    assert [a for a in actions(stores, "churn") if a[0] in ("version.rollback", "version.restore")] == [
        ("version.rollback", 2),
        ("version.restore", 1),
    ]


def test_release_rollback_to_named_version_needs_former_production(stores: Stores) -> None:
    # Given 1, 2, 3 promoted in turn and 4 approved but never in production
    s = get_settings()
    for _ in range(3):
        releases.promote(s, "churn", approved(stores), OPS)
    v4 = approved(stores)
    # When rolling back to 4, Then refused; to 1, accepted
    with pytest.raises(Conflict, match="was not in production"):
        releases.rollback(s, "churn", OPS, "x", expected_production=3, to_version=v4)
    record = releases.rollback(s, "churn", OPS, "back to the first", expected_production=3, to_version=1)
    assert (record.production_version, record.previous_production) == (1, [2])


def test_release_rollback_refuses_a_tampered_artifact(stores: Stores) -> None:
    # Given 1 then 2 in production, and 1's ONNX bytes replaced in S3
    s = get_settings()
    for _ in range(2):
        releases.promote(s, "churn", approved(stores), OPS)
    boto3.client("s3").put_object(Bucket=stores.artifacts_bucket, Key="models/churn/1/model.onnx", Body=b"evil")
    # When rolling back, Then it fails on integrity and 2 keeps serving
    with pytest.raises(IntegrityError, match="hashes to"):
        releases.rollback(s, "churn", OPS, "x", expected_production=2)
    assert releases.read_state(s, "churn").record.production_version == 2


def tamper(stores: Stores, model: str, version: int) -> None:
    """Replace the version's ONNX bytes in S3 (the registry keeps the original sha256)."""
    key = f"models/{model}/{version}/model.onnx"
    boto3.client("s3").put_object(Bucket=stores.artifacts_bucket, Key=key, Body=b"tampered")


def registry_snapshot(s: Settings, model: str) -> tuple[object, ...]:
    state = releases.read_state(s, model)
    r = state.record
    return (r.production_version, r.candidate_version, r.candidate_weight, r.revision, statuses(s, model))


def test_release_start_canary_refuses_a_tampered_candidate_and_changes_nothing(stores: Stores) -> None:
    # Given version 1 in production and version 2 approved, whose ONNX bytes were replaced in S3
    s = get_settings()
    releases.promote(s, "churn", approved(stores), OPS, "first")
    v2 = approved(stores)
    tamper(stores, "churn", v2)
    before, trail = registry_snapshot(s, "churn"), actions(stores, "churn")
    # When a canary of version 2 starts, Then it is refused naming the model, version and failure
    refused = r"churn version 2: the artifact failed verification.*start canary refused"
    with pytest.raises(IntegrityError, match=refused):
        releases.start_canary(s, "churn", v2, 0.1, OPS, "try")
    # and nothing in the registry changed: production alone serves, version 2 is still APPROVED
    assert registry_snapshot(s, "churn") == before == (1, None, 0.0, 1, {1: S.PRODUCTION, 2: S.APPROVED})
    # and the refusal is in the audit trail (and only it)
    assert actions(stores, "churn") == [*trail, ("release.refused", v2)]
    event = audit.list_events(stores.metadata_table, target=model_target("churn"))[-1]
    assert event.who == OPS.identity and "failed verification" in event.reason
    assert event.after == {"step": "start canary", "error": "IntegrityError"}


def test_release_promote_refuses_a_tampered_version_and_changes_nothing(stores: Stores) -> None:
    # Given version 1 in production and version 2 approved with tampered bytes
    s = get_settings()
    releases.promote(s, "churn", approved(stores), OPS, "first")
    v2 = approved(stores)
    tamper(stores, "churn", v2)
    before = registry_snapshot(s, "churn")
    # When it is promoted, Then refused, production untouched, the refusal audited
    with pytest.raises(IntegrityError, match=r"churn version 2: the artifact failed verification.*promote refused"):
        releases.promote(s, "churn", v2, OPS, "better")
    assert registry_snapshot(s, "churn") == before
    assert actions(stores, "churn")[-1] == ("release.refused", v2)


def test_release_complete_canary_refuses_a_candidate_tampered_after_it_started(stores: Stores) -> None:
    # Given version 2 in canary, whose bytes were replaced after the canary started
    s = get_settings()
    releases.promote(s, "churn", approved(stores), OPS, "first")
    v2 = approved(stores)
    releases.start_canary(s, "churn", v2, 0.1, OPS, "try")
    tamper(stores, "churn", v2)
    before = registry_snapshot(s, "churn")
    # When the canary is completed, Then refused: version 1 stays production, 2 stays the canary
    with pytest.raises(IntegrityError, match="complete canary refused"):
        releases.promote(s, "churn", v2, OPS, "complete")
    assert registry_snapshot(s, "churn") == before == (1, 2, 0.1, 2, {1: S.PRODUCTION, 2: S.CANARY})


def test_release_promote_refuses_an_artifact_outside_the_artifacts_bucket(stores: Stores) -> None:
    # Given an approved version whose registry record points outside the artifacts bucket
    s = get_settings()
    v1 = approved(stores)
    stranger = s.model_copy(update={"artifacts_bucket": "another-bucket"})
    # When promoted, Then refused (serving would refuse it too) and nothing changes
    with pytest.raises(IntegrityError, match="outside the artifacts bucket"):
        releases.promote(stranger, "churn", v1, OPS)
    assert statuses(s, "churn") == {1: S.APPROVED}


def test_release_retire_refuses_a_serving_version(stores: Stores) -> None:
    s = get_settings()
    v1 = approved(stores)
    releases.promote(s, "churn", v1, OPS)
    with pytest.raises(Conflict, match="serving"):
        releases.retire(s, "churn", v1, OPS, "old")
    assert statuses(s, "churn") == {1: S.PRODUCTION}


def test_release_stale_status_write_is_a_conflict(stores: Stores) -> None:
    # Given two approvers reading the same pending version
    s = get_settings()
    v = register(stores, "churn")
    stale = releases.read_state(s, "churn")
    approve = releases.plan_transition(stale, v.version, S.APPROVED, OPS, "ok", action="version.approve", now=utcnow())
    reject = releases.plan_transition(stale, v.version, S.REJECTED, OPS, "no", action="version.reject", now=utcnow())
    # When both write, Then the second is a conflict, not a silent overwrite
    releases.apply(s, approve)
    with pytest.raises(Conflict):
        releases.apply(s, reject)
    assert statuses(s, "churn") == {1: S.APPROVED}


def test_release_verify_serving_fails_loudly_when_serving_resolves_otherwise(stores: Stores) -> None:
    # Given a promotion written, then the record changed behind the release's back
    s = get_settings()
    v1 = approved(stores)
    plan = releases.apply(s, releases.plan_promote(releases.read_state(s, "churn"), v1, OPS, now=utcnow()))
    assert plan.record_after is not None
    assert releases.verify_serving(s, plan.record_after).production_version == 1
    boto3.client("dynamodb").update_item(
        TableName=stores.registry_table,
        Key={"pk": {"S": "MODEL#churn"}, "sk": {"S": "MODEL"}},
        UpdateExpression="SET candidate_version = :c, candidate_weight = :w",
        ExpressionAttributeValues={":c": {"N": "1"}, ":w": {"N": "0.5"}},
    )
    # When the release reads back what serving resolves, Then it fails naming the difference
    with pytest.raises(ServingMismatch, match="serving resolves"):
        releases.verify_serving(s, plan.record_after)
