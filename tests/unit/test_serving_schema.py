"""The predict request model built from a version's feature schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from functions.models.registry import Feature, ModelVersion, VersionStatus
from functions.models.serving import request_model

NOW = datetime(2026, 11, 26, tzinfo=UTC)
VERSION = ModelVersion(
    model="churn",
    version=2,
    status=VersionStatus.PRODUCTION,
    created_at=NOW,
    updated_at=NOW,
    task="classification",
    target="churned",
    features=[
        Feature(name="age", type="int"),
        Feature(name="monthly charges", type="float", nullable=True),
        Feature(name="plan", type="category", categories=["free", "pro"]),
        Feature(name="note", type="string", max_length=10, nullable=True),
        Feature(name="active", type="bool"),
        Feature(name="model_config", type="float"),  # a name that clashes with pydantic's API
    ],
)
Request = request_model(VERSION, max_instances=3)
GOOD = {"age": 41, "monthly charges": 20.5, "plan": "pro", "note": "hi", "active": True, "model_config": 1}


def errors(instance: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        Request.model_validate({"instances": [instance]})
    return [(".".join(map(str, e["loc"])), e["type"]) for e in info.value.errors()]


def test_schema_accepts_a_good_row_in_feature_order() -> None:
    request = Request.model_validate({"instances": [GOOD], "request_id": "abc-1"})
    assert list(request.instances[0].__dict__.values()) == [41, 20.5, "pro", "hi", True, 1.0]  # type: ignore[attr-defined]


def test_schema_nullable_features_may_be_null_or_absent() -> None:
    row = {k: v for k, v in GOOD.items() if k != "note"} | {"monthly charges": None}
    request = Request.model_validate({"instances": [row]})
    assert request.instances[0].__dict__["f1"] is None and request.instances[0].__dict__["f3"] is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"age": "41"}, ("instances.0.age", "int_type")),
        ({"age": 41.5}, ("instances.0.age", "int_type")),
        ({"age": True}, ("instances.0.age", "int_type")),
        ({"age": 2**60}, ("instances.0.age", "less_than_equal")),
        ({"plan": "gold"}, ("instances.0.plan", "value_error")),
        ({"note": "x" * 11}, ("instances.0.note", "string_too_long")),
        ({"active": 1}, ("instances.0.active", "bool_type")),
        ({"monthly charges": float("inf")}, ("instances.0.monthly charges", "finite_number")),
        ({"colour": "red"}, ("instances.0.colour", "extra_forbidden")),
    ],
)
def test_schema_refuses_a_bad_value_naming_the_field(change: dict[str, Any], expected: tuple[str, str]) -> None:
    assert errors(GOOD | change) == [expected]


def test_schema_refuses_a_missing_required_feature() -> None:
    assert errors({k: v for k, v in GOOD.items() if k != "plan"}) == [("instances.0.plan", "missing")]


def test_schema_limits_the_number_of_rows() -> None:
    with pytest.raises(ValidationError):
        Request.model_validate({"instances": [GOOD] * 4})
    with pytest.raises(ValidationError):
        Request.model_validate({"instances": []})
