"""The online store's key layout (functions/models/online.py)."""

from __future__ import annotations

import pytest

from functions.models.online import online_key, view_attribute


def test_key_names_the_entity_by_its_sorted_key_columns_and_canonical_texts() -> None:
    assert online_key(["customer"], ["c-17"]) == "customer=c-17"
    assert online_key(["pair", "b", "a"], [17, True, "x=y"]) == "a=x=y\x1fb=true\x1fpair=17"


def test_key_is_the_entity_alone_whatever_the_view_or_key_order() -> None:
    assert online_key(["customer"], [17]) == online_key(["customer"], ["17"])
    assert online_key(["a", "b"], [1, "x"]) == online_key(["b", "a"], ["x", 1])
    assert online_key(["customer"], [17]) != online_key(["merchant"], [17])


def test_view_attribute_names_the_view() -> None:
    assert view_attribute("cust") == "view:cust"


@pytest.mark.parametrize("bad", [[], ["a\x1fb"], ["a\x1eb"], [1.5]])
def test_bad_entities_are_refused(bad: list) -> None:
    with pytest.raises(ValueError):
        online_key(["customer"][: len(bad)] or [], bad)


@pytest.mark.parametrize(
    ("names", "values"),
    [(["a=b"], [1]), (["a\x1fb"], [1]), (["a\x1eb"], [1]), ([""], [1]), (["a", "a"], [1, 2]), (["a", "b"], [1])],
)
def test_bad_key_columns_are_refused(names: list[str], values: list) -> None:
    with pytest.raises(ValueError):
        online_key(names, values)
