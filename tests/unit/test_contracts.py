"""Data contracts: what parses, and what is refused with the field and the reason."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from functions.models.contracts import DataContract, contract_errors


def contract(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "columns": [
            {"name": "id", "type": "int", "nullable": False},
            {"name": "score", "type": "float", "min": 0, "max": 1, "max_null_fraction": 0.1},
            {"name": "kind", "type": "category", "categories": ["a", "b"]},
            {"name": "code", "type": "string", "pattern": "[A-Z]+"},
            {"name": "label", "type": "bool", "nullable": False},
        ],
        "key": "id",
        "target": "label",
    }
    return {**base, **overrides}


def refusal(doc: dict[str, Any]) -> list[dict[str, str]]:
    with pytest.raises(ValidationError) as caught:
        DataContract.model_validate(doc)
    return contract_errors(caught.value)


def test_contract_full_example_parses() -> None:
    parsed = DataContract.model_validate(contract(training_spec="churn", min_rows=10, max_rows=1000))
    assert parsed.column("score").max == 1 and parsed.training_spec == "churn"


def test_contract_unknown_field_is_refused_naming_it() -> None:
    errors = refusal(contract(colums=[]))
    assert any(e["field"] == "colums" and "Extra inputs" in e["reason"] for e in errors)


def test_contract_unknown_column_type_is_refused_with_field_path() -> None:
    doc = contract()
    doc["columns"][0]["type"] = "integer"
    assert refusal(doc)[0]["field"] == "columns.0.type"


@pytest.mark.parametrize(
    ("column", "reason"),
    [
        ({"name": "x", "type": "float", "min": 2, "max": 1}, "greater than max"),
        ({"name": "x", "type": "string", "min": 1}, "min/max apply to int and float"),
        ({"name": "x", "type": "int", "categories": ["a"]}, "categories apply to category and string"),
        ({"name": "x", "type": "float", "pattern": "a"}, "pattern applies to category and string"),
        ({"name": "x", "type": "string", "pattern": "(unclosed"}, "not a valid regular expression"),
        ({"name": "x", "type": "category", "categories": ["a", "a"]}, "distinct"),
        ({"name": "x", "type": "int", "nullable": False, "max_null_fraction": 0.5}, "needs nullable=true"),
        ({"name": "x", "type": "float", "max_null_fraction": 1.5}, "less than or equal to 1"),
        ({"name": "x", "type": "float", "min": float("inf")}, "finite"),
        ({"name": "bad name!", "type": "int"}, "should match pattern"),
    ],
)
def test_contract_inconsistent_column_is_refused_with_reason(column: dict[str, Any], reason: str) -> None:
    errors = refusal({"columns": [column]})
    assert any(reason in e["reason"] for e in errors), errors
    assert errors[0]["field"].startswith("columns.0")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"key": "nope"}, "key 'nope' is not a declared column"),
        ({"target": "score"}, "must be declared nullable=false"),
        ({"key": "score"}, "must be an int, string, category or timestamp"),
        ({"min_rows": 10, "max_rows": 5}, "less than min_rows"),
        ({"columns": []}, "at least 1 item"),
        ({"training_spec": "Not A Name"}, "should match pattern"),
    ],
)
def test_contract_inconsistent_contract_is_refused_with_reason(overrides: dict[str, Any], reason: str) -> None:
    errors = refusal(contract(**overrides))
    assert any(reason in e["reason"] for e in errors), errors


def test_contract_repeated_column_names_are_refused() -> None:
    doc = contract()
    doc["columns"].append({"name": "id", "type": "string"})
    assert "repeated: ['id']" in refusal(doc)[0]["reason"]


def test_contract_list_limits_are_explicit() -> None:
    errors = refusal({"columns": [{"name": f"c{i}", "type": "int"} for i in range(2001)]})
    assert errors[0]["field"] == "columns" and "at most 2000" in errors[0]["reason"]


def test_contract_unique_column_sets_parse_and_declare_uniqueness() -> None:
    parsed = DataContract.model_validate(contract(key=None, unique=[["kind", "code"]]))
    assert parsed.declares_unique(["code", "kind", "id"]) and not parsed.declares_unique(["kind"])
    assert DataContract.model_validate(contract()).declares_unique(["id", "code"])


@pytest.mark.parametrize(
    ("unique", "reason"),
    [
        ([["id"]], "name 2 to 8 columns (one column: use key)"),
        ([["id", "id"]], "columns must be distinct"),
        ([["id", "nope"]], "'nope' is not a declared column"),
        ([["id", "score"]], "'score' must be an int, string, category or timestamp column"),
        ([["id", "code"], ["code", "id"]], "unique column sets must be distinct"),
        ([["id", "code"]] * 9, "at most 8 items"),
    ],
)
def test_contract_bad_unique_column_set_is_refused_with_reason(unique: list[list[str]], reason: str) -> None:
    errors = refusal(contract(unique=unique))
    assert any(reason in e["reason"] for e in errors), errors
