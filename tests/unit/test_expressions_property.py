"""Property: training-time and serving-time values of derived features agree, and both follow the
documented semantics.

Hypothesis generates well-typed expressions per family (arithmetic, math functions, logic,
nulls, buckets, dates, strings) over a fixed set of typed inputs, and rows with nulls, NaN/inf,
zeros, values outside every bucket, unseen and non-ASCII strings. For each example:
- the printed expression parses back to the same tree;
- the training path (`derive_columns` over a pyarrow table) equals serving batched (ONNX Runtime on
  `request_feeds` of the same rows as dicts): identical feeds, identical values;
- serving one row at a time equals serving batched within float32 rounding;
- both equal the plain-Python reading of the semantics below (`oracle`) within float32 rounding.

Examples per family: STEPWISE_PROPERTY_EXAMPLES (default 200; CI's default), e.g. 2000 for a long run.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from functions.logic.expressions import check, field_refs, infer, parse, unparse
from functions.logic.expressions_onnx import compile_transformation, derive_columns
from functions.logic.expressions_runtime import TransformRunner, request_feeds
from functions.models.expressions import (
    Binary,
    BoolLit,
    Call,
    DerivedFeature,
    Expr,
    FieldRef,
    InList,
    InputField,
    ListLit,
    NumberLit,
    StringLit,
    Unary,
    ValueType,
)

EXAMPLES = int(os.environ.get("STEPWISE_PROPERTY_EXAMPLES", "200"))
FIELDS: dict[str, ValueType] = {
    "f1": "float", "f2": "float", "n1": "int", "n2": "int", "b1": "bool",
    "s1": "string", "s2": "string", "t1": "timestamp", "t2": "timestamp",
}  # fmt: skip
INPUTS = [InputField(name=n, type=t) for n, t in FIELDS.items()]
WORDS = ["a", "B", "ab", "AB", "x y", "Ä", "ß", "İ"]
ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
NAN = math.nan


# -- the semantics, read from functions/logic/expressions.py, one row at a time -------------------
def _fin(v: float) -> float:
    return NAN if math.isinf(v) else v


def _null(v: Any) -> bool:
    return v == "" if isinstance(v, str) else math.isnan(v)


def oracle(expr: Expr, row: dict[str, Any]) -> Any:
    """Numbers, bools (0/1) and timestamps as float with NaN for null; strings with "" for null."""
    ev = lambda e: oracle(e, row)  # noqa: E731
    if isinstance(expr, NumberLit):
        return float(expr.value)
    if isinstance(expr, BoolLit):
        return 1.0 if expr.value else 0.0
    if isinstance(expr, StringLit):
        return expr.value
    if isinstance(expr, FieldRef):
        return row[expr.name]
    if isinstance(expr, Unary):
        v = ev(expr.operand)
        return -v if expr.op == "-" else 1.0 - v
    if isinstance(expr, InList):
        v = ev(expr.operand)
        if _null(v):
            return NAN
        return 1.0 if any(v == (w.value if isinstance(v, str) else float(w.value)) for w in expr.values) else 0.0
    if isinstance(expr, Binary):
        a, b = ev(expr.left), ev(expr.right)
        op = expr.op
        if op == "and":
            if a == 0.0 or b == 0.0:
                return 0.0
            return NAN if _null(a) or _null(b) else 1.0
        if op == "or":
            if a == 1.0 or b == 1.0:
                return 1.0
            return NAN if _null(a) or _null(b) else 0.0
        if op == "+":
            return _fin(a + b)
        if op == "-":
            return _fin(a - b)
        if op == "*":
            return _fin(a * b)
        if op == "/":
            return NAN if b == 0 else _fin(a / b)
        if _null(a) or _null(b):
            return NAN
        result = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b, "!=": a != b}[op]
        return 1.0 if result else 0.0
    assert isinstance(expr, Call)
    name, args = expr.function, expr.args
    if name == "bucketize":
        x = ev(args[0])
        assert isinstance(args[1], ListLit)
        return NAN if _null(x) else float(sum(1 for e in args[1].values if e.value <= x))
    vals = [ev(a) for a in args]
    if name == "log1p":
        x = vals[0]
        return NAN if _null(x) or x <= -1 else _fin(math.log1p(x))
    if name == "abs":
        return abs(vals[0])
    if name == "clip":
        x, lo, hi = vals
        return lo if x < lo else hi if x > hi else x
    if name in ("min", "max"):
        a, b = vals
        if _null(a) or _null(b):
            return NAN
        return (b if b < a else a) if name == "min" else (b if b > a else a)
    if name == "safe_div":
        a, b, default = vals
        return NAN if _null(a) else default if b == 0 else _fin(a / b)
    if name in ("coalesce", "fill"):
        return next((v for v in vals if not _null(v)), vals[-1])
    if name == "if":
        c, then, otherwise = vals
        if _null(c):
            return "" if isinstance(then, str) else NAN
        return then if c == 1.0 else otherwise
    if name == "is_null":
        return 1.0 if _null(vals[0]) else 0.0
    if name == "lower":
        return vals[0].translate(ASCII_LOWER)
    t = vals[0]
    if _null(t):
        return NAN
    when = datetime.fromtimestamp(math.floor(t), UTC)
    return float({"hour": when.hour, "day_of_week": when.weekday(), "month": when.month}[name])


# -- generated expressions ---------------------------------------------------------------------
def number_literal() -> st.SearchStrategy[NumberLit]:
    ints = st.integers(-50, 50)
    floats = st.sampled_from([0.0, 0.5, -1.0, 1e-12, 3.25, 1e200]) | st.floats(-1e3, 1e3, allow_nan=False)
    return st.builds(NumberLit, value=ints | floats)


def leaf(kind: ValueType) -> st.SearchStrategy[Expr]:
    fields = [FieldRef(name=n) for n, t in FIELDS.items() if t == kind]
    refs: st.SearchStrategy[Expr] = st.sampled_from(fields)
    if kind == "float":
        return refs | st.builds(NumberLit, value=st.floats(-1e3, 1e3, allow_nan=False))
    if kind == "int":
        return refs | st.builds(NumberLit, value=st.integers(-50, 50))
    if kind == "bool":
        return refs | st.builds(BoolLit, value=st.booleans())
    if kind == "string":
        return refs | st.builds(StringLit, value=st.sampled_from(WORDS))
    return refs


def neg(e: Expr) -> Expr:
    return NumberLit(value=-e.value) if isinstance(e, NumberLit) else Unary(op="-", operand=e)


@st.composite
def expr_of(draw: st.DrawFn, kind: ValueType, depth: int) -> Expr:
    if depth <= 0 or draw(st.integers(0, 3)) == 0:
        return draw(leaf(kind))
    builder = draw(st.sampled_from(BUILDERS[kind]))
    return builder(draw, depth - 1)


def number(draw: st.DrawFn, depth: int) -> Expr:
    return draw(expr_of(draw(st.sampled_from(["float", "int"])), depth))


def edges() -> st.SearchStrategy[ListLit]:
    values = st.lists(st.integers(-20, 20) | st.floats(-50, 50, allow_nan=False), min_size=1, max_size=6)
    unique = values.map(lambda v: sorted({float(x) if isinstance(x, float) else x for x in v}))
    return unique.filter(lambda v: all(b > a for a, b in itertools.pairwise(v))).map(
        lambda v: ListLit(values=tuple(NumberLit(value=x) for x in v))
    )


def _call(name: str, *args: Expr) -> Call:
    return Call(function=name, args=args)


def _numeric_builders(kind: ValueType) -> list[Callable[[st.DrawFn, int], Expr]]:
    same = lambda d, n: d(expr_of(kind, n))  # noqa: E731
    out: list[Callable[[st.DrawFn, int], Expr]] = [
        lambda d, n: Binary(op=d(st.sampled_from(["+", "-", "*"])), left=same(d, n), right=same(d, n)),
        lambda d, n: neg(same(d, n)),
        lambda d, n: _call("abs", same(d, n)),
        lambda d, n: _call("min", same(d, n), same(d, n)),
        lambda d, n: _call("max", same(d, n), same(d, n)),
        lambda d, n: _call("coalesce", same(d, n), same(d, n), *([same(d, n)] if d(st.booleans()) else [])),
        lambda d, n: _call("if", d(expr_of("bool", n)), same(d, n), same(d, n)),
    ]
    if kind == "float":
        out += [
            lambda d, n: Binary(op="/", left=number(d, n), right=number(d, n)),
            lambda d, n: _call("safe_div", number(d, n), number(d, n), d(number_literal())),
            lambda d, n: _call("log1p", number(d, n)),
            lambda d, n: _call("clip", number(d, n), *sorted_bounds(d)),
            lambda d, n: _call("fill", same(d, n), d(number_literal())),
        ]
    else:
        out += [
            lambda d, n: _call("bucketize", number(d, n), d(edges())),
            lambda d, n: _call(d(st.sampled_from(["hour", "day_of_week", "month"])), d(expr_of("timestamp", n))),
            lambda d, n: _call("fill", same(d, n), NumberLit(value=d(st.integers(-5, 5)))),
        ]
    return out


def sorted_bounds(draw: st.DrawFn) -> tuple[NumberLit, NumberLit]:
    a, b = draw(number_literal()), draw(number_literal())
    return (a, b) if a.value <= b.value else (b, a)


def _bool_builders() -> list[Callable[[st.DrawFn, int], Expr]]:
    ops = ["<", "<=", ">", ">=", "==", "!="]
    return [
        lambda d, n: Binary(op=d(st.sampled_from(ops)), left=number(d, n), right=number(d, n)),
        lambda d, n: Binary(
            op=d(st.sampled_from(ops)), left=d(expr_of("timestamp", n)), right=d(expr_of("timestamp", n))
        ),
        lambda d, n: Binary(
            op=d(st.sampled_from(["==", "!="])), left=d(expr_of("string", n)), right=d(expr_of("string", n))
        ),
        lambda d, n: Binary(
            op=d(st.sampled_from(["==", "!="])), left=d(expr_of("bool", n)), right=d(expr_of("bool", n))
        ),
        lambda d, n: Binary(
            op=d(st.sampled_from(["and", "or"])), left=d(expr_of("bool", n)), right=d(expr_of("bool", n))
        ),
        lambda d, n: Unary(op="not", operand=d(expr_of("bool", n))),
        lambda d, n: InList(operand=number(d, n), values=tuple(d(st.lists(number_literal(), min_size=1, max_size=4)))),
        lambda d, n: InList(
            operand=d(expr_of("string", n)),
            values=tuple(StringLit(value=w) for w in d(st.lists(st.sampled_from(WORDS), min_size=1, max_size=4))),
        ),
        lambda d, n: _call("is_null", d(expr_of(d(st.sampled_from(list(FIELDS.values()))), n))),
        lambda d, n: _call("coalesce", d(expr_of("bool", n)), d(expr_of("bool", n))),
        lambda d, n: _call("if", d(expr_of("bool", n)), d(expr_of("bool", n)), d(expr_of("bool", n))),
    ]


BUILDERS: dict[str, list[Callable[[st.DrawFn, int], Expr]]] = {
    "float": _numeric_builders("float"),
    "int": _numeric_builders("int"),
    "bool": _bool_builders(),
    "string": [
        lambda d, n: _call("lower", d(expr_of("string", n))),
        lambda d, n: _call("coalesce", d(expr_of("string", n)), d(expr_of("string", n))),
        lambda d, n: _call("fill", d(expr_of("string", n)), StringLit(value=d(st.sampled_from(WORDS)))),
        lambda d, n: _call("if", d(expr_of("bool", n)), d(expr_of("string", n)), d(expr_of("string", n))),
    ],
    "timestamp": [
        lambda d, n: _call(d(st.sampled_from(["min", "max"])), d(expr_of("timestamp", n)), d(expr_of("timestamp", n))),
        lambda d, n: _call("coalesce", d(expr_of("timestamp", n)), d(expr_of("timestamp", n))),
        lambda d, n: _call("if", d(expr_of("bool", n)), d(expr_of("timestamp", n)), d(expr_of("timestamp", n))),
    ],
}

# Each family fixes the root's construction; the subtrees come from every builder.
FAMILIES: dict[str, tuple[ValueType, list[int]]] = {
    "arithmetic": ("float", [0, 1, 5, 6]),  # + - *, negation, /, safe_div
    "math": ("float", [2, 3, 4, 7, 8]),  # abs, min, max, log1p, clip
    "logic": ("bool", [0, 1, 3, 4, 5, 6]),  # comparisons, boolean logic, membership
    "nulls": ("float", [5, 9]),  # coalesce, fill
    "buckets": ("int", [7]),  # bucketize
    "dates": ("int", [8]),  # hour, day_of_week, month
    "strings": ("string", [0, 1, 2, 3]),  # lower, coalesce, fill, if
}


@st.composite
def family_expression(draw: st.DrawFn, family: str) -> tuple[Expr, ValueType]:
    kind, roots = FAMILIES[family]
    root = BUILDERS[kind][draw(st.sampled_from(roots))]
    tree = root(draw, draw(st.integers(1, 3)))
    assume(field_refs(tree))
    return tree, kind


# -- generated rows ----------------------------------------------------------------------------
FLOATS = st.none() | st.sampled_from([0.0, -0.0, 1.0, -1.0, -2.0, 1e-20, 1e300, -1e300, math.nan, math.inf, -math.inf])
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=4)
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "float": FLOATS | st.floats(-1e4, 1e4, allow_nan=False),
    "int": st.none() | st.sampled_from([0, 1, -1]) | st.integers(-100, 100) | st.integers(-(2**40), 2**40),
    "bool": st.none() | st.booleans(),
    "string": st.none() | st.sampled_from([*WORDS, "", "unseen", "AbC"]) | TEXT,
    "timestamp": st.none()
    | st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))
    | st.datetimes(min_value=datetime(1969, 12, 31), max_value=datetime(1970, 1, 2)),
}
ARROW = {
    "float": pa.float64(),
    "int": pa.int64(),
    "bool": pa.bool_(),
    "string": pa.string(),
    "timestamp": pa.timestamp("us"),
}


@st.composite
def rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 6))
    return [{name: draw(VALUES[kind]) for name, kind in FIELDS.items()} for _ in range(n)]


def table_of(data: list[dict[str, Any]]) -> pa.Table:
    return pa.table({name: pa.array([r[name] for r in data], ARROW[kind]) for name, kind in FIELDS.items()})


# -- the property ------------------------------------------------------------------------------
def close32(actual: np.ndarray, expected: np.ndarray) -> bool:
    """Equal within float32 rounding (a few ulps), NaN where the other is NaN; strings exactly."""
    if actual.dtype == object or expected.dtype == object:
        return actual.tolist() == expected.tolist()
    a, e = actual.astype(np.float32), expected.astype(np.float32)
    return bool(np.allclose(a, e, rtol=4e-7, atol=0.0, equal_nan=True))


def as_output(value: Any, kind: ValueType) -> Any:
    if kind == "string":
        return value
    with np.errstate(over="ignore"):  # beyond float32's range is null, as in the graph
        single = np.float32(value)
    return NAN if math.isinf(single) else single


def assert_agree(tree: Expr, kind: ValueType, data: list[dict[str, Any]]) -> None:
    # the printed form parses back to the same tree
    text = unparse(tree)
    assert parse(text) == tree, text
    derived = [DerivedFeature(name="d0", expression=text, type="float" if kind == "int" else kind)]  # type: ignore[arg-type]
    follow = {"float": "d0 * 2 + f1", "int": "d0 - n1", "bool": "d0 and b1", "string": "lower(coalesce(d0, s2))"}
    derived.append(DerivedFeature(name="d1", expression=follow[kind], type=derived[0].type))
    checked = check(INPUTS, derived)
    transformation = compile_transformation(checked, ["d0", "d1"])
    runner = TransformRunner(transformation.to_bytes())

    # training: the graph over a pyarrow table; serving: the same graph over request dicts
    table = table_of(data)
    training = derive_columns(transformation, table)
    from functions.logic.expressions_onnx import table_feeds

    served_feeds = request_feeds(transformation.inputs, data)
    for name, feed in table_feeds(table, transformation.inputs).items():
        assert feed.dtype == served_feeds[name].dtype
        assert np.array_equal(feed, served_feeds[name], equal_nan=feed.dtype != object), name
    batched = runner.run(served_feeds)
    singles = [runner.run(request_feeds(transformation.inputs, [row])) for row in data]

    env_rows = [served_row(served_feeds, i) for i in range(len(data))]
    for name in ("d0", "d1"):
        out = transformation.outputs[name]
        served = batched[out].reshape(-1)
        assert np.array_equal(training[name], served, equal_nan=served.dtype != object), (text, name)
        one_by_one = np.concatenate([s[out].reshape(-1) for s in singles])
        assert close32(one_by_one, served), (text, name, one_by_one, served)
        feature = checked.by_name()[name]
        expected = []
        for env in env_rows:
            if name == "d1":
                env = env | {"d0": oracle(checked.by_name()["d0"].tree, env)}
            expected.append(as_output(oracle(feature.tree, env), feature.feature.type))
        expected_array = np.array(expected, dtype=object if served.dtype == object else np.float32)
        assert close32(served, expected_array), (text, name, served, expected_array, data)
    # the generator's type is the checker's (an int where a number of either type is drawn)
    assert infer(tree, dict(FIELDS)) in ({"int", "float"} if kind == "float" else {kind})


def served_row(feeds: dict[str, np.ndarray], i: int) -> dict[str, Any]:
    """One row as the graph sees it: numbers as float (non-finite is null), strings as fed."""
    row: dict[str, Any] = {}
    for name, column in feeds.items():
        value = column[i, 0]
        row[name] = value if column.dtype == object else (NAN if not math.isfinite(value) else float(value))
    return row


@pytest.mark.parametrize("family", sorted(FAMILIES))
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES <= 200,  # CI: the same examples every run; longer runs explore
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
@given(data=st.data(), batch=rows())
def test_expressions_training_equals_serving_equals_the_semantics(
    family: str, data: st.DataObject, batch: list
) -> None:
    tree, kind = data.draw(family_expression(family), label="expression")
    assert_agree(tree, kind, batch)
