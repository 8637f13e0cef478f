"""The lineage of a version with derived features shows their definitions (CLI text)."""

from __future__ import annotations

import json

from functions.models.expressions import DerivedFeature
from tests.unit.test_governance_logic import _lineage


def test_governance_cli_renders_the_derived_feature_definitions() -> None:
    from stepwise.commands.governance import render_lineage

    derived = [DerivedFeature(name="per_visit", expression="safe_div(amount, visits, 0)", type="float")]
    body = json.loads(_lineage().model_copy(update={"derived": derived}).model_dump_json())
    text = render_lineage(body)
    assert "derived features (computed inside the ONNX graph):" in text
    assert "per_visit   float = safe_div(amount, visits, 0)" in text
    assert "derived features" not in render_lineage(json.loads(_lineage().model_dump_json()))
