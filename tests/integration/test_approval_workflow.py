"""The approvals chain (from the real construct) in moto's executing Step Functions backend:
wait -> decide over the API -> the execution continues or fails with a typed error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from functions.handlers import approval, release
from functions.logic import releases
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


@pytest.fixture
def routed(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    handlers: dict[str, Any] = {"approval": approval.lambda_handler, "release": release.lambda_handler}
    with lambdas_in_process(monkeypatch, handlers) as calls:
        yield calls


def pending_ids() -> list[str]:
    status, body = call("GET", "/v1/approvals")
    assert status == 200
    return [a["id"] for a in body["approvals"]]


def test_approval_workflow_waits_then_approve_releases_to_production(stores: Stores, routed: list[str]) -> None:
    # Given a registered version and the chain waiting for its approval
    v = register(stores, "churn")
    arn = start_chain(chain_definition(3600), {"registered": {"model": "churn", "version": v.version}})
    wait_for(lambda: "churn-1" in pending_ids(), "the approval request")
    assert execution_done(arn) is None  # still waiting
    # When alice (not the trainer) approves over the API
    status, body = call("POST", "/v1/approvals/churn-1/approve", {"reason": "metrics fine"}, who="alice")
    # Then the decision is recorded and the execution continues to PRODUCTION
    assert status == 200 and body["status"] == "APPROVED"
    assert body["decision"]["who"].endswith("user/alice")
    done = wait_for(lambda: execution_done(arn), "the execution to finish")
    assert done["status"] == "SUCCEEDED", done
    state = releases.read_state(get_settings(), "churn")
    assert state.versions[1].status == S.PRODUCTION and state.record.production_version == 1
    assert routed == ["approval:", "release:promote"]


def test_approval_workflow_reject_fails_with_typed_error(stores: Stores, routed: list[str]) -> None:
    v = register(stores, "churn")
    arn = start_chain(chain_definition(3600), {"registered": {"model": "churn", "version": v.version}})
    wait_for(lambda: "churn-1" in pending_ids(), "the approval request")
    # When rejected
    status, body = call("POST", "/v1/approvals/churn-1/reject", {"reason": "too slow"}, who="alice")
    # Then REJECTED, and the execution fails with ApprovalRejected
    assert status == 200 and body["status"] == "REJECTED"
    done = wait_for(lambda: execution_done(arn), "the execution to finish")
    assert done["status"] == "FAILED"
    assert done.get("error") == "ApprovalRejected", done
    assert releases.read_state(get_settings(), "churn").versions[1].status == S.REJECTED


def test_approval_workflow_timeout_rejects_as_expired(stores: Stores, routed: list[str]) -> None:
    # Given an approval with a 1-second timeout that nobody decides
    v = register(stores, "churn")
    arn = start_chain(chain_definition(1), {"registered": {"model": "churn", "version": v.version}})
    # When the timeout passes, Then the version is REJECTED (expired) and the execution fails typed
    done = wait_for(lambda: execution_done(arn), "the execution to time out", timeout=60)
    assert done["status"] == "FAILED" and done.get("error") == "ApprovalExpired", done
    version = releases.read_state(get_settings(), "churn").versions[1]
    assert version.status == S.REJECTED and "expired" in version.reasons[0]
    # and a late decision gets 410
    status, _ = call("POST", "/v1/approvals/churn-1/approve", {"reason": "late"}, who="alice")
    assert status == 410


def test_approval_workflow_canary_then_complete(stores: Stores, routed: list[str]) -> None:
    # Given version 1 in production and version 2 waiting with a canary strategy (no bake time)
    s = get_settings()
    from functions.models.audit import Actor

    ops = Actor(identity="ops")
    register(stores, "churn")
    releases.approve(s, "churn", 1, ops, "first")
    releases.promote(s, "churn", 1, ops)
    v2 = register(stores, "churn")
    # no traffic reaches the candidate here (no serving in this test): the spec opts into passing
    strategy = {"kind": "canary", "weight": 0.2, "bake_seconds": 0, "check": {"on_no_data": "pass"}}
    arn = start_chain(
        chain_definition(3600), {"registered": {"model": "churn", "version": v2.version}, "release": strategy}
    )
    wait_for(lambda: "churn-2" in pending_ids(), "the approval request")
    # When approved
    assert call("POST", "/v1/approvals/churn-2/approve", {"reason": "ok"}, who="alice")[0] == 200
    # Then canary -> check (no metrics in moto: "no data", passes as the strategy says) -> production
    done = wait_for(lambda: execution_done(arn), "the execution to finish")
    assert done["status"] == "SUCCEEDED", done
    assert routed[1:] == ["release:start_canary", "release:check_canary", "release:complete_canary"]
    record = releases.read_state(s, "churn").record
    assert (record.production_version, record.candidate_version, record.previous_production) == (2, None, [1])
