"""The real CDK app, synthesized once per test session (no Docker, no credentials)."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Template

from stepwise.local.assembly import Assembly, synthesize


@pytest.fixture(scope="session")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
    return synthesize(tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="session")
def template(assembly: Assembly) -> Template:
    return Template.from_json(assembly.template)


@pytest.fixture(scope="session")
def resources(assembly: Assembly) -> dict[str, dict[str, Any]]:
    return assembly.template["Resources"]  # type: ignore[no-any-return]
