"""The real CDK app, synthesized once per test session (no Docker, no credentials).

The app has two stacks (the stores and the compute stack on them). `assemblies` is every stack in
deployment order; `assembly` is the compute stack (the one the CLI names: its outputs, metadata and
assets) with the template of every stack merged into its `template`, which `template` and
`resources` read too (logical ids are unique across the app's stacks; each Fn::ImportValue is
replaced by the value its export holds, as CloudFormation resolves it), so each check sees the
whole app as one template. The console stack (setting `console`, on by default) is in
`assemblies`, but not in that merged template: its second API repeats the IAM API's routes in front
of the same functions, so it is read on its own (`console_template`, tests/infra/test_console_infra.py).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from aws_cdk.assertions import Template

from infra import constants as c
from layers.assembly import read_assemblies
from stepwise.local.assembly import Assembly, synthesize
from tests.infra.templates import merged_template


@pytest.fixture(scope="session")
def assemblies(tmp_path_factory: pytest.TempPathFactory) -> list[Assembly]:
    compute = synthesize(tmp_path_factory.mktemp("cdk.out"))
    return read_assemblies(compute.outdir)


@pytest.fixture(scope="session")
def app_template(assemblies: list[Assembly]) -> dict[str, Any]:
    return merged_template([a for a in assemblies if a.stack_name != c.CONSOLE_STACK_NAME])


@pytest.fixture(scope="session")
def console_template(assemblies: list[Assembly]) -> dict[str, Any]:
    """The console stack's own template (its imports of the other stacks left as Fn::ImportValue)."""
    (console,) = (a for a in assemblies if a.stack_name == c.CONSOLE_STACK_NAME)
    return console.template


@pytest.fixture(scope="session")
def assembly(assemblies: list[Assembly], app_template: dict[str, Any]) -> Assembly:
    (compute,) = (a for a in assemblies if a.stack_name == c.STACK_NAME)
    return replace(compute, template=app_template)


@pytest.fixture(scope="session")
def template(app_template: dict[str, Any]) -> Template:
    return Template.from_json(app_template)


@pytest.fixture(scope="session")
def resources(app_template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return app_template["Resources"]  # type: ignore[no-any-return]
