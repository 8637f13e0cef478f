"""Feature view models: what parses, and what is refused with the field and the reason."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from functions.models.contracts import contract_errors
from functions.models.features import MAX_TTL_SECONDS, FeatureView, FeatureViewBody


def view(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "spend",
        "entity_keys": ["customer", "store"],
        "source": "orders",
        "timestamp_column": "at",
        "ttl_seconds": 3600,
        "features": [{"name": "spend", "type": "float"}, {"name": "visits 7d", "type": "int"}],
    }
    return {**base, **overrides}


def refusal(doc: dict[str, Any], model: type[FeatureView] = FeatureView) -> list[dict[str, str]]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(doc)
    return contract_errors(caught.value)


def test_feature_view_parses_and_the_body_may_omit_the_name() -> None:
    parsed = FeatureView.model_validate(view(description="per customer and store"))
    assert parsed.entity_keys == ["customer", "store"] and parsed.features[1].name == "visits 7d"
    assert FeatureViewBody.model_validate({k: v for k, v in view().items() if k != "name"}).name is None


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"name": "Spend!"}, "name", "should match pattern"),
        ({"source": "no such"}, "source", "should match pattern"),
        ({"entity_keys": []}, "entity_keys", "at least 1 item"),
        ({"entity_keys": ["a", "b", "c", "d", "e"]}, "entity_keys", "at most 4 items"),
        ({"entity_keys": ["bad\tname"]}, "entity_keys.0", "should match pattern"),
        ({"entity_keys": ["customer", "customer"]}, "(contract)", "entity keys must be distinct"),
        ({"timestamp_column": "customer"}, "(contract)", "timestamp column 'customer' is also an entity key"),
        ({"ttl_seconds": 0}, "ttl_seconds", "greater than 0"),
        ({"ttl_seconds": -5}, "ttl_seconds", "greater than 0"),
        ({"ttl_seconds": MAX_TTL_SECONDS + 1}, "ttl_seconds", f"less than or equal to {MAX_TTL_SECONDS}"),
        ({"ttl_seconds": 1.5}, "ttl_seconds", "integer"),
        ({"features": []}, "features", "at least 1 item"),
        ({"features": [{"name": f"f{i}", "type": "float"} for i in range(1001)]}, "features", "at most 1000 items"),
        ({"features": [{"name": "x", "type": "decimal"}]}, "features.0.type", "Input should be"),
        ({"features": [{"name": "1x", "type": "float"}]}, "features.0.name", "should match pattern"),
        (
            {"features": [{"name": "x", "type": "float"}, {"name": "x", "type": "int"}]},
            "(contract)",
            "feature names must be unique; repeated: ['x']",
        ),
        ({"features": [{"name": "at", "type": "timestamp"}]}, "(contract)", "entity key or timestamp column"),
        ({"owner": "me"}, "owner", "Extra inputs are not permitted"),
    ],
)
def test_feature_view_bad_field_is_refused_naming_it(overrides: dict[str, Any], field: str, reason: str) -> None:
    errors = refusal(view(**overrides))
    assert any(e["field"] == field and reason in e["reason"] for e in errors), errors
