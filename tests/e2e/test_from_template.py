"""A resource added to the CDK app appears in `stepwise status` without touching stepwise/."""

from __future__ import annotations

from stepwise.commands.status import render_status
from stepwise.local.session import LocalSession
from tests.e2e.apps.extra_resource import EXTRA_ID


def test_status_shows_a_resource_added_to_the_stack_without_changing_stepwise() -> None:
    # Given the real app plus a log group that no code under stepwise/ mentions
    session = LocalSession(port=0, app_module="tests.e2e.apps.extra_resource")
    target = session.start()
    try:
        # When status is rendered for the local cloud
        text, healthy = render_status(target)
    finally:
        session.stop()
    # Then the log group is listed, deployed from the template
    assert healthy
    line = next(line for line in text.splitlines() if line.startswith(EXTRA_ID))
    assert "AWS::Logs::LogGroup" in line and "CREATE_COMPLETE" in line
