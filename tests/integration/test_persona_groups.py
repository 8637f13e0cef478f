"""Cognito groups as personas on the control API (handler on moto): with the stack setting
`persona_groups`, a caller the user pool authorized reaches only the routes of its groups'
personas; a refused approve/reject/rollback/retire is audited. IAM callers are left to IAM."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.dal import audit
from functions.handlers import api
from functions.models.audit import model_target
from functions.models.settings import get_settings
from infra import constants as c
from tests.integration.approval_support import Context, api_event
from tests.integration.conftest import Stores

POOL_ISS = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbCdEf123"


def cognito_call(method: str, path: str, resource: str, body: Any = None, *, user: str, groups: list[str]) -> Any:
    """A request the user pool authorizer let through: the ID token's claims, no IAM identity."""
    event = api_event(method, path, body, who=None)
    event["resource"] = event["requestContext"]["resourcePath"] = resource
    params = dict(zip(resource.split("/"), path.split("/"), strict=True))
    event["pathParameters"] = {k.strip("{}"): v for k, v in params.items() if k.startswith("{")} or None
    claims = {"sub": f"sub-{user}", "cognito:username": user, "iss": POOL_ISS, "cognito:groups": groups}
    event["requestContext"]["authorizer"] = {"claims": claims}
    reply = api.lambda_handler(event, Context())
    return reply["statusCode"], json.loads(reply["body"]) if reply.get("body") else None


@pytest.fixture
def groups(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> Stores:
    monkeypatch.setenv(c.ENV_PERSONA_GROUPS, json.dumps({"Approver": ["leads"], "Auditor": ["audit"]}))
    get_settings.cache_clear()
    return stores


APPROVE = ("POST", "/v1/approvals/churn-1/approve", "/v1/approvals/{approval_id}/approve")


def test_persona_groups_an_auditor_group_cannot_approve_and_the_refusal_is_audited(
    groups: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    # When a member of `audit` (Auditor) approves
    status, body = cognito_call(*APPROVE, {"reason": "looks fine"}, user="ana", groups=["audit"])
    assert '"DecisionsRefused"' in capsys.readouterr().out  # counted with the refused decisions
    # Then 403 naming the rule, her groups and personas; audited as a refused access
    assert status == 403 and body["error"] == "Forbidden", body
    assert "persona_groups" in body["message"] and "['audit']" in body["message"], body
    assert "['Auditor']" in body["message"], body
    (event,) = [e for e in audit.list_events(groups.metadata_table, target=model_target("churn"))]
    assert (event.action, event.who) == ("access.refused", "cognito:us-east-1_AbCdEf123/ana"), event
    assert "persona_groups" in (event.reason or "")


def test_persona_groups_an_auditor_group_reads_the_audit_trail(groups: Stores) -> None:
    status, body = cognito_call("GET", "/v1/audit", "/v1/audit", user="ana", groups=["audit"])
    assert status == 200, body


def test_persona_groups_an_approver_group_passes_to_the_decision(groups: Stores) -> None:
    # When a member of `leads` (Approver) approves a request that does not exist: past the gate, 404
    status, body = cognito_call(*APPROVE, {"reason": "fine"}, user="lee", groups=["leads", "other"])
    assert status == 404 and body["error"] == "NotFound", body
    # and the audit trail is hers to read only through an Auditor group
    assert cognito_call("GET", "/v1/audit", "/v1/audit", user="lee", groups=["leads"])[0] == 403


def test_persona_groups_a_caller_in_no_mapped_group_reads_nothing(groups: Stores) -> None:
    status, body = cognito_call("GET", "/v1/models", "/v1/models", user="eve", groups=[])
    assert status == 403 and "[]" in body["message"], body
    # a read refused is not a decision: not audited
    assert audit.list_events(groups.metadata_table, target=model_target("unknown")) == []


def test_persona_groups_iam_callers_are_left_to_iam(groups: Stores) -> None:
    reply = api.lambda_handler(api_event("GET", "/v1/models", who="alice"), Context())
    assert reply["statusCode"] == 200, reply


def test_persona_groups_off_lets_the_authorizer_decide(stores: Stores) -> None:
    status, body = cognito_call("GET", "/v1/models", "/v1/models", user="eve", groups=[])
    assert status == 200, body
