"""End-to-end: the local cloud deployed from the synthesized template, called over HTTP.

Each test module gets its own local cloud (moto's state is process-wide, so two clouds
cannot live side by side). Every test here is slow: run with --slow (CI does).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from stepwise.local.assembly import Assembly, synthesize
from stepwise.local.session import LocalSession
from stepwise.target import Target


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.slow)


@cache
def collection_assembly() -> Assembly:
    """The app synthesized once per test process, for parameters generated at collection time from
    what the template holds (e.g. one fuzz case per API route). Call it only where the tests will
    run (with --slow): it costs a synth."""
    return synthesize(Path(tempfile.mkdtemp(prefix="stepwise-collect-")))


@pytest.fixture(scope="module")
def local_session() -> Iterator[LocalSession]:
    session = LocalSession(port=0)
    session.start()
    yield session
    session.stop()


@pytest.fixture(scope="module")
def local(local_session: LocalSession) -> Target:
    """The target every CLI command would use: signed HTTP to the API, boto3 to the stores."""
    assert local_session.target is not None
    return local_session.target
