"""1,000 generated malformed predict bodies: every one is a 4xx with a JSON error body, never a
5xx, and no non-finite number is ever accepted."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.handlers import predict
from functions.logic.serving import Serving
from functions.models.settings import get_settings
from tests.integration.conftest import Stores
from tests.integration.test_predict_support import (
    Context,
    breast_cancer_classifier,
    predict_event,
    put_model,
    put_version,
)

NAME = "breast-cancer"
MAX_INSTANCES = 20
MODEL = breast_cancer_classifier()
NAMES = MODEL.names
GOOD = MODEL.instances()[0]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
wrong_for_float = (
    st.none()
    | st.booleans()
    | st.text(max_size=30)
    | st.lists(st.floats(allow_nan=False), max_size=3)
    | st.dictionaries(st.text(max_size=5), st.integers(), max_size=2)
    | st.floats(min_value=3.01e38, allow_infinity=False)
    | st.floats(max_value=-3.01e38, allow_infinity=False)
    | st.integers(min_value=int(3.01e38))
)
NON_FINITE = ("NaN", "Infinity", "-Infinity", "1e999", "-1e400")


@st.composite
def malformed(draw: st.DrawFn) -> tuple[str, str]:
    """(kind, raw body): each kind is invalid by construction."""
    kind = draw(
        st.sampled_from(
            ["wrong_type", "non_finite", "missing", "extra", "count", "request_id", "envelope", "garbage", "top_level"]
        )
    )
    rows = [dict(GOOD) for _ in range(draw(st.integers(1, 3)))]
    target = draw(st.integers(0, len(rows) - 1))
    feature = draw(st.sampled_from(NAMES))
    body: Any = {"instances": rows}
    if kind == "wrong_type":
        rows[target][feature] = draw(wrong_for_float)
    elif kind == "non_finite":
        rows[target][feature] = 0.5
        token = draw(st.sampled_from(NON_FINITE))
        raw = json.dumps(body)
        # replace that one value (every GOOD value differs from 0.5)
        return kind, raw.replace("0.5", token, 1)
    elif kind == "missing":
        for name in draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=5, unique=True)):
            rows[target].pop(name)
    elif kind == "extra":
        key = draw(st.text(min_size=1, max_size=20).filter(lambda k: k not in NAMES))
        rows[target][key] = draw(json_values)
    elif kind == "count":
        body["instances"] = [dict(GOOD)] * draw(st.sampled_from([0, MAX_INSTANCES + 1, MAX_INSTANCES + 50]))
    elif kind == "request_id":
        body["request_id"] = draw(
            st.integers()
            | st.booleans()
            | st.just("")
            | st.text(min_size=129, max_size=200)
            | st.just("bad id with spaces")
        )
    elif kind == "envelope":
        extra = draw(st.text(min_size=1, max_size=15).filter(lambda k: k not in {"instances", "request_id"}))
        body[extra] = draw(json_values)
        if draw(st.booleans()):
            body["instances"] = draw(json_values.filter(lambda v: not isinstance(v, list) or not v))
    elif kind == "garbage":
        text = draw(st.text(max_size=60))
        try:
            json.loads(text)
            text = "{" + text
        except ValueError:
            pass
        return kind, text
    else:  # top_level: any JSON that is not an object
        body = draw(json_values.filter(lambda v: not isinstance(v, dict)))
    return kind, json.dumps(body)


@pytest.fixture
def served(stores: Stores) -> Iterator[Serving]:
    put_version(stores, NAME, 1, MODEL)
    put_model(stores, NAME, production=1)
    state = Serving(get_settings().model_copy(update={"max_instances": MAX_INSTANCES}))
    predict.reset(state)
    yield state
    predict.reset(None)


def test_predict_refuses_every_malformed_body_with_a_json_4xx(served: Serving) -> None:
    statuses: Counter[int] = Counter()
    kinds: Counter[str] = Counter()

    @settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=malformed())
    def check(case: tuple[str, str]) -> None:
        kind, raw = case
        reply = predict.lambda_handler(predict_event(NAME, None, raw=raw), Context())
        body = json.loads(reply["body"])  # always a JSON body
        statuses[reply["statusCode"]] += 1
        kinds[kind] += 1
        assert 400 <= reply["statusCode"] < 500, (kind, raw[:200], body)
        assert body["error"] == "InvalidInput" and body["message"]

    check()
    # Then 1,000 bodies of every kind were refused: no 5xx, no 2xx (so no NaN/Infinity accepted)
    assert sum(statuses.values()) == 1000
    assert set(statuses) == {400}
    assert set(kinds) == {
        "wrong_type", "non_finite", "missing", "extra", "count", "request_id", "envelope", "garbage", "top_level"
    }  # fmt: skip
    assert kinds["non_finite"] > 0
