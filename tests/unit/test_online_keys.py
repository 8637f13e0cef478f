"""The online store's key layout (functions/models/online.py)."""

from __future__ import annotations

import pytest

from functions.models.online import online_key


def test_key_joins_view_and_canonical_key_texts() -> None:
    assert online_key("customer", ["c-17"]) == "customer\x1ec-17"
    assert online_key("pair", [17, True, "x"]) == "pair\x1e17\x1ftrue\x1fx"


def test_int_and_its_text_are_the_same_entity() -> None:
    assert online_key("customer", [17]) == online_key("customer", ["17"])


@pytest.mark.parametrize("bad", [[], ["a\x1fb"], ["a\x1eb"], [1.5]])
def test_bad_entities_are_refused(bad: list) -> None:
    with pytest.raises(ValueError):
        online_key("customer", bad)
