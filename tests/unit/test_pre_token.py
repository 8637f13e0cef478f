"""The console user pool's pre-token-generation trigger (functions/handlers/pre_token.py): the access
token gets the `stepwise/<Persona>` scopes of the personas the user's groups map to, and nothing else
under `stepwise/`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.handlers import pre_token
from functions.models.settings import get_settings
from infra import constants as c
from tests.lambda_context import FakeContext as LambdaContext


def trigger_event(groups: list[str], scopes: list[str] | None = None) -> dict[str, Any]:
    """A Cognito pre-token-generation event, version 2 (what the V2_0 trigger receives)."""
    return {
        "version": "2",
        "triggerSource": "TokenGeneration_HostedAuth",
        "region": "eu-west-1",
        "userPoolId": "eu-west-1_AbCdEf123",
        "userName": "ana",
        "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": "abc123"},
        "request": {
            "userAttributes": {"sub": "6f1c2d3e-0000-4000-8000-1234567890ab"},
            "groupConfiguration": {"groupsToOverride": groups, "iamRolesToOverride": [], "preferredRole": None},
            "scopes": scopes or ["openid", "email"],
        },
        "response": {"claimsAndScopeOverrideDetails": None},
    }


@pytest.fixture(autouse=True)
def persona_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    # as the stack sets it with the console on: each persona's own group, plus a mapped one
    mapping = {"Approver": ["Approver", "leads"], "Auditor": ["Auditor"], "Operator": ["Operator"]}
    monkeypatch.setenv(c.ENV_PERSONA_GROUPS, json.dumps(mapping))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def scopes_of(reply: dict[str, Any]) -> dict[str, list[str]]:
    return reply["response"]["claimsAndScopeOverrideDetails"]["accessTokenGeneration"]  # type: ignore[no-any-return]


def test_pre_token_adds_the_scopes_of_the_users_personas() -> None:
    reply = pre_token.lambda_handler(trigger_event(["leads", "Auditor", "unrelated"]), LambdaContext())
    assert scopes_of(reply)["scopesToAdd"] == ["stepwise/Approver", "stepwise/Auditor"]


def test_pre_token_user_in_no_mapped_group_gets_no_persona_scope() -> None:
    reply = pre_token.lambda_handler(trigger_event(["unrelated"]), LambdaContext())
    assert scopes_of(reply)["scopesToAdd"] == []


def test_pre_token_suppresses_persona_scopes_the_user_did_not_earn() -> None:
    # Given a token request that asks for an operator scope by itself (the app client never offers it)
    event = trigger_event(["Approver"], scopes=["openid", "stepwise/Operator", "stepwise/Approver"])
    # When the trigger runs
    reply = pre_token.lambda_handler(event, LambdaContext())
    # Then the token keeps only what the groups give
    assert scopes_of(reply) == {"scopesToAdd": ["stepwise/Approver"], "scopesToSuppress": ["stepwise/Operator"]}


def test_pre_token_scope_server_matches_the_stacks() -> None:
    from functions.logic.approval_notice import CONSOLE_APPROVAL_ROUTE
    from functions.models.personas import SCOPE_SERVER

    assert SCOPE_SERVER == c.CONSOLE_SCOPE_SERVER
    assert CONSOLE_APPROVAL_ROUTE == c.CONSOLE_APPROVAL_ROUTE
