"""The release commands' parsing and rendering (no network)."""

from __future__ import annotations

from stepwise.cli import build_parser
from stepwise.commands.release import render_approvals


def test_release_cli_parses_approve_reject_rollback() -> None:
    parser = build_parser()
    approve = parser.parse_args(["--as", "alice", "approve", "churn", "3", "--reason", "fine"])
    assert (approve.identity, approve.model, approve.version, approve.decision, approve.reason) == (
        "alice",
        "churn",
        3,
        "approve",
        "fine",
    )
    assert parser.parse_args(["reject", "churn", "3", "--reason", "no"]).decision == "reject"
    rollback = parser.parse_args(["rollback", "churn", "--to", "2", "--reason", "bad"])
    assert (rollback.model, rollback.to_version) == ("churn", 2)


def test_release_cli_renders_pending_approvals() -> None:
    body = {
        "approvals": [
            {
                "model": "churn",
                "version": 3,
                "metrics": {"auc": 0.91},
                "comparison": {"primary_metric": "auc", "production_version": 2, "delta": 0.02},
                "gates": [{"gate": "min_primary", "passed": True}],
                "started_by": "trainer",
                "requested_at": "2026-01-01T00:00:00Z",
                "expires_at": "2026-01-08T00:00:00Z",
            }
        ]
    }
    text = render_approvals(body)
    assert "churn" in text and "auc 0.9100" in text and "+0.0200 vs v2" in text and "1/1" in text
    assert render_approvals({"approvals": []}) == "no approvals pending"
