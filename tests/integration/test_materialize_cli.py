"""`stepwise materialize` and the online freshness of `stepwise feature-views`, against the real
control API handler (in-process, on moto; no materialization function or workflow configured, so
the run's steps execute before the reply, as the local cloud's in-process path does)."""

from __future__ import annotations

import pytest

from stepwise.cli import main
from tests.integration.conftest import Stores
from tests.integration.materialize_support import VIEW_NAME, online, put_view, seed_version, stats
from tests.integration.test_many_cli import HandlerTarget

__all__ = ["online"]  # the fixture, used by name


@pytest.fixture
def target(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> HandlerTarget:
    handler_target = HandlerTarget(api_url="http://local", outputs={})
    monkeypatch.setattr("stepwise.cli.resolve", lambda *a: handler_target)
    return handler_target


def test_materialize_cli_runs_waits_and_feature_views_shows_online_freshness(
    stores: Stores, online: object, target: HandlerTarget, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a view and two validated source versions
    put_view(stores)
    seed_version(stores, stats(12, day=10, spend=100.0))
    seed_version(stores, stats(12, day=20, spend=500.0))
    # Before any materialization the view is listed as never materialized
    assert main(["feature-views"]) == 0
    assert "never materialized" in capsys.readouterr().out
    # When version 1 is materialized and waited for
    assert main(["materialize", VIEW_NAME, "--version", "1", "--wait"]) == 0
    out = capsys.readouterr().out
    # Then the run's record is printed with its counts
    assert f"of {VIEW_NAME} v1 from customer-stats@1" in out and "SUCCEEDED: chunks" in out
    # and feature-views shows the newest event time materialized and the last run
    assert main(["feature-views"]) == 0
    out = capsys.readouterr().out
    assert "2026-01-11T11:00:00+00:00" in out and "SUCCEEDED" in out and "rows/" in out
    # and bad input is refused with what is wrong
    assert main(["materialize", VIEW_NAME, "--version", "0"]) == 2
    assert main(["materialize", VIEW_NAME, "--version", "7"]) == 1
    assert "no version 7" in capsys.readouterr().out
