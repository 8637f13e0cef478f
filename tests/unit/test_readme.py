"""The README's two newcomer commands exist, and CI runs exactly the README's test command."""

from __future__ import annotations

import re

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()
CI = (ROOT / ".ci" / "run").read_text()


def _command_after(marker: str) -> str:
    match = re.search(rf"<!-- {marker} -->\s*```(?:bash|sh)?\n(.+?)\n```", README, re.S)
    assert match, f"README.md has no command block after <!-- {marker} -->"
    return match.group(1).strip()


def test_readme_demo_command_sets_up_and_runs_stepwise_demo() -> None:
    command = _command_after("demo-command")
    assert "pip install" in command and command.endswith("stepwise demo")


def test_readme_test_command_is_what_ci_runs() -> None:
    command = _command_after("test-command")
    assert "pytest" in command and "pip install" in command
    assert command in CI.splitlines()
