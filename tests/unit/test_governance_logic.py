"""Governance logic without stores: retirement plans, since parsing, model card rendering."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from functions.logic import governance, model_card
from functions.logic.lineage import periods
from functions.logic.releases import State
from functions.logic.retirement import plan_retire
from functions.models.audit import Actor
from functions.models.errors import Conflict, InvalidInput
from functions.models.lineage import (
    ApprovalLineage,
    DatasetLineage,
    EvaluationLineage,
    Lineage,
    RetireRequest,
    RunLineage,
)
from functions.models.registry import GateVerdict, VersionStatus
from functions.models.specs import TrainingSpec
from tests.unit.test_release_plans import state as release_state
from tests.unit.test_release_plans import version

NOW = datetime(2026, 5, 1, tzinfo=UTC)
OPS = Actor(identity="ops")
S = VersionStatus


def _state(production: int | None, previous: list[int], **statuses: VersionStatus) -> State:
    """Versions given as v1=..., v2=...; the record with that production version and rollback list."""
    return release_state(
        {int(k[1:]): s for k, s in statuses.items()},
        latest_version=len(statuses),
        production_version=production,
        previous_production=previous,
    )


@pytest.mark.parametrize("status", [S.PRODUCTION, S.CANARY])
def test_retire_plan_refuses_serving_versions(status: VersionStatus) -> None:
    state = _state(1 if status == S.PRODUCTION else None, [], v1=status)
    with pytest.raises(Conflict, match="serving"):
        plan_retire(state, 1, OPS, "old")


def test_retire_plan_refuses_pending_versions_by_transition() -> None:
    with pytest.raises(Conflict, match="PENDING_APPROVAL -> RETIRED"):
        plan_retire(_state(None, [], v1=S.PENDING_APPROVAL), 1, OPS, "old")


def test_retire_plan_drops_the_version_from_the_rollback_list() -> None:
    # Given v1 archived (a rollback target) and v2 in production
    state = _state(2, [1], v1=S.ARCHIVED, v2=S.PRODUCTION)
    # When v1 is retired
    plan = plan_retire(state, 1, OPS, "superseded")
    # Then it goes RETIRED, production stays, and the rollback list loses it (revision bumped)
    assert [(c.version.version, c.to) for c in plan.changes] == [(1, S.RETIRED)]
    assert plan.record_after is not None and plan.record_after.previous_production == []
    assert plan.record_after.production_version == 2 and plan.record_after.revision == 1
    assert [e.action for e in plan.events] == ["version.retire", "model.aliases"]
    assert all(e.who == "ops" and "superseded" in e.reason for e in plan.events)


def test_retire_plan_of_a_rejected_version_moves_no_alias() -> None:
    plan = plan_retire(_state(None, [], v1=S.REJECTED), 1, OPS, "failed gates")
    assert plan.record_after is None and [e.action for e in plan.events] == ["version.retire"]


def test_retire_request_needs_a_reason() -> None:
    with pytest.raises(ValueError, match="reason"):
        RetireRequest(reason="  ")


def test_governance_since_parses_dates_and_times_as_utc() -> None:
    assert governance.parse_since("2026-05-01") == NOW
    assert governance.parse_since("2026-05-01T02:00:00+02:00") == NOW
    assert governance.parse_since(None) is None
    with pytest.raises(InvalidInput):
        governance.parse_since("last week")


def test_lineage_periods_name_who_promoted_and_ended() -> None:
    v = version(1, S.ARCHIVED).model_copy(
        update={
            "production_periods": [
                {
                    "from": "a",
                    "promoted_by": "alice",
                    "reason": "r",
                    "to": "b",
                    "ended_by": "bob",
                    "ended_as": "ARCHIVED",
                }
            ]
        }
    )
    (p,) = periods(v)
    assert (p.started, p.ended, p.promoted_by, p.ended_by, p.ended_as) == ("a", "b", "alice", "bob", "ARCHIVED")


def _lineage() -> Lineage:
    return Lineage(
        model="m",
        version=3,
        status=S.PRODUCTION,
        created_at=NOW,
        run=RunLineage(run_id="m-1-1", spec_name="s", spec_version=1, seed=7),
        dataset=DatasetLineage(dataset="d", version=1, key="validated/d/x.csv", version_id="v1", sha256="ab" * 32),
        evaluation=EvaluationLineage(
            metrics={"accuracy": 0.9},
            primary_metric="accuracy",
            gates=[GateVerdict(gate="primary_metric", passed=True, value=0.9, threshold=0.8)],
        ),
        approval=ApprovalLineage(status="APPROVED", who="alice", at=NOW, reason="good | enough"),
    )


def test_model_card_names_intended_use_limitations_data_and_approval() -> None:
    spec = TrainingSpec.model_validate(
        {
            "name": "s",
            "model": "m",
            "dataset": "d",
            "target": "y",
            "features": ["x"],
            "task": "classification",
            "estimator": {"name": "LogisticRegression"},
            "intended_use": "Ranking wines for tasting",
            "limitations": "Only Italian wines",
        }
    )
    markdown = model_card.render_markdown(_lineage(), spec)
    assert "Ranking wines for tasting" in markdown and "Only Italian wines" in markdown
    assert "ab" * 32 in markdown and "`v1`" in markdown
    assert "APPROVED by `alice`" in markdown and "| primary_metric | pass | 0.9 | 0.8 |  |" in markdown


def test_model_card_html_escapes_and_keeps_tables() -> None:
    page = model_card.render_html("# T <x>\n\n| a | b |\n| --- | --- |\n| 1 \\| 2 | 3 |\n- item\n", "t")
    assert "<h1>T &lt;x&gt;</h1>" in page
    assert "<tr><th>a</th><th>b</th></tr>" in page and "<td>1 | 2</td>" in page
    assert "<li>item</li>" in page and page.count("<table>") == 1


def test_governance_cli_renders_lineage_down_to_the_object_and_flags_missing_links() -> None:
    from stepwise.commands.governance import render_audit, render_lineage

    body = json.loads(_lineage().model_copy(update={"missing": ["run: no run"]}).model_dump_json())
    text = render_lineage(body)
    assert "version id  v1" in text and "ab" * 32 in text and "APPROVED by alice" in text
    assert "MISSING run: no run" in text and "never in production" in text
    assert render_audit({"events": []}) == "no audit events"
