"""The approvals and rollback routes on the control API (handlers on moto)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from functions.dal import audit
from functions.handlers import approval, release
from functions.logic import approvals, releases
from functions.models.approvals import CallerIdentity
from functions.models.audit import Actor, model_target
from functions.models.errors import Gone
from functions.models.registry import VersionStatus as S
from functions.models.settings import get_settings
from tests.integration.approval_support import (
    call,
    chain_definition,
    execution_done,
    lambdas_in_process,
    start_chain,
    wait_for,
)
from tests.integration.conftest import Stores
from tests.integration.release_support import register

OPS = Actor(identity="ops")


@pytest.fixture
def waiting(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Version 1 of churn, trained by `trainer`, with its workflow waiting for approval."""
    handlers: dict[str, Any] = {"approval": approval.lambda_handler, "release": release.lambda_handler}
    with lambdas_in_process(monkeypatch, handlers):
        register(stores, "churn")
        arn = start_chain(chain_definition(3600), {"registered": {"model": "churn", "version": 1}})
        wait_for(lambda: call("GET", "/v1/approvals/churn-1")[0] == 200, "the approval request")
        yield arn


def test_approval_list_shows_pending_requests_without_the_token(waiting: str) -> None:
    # When the pending approvals are listed
    status, body = call("GET", "/v1/approvals")
    # Then the request shows what is being approved, and never the task token
    assert status == 200
    (request,) = body["approvals"]
    assert (request["model"], request["version"], request["status"]) == ("churn", 1, "PENDING")
    assert request["metrics"] == {"auc": 0.8} and len(request["artifact_sha256"]) == 64
    assert request["started_by"].endswith("user/trainer") and request["expires_at"] > request["requested_at"]
    assert "token" not in str(body).lower()


def test_approval_second_decision_is_409(waiting: str) -> None:
    # Given alice approved
    assert call("POST", "/v1/approvals/churn-1/approve", {"reason": "fine"}, who="alice")[0] == 200
    # When bob rejects the same request, Then 409 naming the first decision
    status, body = call("POST", "/v1/approvals/churn-1/reject", {"reason": "no"}, who="bob")
    assert status == 409 and "alice" in body["message"]
    wait_for(lambda: execution_done(waiting), "the execution")


def test_approval_by_the_trainer_is_403(waiting: str) -> None:
    # When the identity that started the run approves it, Then 403 and still pending
    status, body = call("POST", "/v1/approvals/churn-1/approve", {"reason": "mine"}, who="trainer")
    assert status == 403 and "four-eyes" in body["message"]
    assert call("GET", "/v1/approvals/churn-1")[1]["status"] == "PENDING"


def test_approval_by_the_trainer_is_allowed_when_four_eyes_is_off(
    waiting: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEPWISE_FOUR_EYES", "false")
    get_settings.cache_clear()
    status, body = call("POST", "/v1/approvals/churn-1/approve", {"reason": "demo"}, who="trainer")
    assert status == 200 and body["decision"]["who"].endswith("user/trainer")
    wait_for(lambda: execution_done(waiting), "the execution")


@pytest.mark.parametrize("body", [{"reason": ""}, {"reason": "   "}, {}, None])
def test_approval_without_a_reason_is_400(waiting: str, body: Any) -> None:
    status, reply = call("POST", "/v1/approvals/churn-1/approve", body, who="alice")
    assert status == 400 and reply["error"] == "InvalidInput"


def test_approval_approver_comes_from_identity_not_body(waiting: str) -> None:
    # When the body tries to name an approver, Then it is refused (extra field), not used
    status, _ = call("POST", "/v1/approvals/churn-1/approve", {"reason": "x", "who": "ceo"}, who="alice")
    assert status == 400


def test_approval_without_caller_identity_is_403(waiting: str) -> None:
    status, _ = call("POST", "/v1/approvals/churn-1/approve", {"reason": "x"}, who=None)
    assert status == 403


def test_approval_unknown_request_is_404(stores: Stores) -> None:
    status, body = call("POST", "/v1/approvals/churn-9/approve", {"reason": "x"}, who="alice")
    assert status == 404 and body["error"] == "NotFound"


def test_approval_past_its_deadline_is_410(waiting: str) -> None:
    # Given the request's deadline has passed (the workflow has not noticed yet)
    request = approvals.get_request(get_settings(), "churn-1")
    late = request.expires_at + timedelta(seconds=1)
    # When decided, Then Gone, and nothing was written
    with pytest.raises(Gone):
        approvals.decide(
            get_settings(), "churn-1", approve=True, caller=CallerIdentity(user_arn="alice"), reason="x", now=late
        )
    assert approvals.get_request(get_settings(), "churn-1").status == "PENDING"


def test_approval_decision_is_recorded_and_audited(waiting: str, stores: Stores) -> None:
    call("POST", "/v1/approvals/churn-1/approve", {"reason": "metrics fine"}, who="alice")
    wait_for(lambda: execution_done(waiting), "the execution")
    trail = audit.list_events(stores.metadata_table, target=model_target("churn"))
    decided = [e for e in trail if e.action in ("version.approve", "approval.decide")]
    assert sorted(e.action for e in decided) == ["approval.decide", "version.approve"]
    assert {e.who for e in decided} == {"arn:aws:iam::123456789012:user/alice"}
    assert {e.reason for e in decided} == {"metrics fine"}
    assert "approval.request" in [e.action for e in trail]


def test_rollback_route_moves_production_back_and_records_who(stores: Stores) -> None:
    # Given 1 then 2 in production
    s = get_settings()
    for _ in range(2):
        v = register(stores, "churn")
        releases.approve(s, "churn", v.version, OPS, "ok")
        releases.promote(s, "churn", v.version, OPS)
    # When carol rolls back without a reason, Then 400; with one, 200 and 1 serves
    assert call("POST", "/v1/models/churn/rollback", {"reason": ""}, who="carol")[0] == 400
    status, body = call("POST", "/v1/models/churn/rollback", {"reason": "bad predictions"}, who="carol")
    assert status == 200 and body["production_version"] == 1
    state = releases.read_state(s, "churn")
    assert state.versions[2].status == S.ROLLED_BACK
    last = audit.list_events(stores.metadata_table, target=model_target("churn"))[-3:]
    assert {e.who for e in last} == {"arn:aws:iam::123456789012:user/carol"}


def test_rollback_route_with_nothing_to_roll_back_is_409(stores: Stores) -> None:
    register(stores, "churn")
    status, body = call("POST", "/v1/models/churn/rollback", {"reason": "x"}, who="carol")
    assert status == 409 and "no production" in body["message"]


def test_rollback_route_unknown_model_is_404(stores: Stores) -> None:
    assert call("POST", "/v1/models/nope/rollback", {"reason": "x"}, who="carol")[0] == 404
