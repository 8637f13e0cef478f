"""`stepwise rollback` against the real control API handler (in-process, on moto): it reads what
serves, prints it, and sends it as the rollback's expectation."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from functions.handlers import api, release
from functions.logic import releases
from functions.models.audit import Actor
from functions.models.registry import VersionStatus as S
from functions.models.settings import get_settings
from stepwise.cli import main
from stepwise.target import ApiReply, Target
from tests.integration.approval_support import Context, api_event
from tests.integration.conftest import Stores
from tests.integration.release_support import register

OPS = Actor(identity="ops")


class HandlerTarget(Target):
    """Sends the CLI's API calls to the control API handler in this process, signed as carol;
    `before_post` runs between the CLI's read and its rollback (another writer's turn)."""

    calls: list[tuple[str, str, Any]]
    before_post: Callable[[], None] | None

    def api(self, method: str, path: str, body: Any = None, *, identity: str | None = None) -> ApiReply:
        if method == "POST" and self.before_post is not None:
            self.before_post()
        self.calls.append((method, path, body))
        path, _, query = path.partition("?")
        event = api_event(method, path, body, who="carol")
        event["queryStringParameters"] = dict(urllib.parse.parse_qsl(query)) or None
        reply = api.lambda_handler(event, Context())
        return ApiReply(status=reply["statusCode"], body=json.loads(reply["body"]) if reply.get("body") else None)


@pytest.fixture
def target(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> Iterator[HandlerTarget]:
    handler_target = HandlerTarget(api_url="http://local", outputs={})
    handler_target.calls, handler_target.before_post = [], None
    monkeypatch.setattr("stepwise.cli.resolve", lambda *a: handler_target)
    yield handler_target


def production_then_canary(stores: Stores) -> None:
    """churn: 1, 2, 3 promoted in turn, 4 in canary."""
    s = get_settings()
    for _ in range(4):
        v = register(stores, "churn")
        releases.approve(s, "churn", v.version, OPS, "ok")
    for n in (1, 2, 3):
        releases.promote(s, "churn", n, OPS)
    releases.start_canary(s, "churn", 4, 0.1, OPS, "try")


def test_rollback_cli_sends_what_it_shows_and_a_second_run_cannot_roll_back_unseen(
    stores: Stores, target: HandlerTarget, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given production 3 and canary 4
    production_then_canary(stores)
    # When the operator rolls back
    assert main(["rollback", "churn", "--reason", "canary errors"]) == 0
    # Then the CLI showed the canary it rolls back and sent what it showed as the expectation
    out = capsys.readouterr().out
    assert "rolling back canary version 4; production version 3 keeps serving" in out
    assert "production is version 3" in out
    posted = [body for method, _, body in target.calls if method == "POST"]
    assert posted == [
        {"reason": "canary errors", "expected_production_version": 3, "expected_canary_version": 4},
    ]
    state = releases.read_state(get_settings(), "churn")
    assert (state.record.production_version, state.versions[4].status) == (3, S.ROLLED_BACK)


def test_rollback_cli_raced_by_the_workflow_is_refused_and_production_stays(
    stores: Stores, target: HandlerTarget, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given production 3 and canary 4 read by the CLI, and the workflow's own canary rollback
    # landing between that read and the CLI's rollback
    production_then_canary(stores)
    event = {"action": "rollback_canary", "model": "churn", "version": 4, "execution": "exec-1", "reason": "bad"}

    def workflow_rolls_back() -> None:
        release.lambda_handler(event, Context())

    target.before_post = workflow_rolls_back
    # When the operator rolls back, Then it fails with the 409 naming what it expected and found
    assert main(["rollback", "churn", "--reason", "canary errors"]) == 1
    out = capsys.readouterr().out
    assert "HTTP 409 StaleExpectation" in out and "expected production version 3 with canary version 4" in out
    # And production 3 still serves: nothing the operator did not see was rolled back
    state = releases.read_state(get_settings(), "churn")
    assert state.record.production_version == 3 and state.versions[3].status == S.PRODUCTION


def test_rollback_cli_production_with_a_named_target_sends_the_production_it_read(
    stores: Stores, target: HandlerTarget, capsys: pytest.CaptureFixture[str]
) -> None:
    production_then_canary(stores)
    releases.rollback(get_settings(), "churn", OPS, "canary", expected_production=3, expected_canary=4)
    assert main(["rollback", "churn", "--to", "1", "--reason", "back to the first"]) == 0
    assert "rolling back production version 3 to version 1" in capsys.readouterr().out
    posted = [body for method, _, body in target.calls if method == "POST"]
    assert posted == [{"reason": "back to the first", "expected_production_version": 3, "to_version": 1}]
    assert releases.read_state(get_settings(), "churn").record.production_version == 1


def test_rollback_cli_with_nothing_in_production_says_so(
    stores: Stores, target: HandlerTarget, capsys: pytest.CaptureFixture[str]
) -> None:
    register(stores, "churn")
    assert main(["rollback", "churn", "--reason", "x"]) == 1
    assert "churn has no production version to roll back" in capsys.readouterr().out
    assert [m for m, _, _ in target.calls] == ["GET"]
