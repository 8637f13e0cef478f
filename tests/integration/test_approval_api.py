"""The approvals and rollback routes on the control API (handlers on moto)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from functions.dal import audit
from functions.handlers import api, approval, release
from functions.logic import approvals, releases
from functions.models.approvals import ApprovalTaskEvent, CallerIdentity
from functions.models.audit import Actor, model_target
from functions.models.errors import Conflict, Gone
from functions.models.registry import VersionStatus as S
from functions.models.settings import get_settings
from tests.integration.approval_support import (
    Context,
    api_event,
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
    assert "token" not in str(request).lower() and set(body) == {"approvals", "next_token"}


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
    body = {"reason": "", "expected_production_version": 2}
    assert call("POST", "/v1/models/churn/rollback", body, who="carol")[0] == 400
    body = {"reason": "bad predictions", "expected_production_version": 2}
    status, body = call("POST", "/v1/models/churn/rollback", body, who="carol")
    assert status == 200 and body["production_version"] == 1
    state = releases.read_state(s, "churn")
    assert state.versions[2].status == S.ROLLED_BACK
    last = audit.list_events(stores.metadata_table, target=model_target("churn"))[-3:]
    assert {e.who for e in last} == {"arn:aws:iam::123456789012:user/carol"}


def test_rollback_route_with_nothing_to_roll_back_is_409(stores: Stores) -> None:
    # Given one production version and no earlier one
    s = get_settings()
    v = register(stores, "churn")
    releases.approve(s, "churn", v.version, OPS, "ok")
    releases.promote(s, "churn", v.version, OPS)
    body = {"reason": "x", "expected_production_version": 1}
    status, reply = call("POST", "/v1/models/churn/rollback", body, who="carol")
    assert status == 409 and "no earlier production version" in reply["message"]


def test_rollback_route_unknown_model_is_404(stores: Stores) -> None:
    body = {"reason": "x", "expected_production_version": 1}
    assert call("POST", "/v1/models/nope/rollback", body, who="carol")[0] == 404


def serving(stores: Stores, productions: int, canary: bool) -> None:
    """churn: versions 1..`productions` promoted in turn, then (`canary`) the next one in canary."""
    s = get_settings()
    for _ in range(productions + canary):
        v = register(stores, "churn")
        releases.approve(s, "churn", v.version, OPS, "ok")
    for n in range(1, productions + 1):
        releases.promote(s, "churn", n, OPS)
    if canary:
        releases.start_canary(s, "churn", productions + 1, 0.1, OPS, "try")


def test_rollback_route_retried_after_a_canary_rollback_is_409_and_production_stays(stores: Stores) -> None:
    # Given production 3 and canary 4, as the operator saw them
    serving(stores, 3, canary=True)
    body = {"reason": "canary errors", "expected_production_version": 3, "expected_canary_version": 4}
    # When the same rollback is sent twice (a client timeout, a double click)
    first = call("POST", "/v1/models/churn/rollback", body, who="carol")
    second = call("POST", "/v1/models/churn/rollback", body, who="carol")
    # Then the first rolls back the canary, the second is a 409 naming what was expected and what is there
    assert first[0] == 200 and (first[1]["production_version"], first[1]["candidate_version"]) == (3, None)
    assert second[0] == 409 and second[1]["error"] == "StaleExpectation", second
    message = second[1]["message"]
    assert "expected production version 3 with canary version 4" in message
    assert "found production version 3 with no canary" in message and "version 4 is ROLLED_BACK" in message
    # And production stays 3, version 3 is not ROLLED_BACK, only the canary's rollback is recorded
    state = releases.read_state(get_settings(), "churn")
    assert (state.record.production_version, state.record.candidate_version) == (3, None)
    assert (state.versions[3].status, state.versions[4].status) == (S.PRODUCTION, S.ROLLED_BACK)
    trail = audit.list_events(stores.metadata_table, target=model_target("churn"))
    assert [e.version for e in trail if e.action in ("version.rollback", "version.restore")] == [4]


def test_rollback_route_with_a_stale_production_expectation_is_409(stores: Stores) -> None:
    # Given 1, 2, 3 promoted in turn; carol saw production 3, then dave rolled it back to 2
    serving(stores, 3, canary=False)
    dave = {"reason": "bad", "expected_production_version": 3}
    assert call("POST", "/v1/models/churn/rollback", dave, who="dave")[0] == 200
    # When carol's rollback (to the previous, or to 1 by name) arrives with what she saw
    for extra in ({}, {"to_version": 1}):
        body = {"reason": "bad too", "expected_production_version": 3, **extra}
        status, reply = call("POST", "/v1/models/churn/rollback", body, who="carol")
        # Then 409 naming both, and 2 keeps serving: nobody asked to roll back 2
        assert status == 409 and reply["error"] == "StaleExpectation", reply
        assert "expected production version 3 with no canary" in reply["message"]
        assert "found production version 2 with no canary (version 3 is ROLLED_BACK)" in reply["message"]
    state = releases.read_state(get_settings(), "churn")
    assert state.record.production_version == 2 and state.versions[2].status == S.PRODUCTION
    assert (state.versions[1].status, state.versions[3].status) == (S.ARCHIVED, S.ROLLED_BACK)


def test_rollback_route_expecting_no_canary_is_409_when_one_started(stores: Stores) -> None:
    # Given carol saw production 2 alone, and a canary of 3 started since
    serving(stores, 2, canary=True)
    body = {"reason": "bad", "expected_production_version": 2}
    # When she rolls back, Then 409: neither the canary nor production she did not see is touched
    status, reply = call("POST", "/v1/models/churn/rollback", body, who="carol")
    assert status == 409 and "found production version 2 with canary version 3" in reply["message"], reply
    state = releases.read_state(get_settings(), "churn")
    assert (state.record.production_version, state.record.candidate_version) == (2, 3)


def test_rollback_route_without_an_expectation_is_400_naming_the_field(stores: Stores) -> None:
    serving(stores, 2, canary=False)
    status, reply = call("POST", "/v1/models/churn/rollback", {"reason": "bad"}, who="carol")
    assert status == 400 and "expected_production_version" in reply["message"], reply
    assert releases.read_state(get_settings(), "churn").record.production_version == 2


def test_rollback_route_after_the_workflow_rolled_the_canary_back_is_409(stores: Stores) -> None:
    # Given production 3 and canary 4 seen by carol, then the workflow's own canary rollback
    serving(stores, 3, canary=True)
    event = {"action": "rollback_canary", "model": "churn", "version": 4, "execution": "exec-1", "reason": "bad"}
    release.lambda_handler(event, Context())
    # When carol's rollback arrives, Then 409 and production 3 keeps serving
    body = {"reason": "canary errors", "expected_production_version": 3, "expected_canary_version": 4}
    status, reply = call("POST", "/v1/models/churn/rollback", body, who="carol")
    assert status == 409 and "version 4 is ROLLED_BACK" in reply["message"], reply
    state = releases.read_state(get_settings(), "churn")
    assert state.record.production_version == 3 and state.versions[3].status == S.PRODUCTION


def test_workflow_canary_rollback_never_rolls_back_production(stores: Stores) -> None:
    # Given carol rolled canary 4 back first, then the workflow's rollback of its canary runs
    serving(stores, 3, canary=True)
    body = {"reason": "canary errors", "expected_production_version": 3, "expected_canary_version": 4}
    assert call("POST", "/v1/models/churn/rollback", body, who="carol")[0] == 200
    event = {"action": "rollback_canary", "model": "churn", "version": 4, "execution": "exec-1", "reason": "bad"}
    # Then it finds its canary rolled back and writes nothing
    result = release.lambda_handler(event, Context())
    assert (result["production_version"], result["candidate_version"]) == (3, None)
    # And when its version became production instead (the canary completed), it is refused
    v5 = register(stores, "churn")
    s = get_settings()
    releases.approve(s, "churn", v5.version, OPS, "ok")
    releases.start_canary(s, "churn", 5, 0.1, OPS, "try")
    releases.promote(s, "churn", 5, OPS, "canary passed")
    with pytest.raises(Conflict, match="not the canary"):
        release.lambda_handler({**event, "version": 5}, Context())
    state = releases.read_state(s, "churn")
    assert (state.record.production_version, state.versions[5].status) == (5, S.PRODUCTION)
    trail = audit.list_events(stores.metadata_table, target=model_target("churn"))
    assert [e.version for e in trail if e.action == "version.rollback"] == [4]


def test_rollback_route_body_is_described_in_the_openapi_document(stores: Stores) -> None:
    # When the control API's OpenAPI document is read
    status, doc = call("GET", "/v1/openapi.json")
    # Then the rollback route's body names the expectation as required, and the 409 says why
    assert status == 200
    operation = doc["paths"]["/v1/models/{name}/rollback"]["post"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert set(body["required"]) == {"reason", "expected_production_version"}
    assert {"expected_canary_version", "to_version"} <= set(body["properties"])
    assert "StaleExpectation" in operation["responses"]["409"]["description"]


# -- four-eyes on the person: assumed roles, Identity Center, unknown uploaders ------------------
ROLE_ARN = "arn:aws:sts::123456789012:assumed-role/{role}/{session}"


def _pending(stores: Stores, started_by: str) -> None:
    """churn v1, started by `started_by`, with a request waiting (a token no workflow holds: the
    cases below are refused before any callback)."""
    register(stores, "churn", started_by=started_by)
    approvals.request_approval(get_settings(), ApprovalTaskEvent(token="token", model="churn", version=1))


def _decide_as(role: str, session: str, role_id: str = "AROAEXAMPLEROLEID") -> tuple[int, Any]:
    event = api_event("POST", "/v1/approvals/churn-1/approve", {"reason": "looks good"})
    event["requestContext"]["identity"].update(
        {"userArn": ROLE_ARN.format(role=role, session=session), "caller": f"{role_id}:{session}"}
    )
    reply = api.lambda_handler(event, Context())
    return reply["statusCode"], json.loads(reply["body"])


def test_approval_by_the_starters_role_under_another_session_name_is_403(stores: Stores) -> None:
    # Given a run started as assumed-role/MLOps/alice-1
    _pending(stores, ROLE_ARN.format(role="MLOps", session="alice-1"))
    # When the same role approves as session alice-2, Then 403: a role's session name is its caller's choice
    status, body = _decide_as("MLOps", "alice-2")
    assert status == 403 and "four-eyes" in body["message"] and "same person" in body["message"]
    assert approvals.get_request(get_settings(), "churn-1").status == "PENDING"


def test_approval_of_an_upload_started_run_by_the_uploaders_role_is_403(stores: Stores) -> None:
    # Given a run an upload started, its starter the S3 event's principal id of a role session
    _pending(stores, "AWS:AROAEXAMPLEROLEID:alice-1")
    status, body = _decide_as("MLOps", "someone-else")
    assert status == 403 and "four-eyes" in body["message"]


def test_approval_by_the_same_identity_center_user_is_403(stores: Stores) -> None:
    role = "AWSReservedSSO_DataScientist_0123456789abcdef"
    _pending(stores, ROLE_ARN.format(role=role, session="alice@example.com"))
    status, body = _decide_as(role, "alice@example.com")
    assert status == 403 and "four-eyes" in body["message"]


@pytest.mark.parametrize("started_by", ["s3:upload", ""])
def test_approval_of_a_run_whose_starter_is_unknown_is_403(stores: Stores, started_by: str) -> None:
    # Given an upload-started run whose notification named nobody: nobody can be told apart from it
    _pending(stores, started_by)
    status, body = call("POST", "/v1/approvals/churn-1/approve", {"reason": "fine"}, who="alice")
    assert status == 403 and "unknown" in body["message"]
    assert approvals.get_request(get_settings(), "churn-1").status == "PENDING"


# -- the approvers allow-list; refused decisions are audited and counted -------------------------
def test_approval_by_a_caller_outside_the_approvers_is_403_audited_and_counted(
    waiting: str, stores: Stores, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a stack that names bob (and a Cognito group) as the only approvers
    monkeypatch.setenv("STEPWISE_APPROVERS", "arn:aws:iam::123456789012:user/bob, group:release-approvers")
    get_settings.cache_clear()
    # When alice approves, Then 403 naming the rule, the request still pending
    status, body = call("POST", "/v1/approvals/churn-1/approve", {"reason": "fine"}, who="alice")
    assert status == 403 and "approvers" in body["message"] and "user/alice" in body["message"]
    assert approvals.get_request(get_settings(), "churn-1").status == "PENDING"
    # And the refusal is audited (who, what, why) and counted
    trail = audit.list_events(stores.metadata_table, target=model_target("churn"))
    refused = [e for e in trail if e.action == "approval.refused"]
    assert len(refused) == 1 and refused[0].who.endswith("user/alice") and "approvers" in refused[0].reason
    assert refused[0].after == {"approval": "churn-1", "decision": "approve"}
    assert '"DecisionsRefused"' in capsys.readouterr().out
    # When bob approves, Then it is decided
    status, body = call("POST", "/v1/approvals/churn-1/approve", {"reason": "fine"}, who="bob")
    assert status == 200, body
    wait_for(lambda: execution_done(waiting), "the execution")


def test_approval_four_eyes_refusal_is_audited(waiting: str, stores: Stores) -> None:
    status, _ = call("POST", "/v1/approvals/churn-1/reject", {"reason": "mine"}, who="trainer")
    assert status == 403
    trail = audit.list_events(stores.metadata_table, target=model_target("churn"))
    (refused,) = [e for e in trail if e.action == "approval.refused"]
    assert refused.who.endswith("user/trainer") and refused.reason.startswith("four-eyes")
    assert refused.after == {"approval": "churn-1", "decision": "reject"}


def test_approval_racing_decisions_by_two_others_end_as_one_200_and_one_409(waiting: str, stores: Stores) -> None:
    # Given alice's approval has read the request (PENDING) and is about to write her decision, and
    # bob's rejection runs whole at that moment (both read PENDING before either writes): the two
    # are interleaved at the DynamoDB boundary, one call at a time, since moto's
    # transact_write_items is not thread-safe
    from functions.dal.clients import client

    replies: dict[str, tuple[int, Any]] = {}

    def bob_decides_first(params: dict[str, Any], **_: Any) -> None:
        decision = any(":decided" in str(item) for item in params.get("TransactItems", []))  # the decision item
        if decision and "bob" not in replies:
            replies["bob"] = (-1, None)  # bob's own write passes this hook untouched
            replies["bob"] = call("POST", "/v1/approvals/churn-1/reject", {"reason": "worse"}, who="bob")

    events = client("dynamodb").meta.events
    events.register("before-parameter-build.dynamodb.TransactWriteItems", bob_decides_first, unique_id="race")
    try:
        # When alice approves
        replies["alice"] = call("POST", "/v1/approvals/churn-1/approve", {"reason": "fine"}, who="alice")
    finally:
        events.unregister("before-parameter-build.dynamodb.TransactWriteItems", unique_id="race")

    # Then exactly one decision stands: bob's 200, alice's conditional write refused with 409
    assert replies["bob"][0] == 200 and replies["bob"][1]["status"] == "REJECTED", replies
    assert replies["alice"][0] == 409 and replies["alice"][1]["error"] == "Conflict", replies
    request = call("GET", "/v1/approvals/churn-1")[1]
    assert request["status"] == "REJECTED" and request["decision"]["who"].endswith("user/bob"), request
    assert releases.read_state(get_settings(), "churn").versions[1].status == S.REJECTED
    trail = audit.list_events(stores.metadata_table, target=model_target("churn"))
    decided = [e for e in trail if e.action == "approval.decide"]
    assert [e.who for e in decided] == ["arn:aws:iam::123456789012:user/bob"]
    wait_for(lambda: execution_done(waiting), "the execution")
