"""The CLI for many models against the real control API handler (in-process, on moto): `models`
pages (--limit, --all, and says when more exist), `drift MODEL --settings --cadence` (audited, bad
cadence refused naming the field) and `drift --fleet` (the latest round's summary)."""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from functions.dal import audit as audit_dal
from functions.handlers import api
from functions.logic.drift_schedule import record_page
from functions.models.drift import FleetOutcome, FleetRecordRequest
from functions.models.settings import get_settings
from stepwise.cli import main
from stepwise.target import ApiReply, Target
from tests.integration.approval_support import Context, api_event
from tests.integration.conftest import Stores
from tests.integration.test_drift_check import _register
from tests.integration.test_registry_pages import seed_models


class HandlerTarget(Target):
    """Sends the CLI's API calls to the control API handler in this process, signed as carol."""

    def api(self, method: str, path: str, body: Any = None, *, identity: str | None = None) -> ApiReply:
        path, _, query = path.partition("?")
        event = api_event(method, path, body, who="carol")
        params = dict(urllib.parse.parse_qsl(query))
        event["queryStringParameters"] = params or None
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in params.items()} or None
        reply = api.lambda_handler(event, Context())
        return ApiReply(status=reply["statusCode"], body=json.loads(reply["body"]) if reply.get("body") else None)


@pytest.fixture
def target(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> Iterator[HandlerTarget]:
    handler_target = HandlerTarget(api_url="http://local", outputs={})
    monkeypatch.setattr("stepwise.cli.resolve", lambda *a: handler_target)
    yield handler_target


def test_cli_models_says_when_more_exist_and_all_follows_the_pages(
    stores: Stores, target: HandlerTarget, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_models(stores, 5)
    assert main(["models", "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "model-0001" in out and "model-0002" not in out and "more models: stepwise models --all" in out
    assert main(["models", "--limit", "2", "--all"]) == 0
    out = capsys.readouterr().out
    assert all(f"model-{i:04d}" in out for i in range(5)) and "more models" not in out


def test_cli_drift_settings_changes_the_cadence_audited_and_refuses_an_unknown_one(
    stores: Stores, target: HandlerTarget, capsys: pytest.CaptureFixture[str]
) -> None:
    _register(stores)
    assert main(["drift", "churn", "--settings", "--cadence", "6"]) == 0
    assert "churn: checked every 6 h" in capsys.readouterr().out
    (change,) = [
        e for e in audit_dal.list_events(stores.metadata_table, target="model/churn") if e.action == "drift.settings"
    ]
    assert (change.before["cadence_hours"], change.after["cadence_hours"]) == (1, 6)
    assert main(["drift", "churn", "--settings", "--cadence", "5"]) == 1
    out = capsys.readouterr().out
    assert "HTTP 400 InvalidInput" in out and "cadence_hours" in out
    assert main(["drift", "churn", "--settings"]) == 0
    assert "checked every 6 h" in capsys.readouterr().out


def test_cli_drift_fleet_shows_the_latest_round(
    stores: Stores, target: HandlerTarget, capsys: pytest.CaptureFixture[str]
) -> None:
    at = datetime(2026, 11, 26, 12, tzinfo=UTC)
    outcomes = [
        FleetOutcome(model="a", status="checked", verdict="no_drift"),
        FleetOutcome(model="b", status="failed", error="NotFound", cause=json.dumps({"errorMessage": "no profile"})),
    ]
    record_page(
        FleetRecordRequest(round_id="s20261126T120000Z", time=at, outcomes=outcomes, final=True), get_settings()
    )
    assert main(["drift", "--fleet"]) == 0
    out = capsys.readouterr().out
    assert "round s20261126T120000Z (complete, 1 page(s)): 1 checked, 0 skipped, 1 failed" in out
    assert "failed   b: NotFound: no profile" in out


def test_cli_versions_follows_every_page(
    stores: Stores, target: HandlerTarget, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.integration.release_support import register

    # Given 3 versions, and pages of 2 (the CLI's first request asks for pages of 2)
    for _ in range(3):
        register(stores, "churn")
    calls: list[str] = []
    original = target.api

    def paged(method: str, path: str, body: Any = None, *, identity: str | None = None) -> ApiReply:
        calls.append(path)
        if "?" not in path:
            path += "?limit=2"
        return original(method, path, body, identity=identity)

    monkeypatch.setattr(target, "api", paged)
    # When the CLI lists them
    assert main(["versions", "churn"]) == 0
    # Then it followed the second page's token and printed all three
    out = capsys.readouterr().out
    assert len(calls) == 2 and "next_token=" in calls[1]
    assert [int(m) for m in re.findall(r"^\s*(\d+)\s", out, flags=re.MULTILINE)] == [1, 2, 3], out


def test_cli_lists_say_when_more_exist_and_all_follows_the_pages(
    stores: Stores, target: HandlerTarget, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.integration.test_list_pages import seed_approvals, seed_events, seed_runs

    # Given 5 runs, 5 pending approvals and 5 audit events of churn
    runs = seed_runs(stores, "churn", 5)
    approvals = seed_approvals(stores, 5)
    seed_events(stores, 5, "model/other")
    # When each list is read 2 at a time: one page, and a hint naming how to read on
    assert main(["runs", "churn", "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert runs[4] in out and runs[2] not in out and "more runs: stepwise runs churn --all" in out
    assert main(["approvals", "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("churn") == 2 and "more pending requests" in out
    assert main(["audit", "other", "--limit", "2", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert len(body["events"]) == 2 and body["next_token"]
    # Then --all reads every page, and nothing says more exist
    assert main(["runs", "churn", "--limit", "2", "--all"]) == 0
    out = capsys.readouterr().out
    assert all(r in out for r in runs) and "more runs" not in out
    assert main(["approvals", "--limit", "2", "--all"]) == 0
    out = capsys.readouterr().out
    assert out.count("churn") == len(approvals) and "more pending" not in out
    assert main(["audit", "other", "--limit", "2", "--all", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert len(body["events"]) == 5 and body["next_token"] is None
    # and the audit filters reach the API: the seeded actor and action match all, others none
    assert main(["audit", "other", "--actor", "carol", "--action", "version.", "--all", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["events"]) == 5
    assert main(["audit", "other", "--actor", "dave", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["events"] == []
    assert main(["audit", "other", "--action", "approval.", "--until", "2027-01-01", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["events"] == []
