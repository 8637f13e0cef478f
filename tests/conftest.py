from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", help="also run tests marked slow (CI does)")
    parser.addoption(
        "--full",
        action="store_true",
        help="also run tests marked full: every case of the fault matrices and statistical studies",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skips = {
        "slow": None if config.getoption("--slow") else pytest.mark.skip(reason="slow: run with --slow"),
        "full": None if config.getoption("--full") else pytest.mark.skip(reason="full matrix: run with --full"),
    }
    for item in items:
        for keyword, skip in skips.items():
            if skip is not None and keyword in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and region: nothing here may reach a real AWS account."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SECURITY_TOKEN", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "1")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Stepwise")


def load_event(relative: str) -> dict[str, Any]:
    """A sample event from events/, e.g. load_event("apigw/health.json")."""
    return json.loads((EVENTS / relative).read_text())
