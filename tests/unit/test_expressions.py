"""The expression language's parser, printer and type checker (functions/logic/expressions.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from functions.logic.expressions import MAX_DEPTH, check, parse, unparse
from functions.models.errors import InvalidInput
from functions.models.expressions import (
    Binary,
    Call,
    DerivedFeature,
    FieldRef,
    InList,
    InputField,
    ListLit,
    NumberLit,
    StringLit,
    Unary,
)
from tests.conftest import ROOT

INPUTS = [
    InputField(name="amount", type="float"),
    InputField(name="items", type="int"),
    InputField(name="member", type="bool"),
    InputField(name="city", type="string"),
    InputField(name="at", type="timestamp"),
    InputField(name="customers:avg_spend", type="float"),
    InputField(name="petal width", type="float"),
]


def feature(expression: str, type_: str = "float", name: str = "d") -> DerivedFeature:
    return DerivedFeature(name=name, expression=expression, type=type_)  # type: ignore[arg-type]


def test_expressions_parse_with_precedence_and_print_canonically() -> None:
    # Given expressions mixing every precedence level; When parsed and printed
    cases = {
        "a + b * 2": "a + b * 2",
        "(a + b) * 2": "(a + b) * 2",
        "a - (b - c)": "a - (b - c)",
        "-(a * b)": "-(a * b)",
        "- -3": "3",
        "not a and b or c": "not a and b or c",
        "not (a or b)": "not (a or b)",
        "(a < b) == (c < d)": "(a < b) == (c < d)",
        "x in [1, -2.5]": "x in [1, -2.5]",
        "bucketize(x, [0, 1e3])": "bucketize(x, [0, 1000.0])",
        "`petal width` / customers:avg_spend": "`petal width` / customers:avg_spend",
        'lower(s) in [\'a\', "b\\""]': 'lower(s) in ["a", "b\\""]',
    }
    for text, printed in cases.items():
        tree = parse(text)
        # Then the printed form is canonical and parses back to the same tree
        assert unparse(tree) == printed
        assert parse(printed) == tree
    assert parse("a + b * 2") == Binary(
        op="+", left=FieldRef(name="a"), right=Binary(op="*", left=FieldRef(name="b"), right=NumberLit(value=2))
    )
    assert parse("1") == NumberLit(value=1) and isinstance(parse("1.0"), NumberLit)
    assert isinstance(parse("1").value, int) and isinstance(parse("1.0").value, float)  # type: ignore[union-attr]


names = st.sampled_from(["a", "b", "x1", "customers:avg_spend", "petal width", "and", "in", "hour"])
literals = (
    st.builds(NumberLit, value=st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False))
    | st.builds(StringLit, value=st.text(min_size=1, max_size=6))
    | st.builds(FieldRef, name=names)
)


def _neg(e: object) -> object:
    return NumberLit(value=-e.value) if isinstance(e, NumberLit) else Unary(op="-", operand=e)  # type: ignore[arg-type]


small_numbers = st.builds(NumberLit, value=st.integers(-9, 9))
binary_ops = st.sampled_from(["+", "-", "*", "/", "<", "<=", "==", "!=", "and", "or"])
trees = st.recursive(
    literals,
    lambda inner: (
        st.builds(Binary, op=binary_ops, left=inner, right=inner)
        | st.builds(Unary, op=st.just("not"), operand=inner)
        | inner.map(_neg)
        | st.builds(
            Call, function=st.sampled_from(["f", "clip", "coalesce"]), args=st.lists(inner, max_size=3).map(tuple)
        )
        | st.builds(InList, operand=inner, values=st.lists(small_numbers, min_size=1, max_size=3).map(tuple))
        | st.builds(
            Call,
            function=st.just("bucketize"),
            args=st.tuples(inner, st.builds(ListLit, values=st.lists(small_numbers, max_size=3).map(tuple))),
        )
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(tree=trees)
def test_expressions_print_then_parse_is_the_identity(tree: object) -> None:
    # Given any tree (syntax only: types are not checked here); When printed and parsed back
    text = unparse(tree)  # type: ignore[arg-type]
    # Then the same tree comes back, and printing is stable
    assert parse(text) == tree, text
    assert unparse(parse(text)) == text


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("amount +", "expected a value, found the end of the expression (at character 9)"),
        ("amount = 3", "'=' is not an operator; compare with '=='"),
        ("amount < 1 < 2", "comparisons do not chain"),
        ("(amount", "expected ')' to close '('"),
        ("amount $ 2", "unexpected character '$'"),
        ("lower(city) == ''", "the empty string is the null string"),
        ("'abc", "unterminated string"),
        ("1e999 + amount", "number 1e999 is not finite"),
        ("99999999999999999999 + amount", "is too large"),
        ("amount amount", "unexpected 'amount' after a complete expression"),
        ("(" * 60 + "amount" + ")" * 60, "nested too deeply"),
        (" + ".join(["amount"] * (MAX_DEPTH + 2)), "too deep"),
    ],
)
def test_expressions_refuse_bad_syntax_naming_the_feature_and_the_problem(expression: str, problem: str) -> None:
    # Given a derived feature whose expression does not parse; When checked
    with pytest.raises(InvalidInput) as caught:
        check(INPUTS, [feature(expression, name="ratio")])
    # Then a 400 names the feature, the expression and the problem
    assert caught.value.status_code == 400
    assert caught.value.message.startswith(f"derived feature 'ratio': expression {expression!r}: ")
    assert problem in caught.value.message


@pytest.mark.parametrize(
    ("expression", "type_", "problem"),
    [
        ("sqrt(amount)", "float", "unknown function 'sqrt'"),
        ("amount * price", "float", "unknown field 'price'"),
        ("amount + city", "float", "'+' needs two numbers, got float + string"),
        ("clip(amount, 1)", "float", "clip() takes 3 arguments, got 2"),
        ("log1p(amount, 2)", "float", "log1p() takes 1 argument, got 2"),
        ("coalesce(amount)", "float", "coalesce() takes at least 2 arguments, got 1"),
        ("clip(amount, 5, 1)", "float", "the lower bound 5 is above the upper bound 1"),
        ("clip(amount, items, 1)", "float", "clip(): the lower bound must be a number literal"),
        ("bucketize(amount, [3, 1])", "int", "edges must be strictly increasing, got [3, 1]"),
        ("bucketize(amount, [1, 1])", "int", "edges must be strictly increasing"),
        ("bucketize(amount, [])", "int", "edges must be a non-empty [list]"),
        ("bucketize(amount, items)", "int", "edges must be a non-empty [list]"),
        ("safe_div(amount, items, amount)", "float", "the default (for a zero divisor) must be a number literal"),
        ("amount > 1", "float", "declares type float but the expression computes bool"),
        ("amount / 2", "int", "declares type int but the expression computes float"),
        ("member + 1", "float", "'+' needs two numbers, got bool + int"),
        ("city in [1, 2]", "bool", "a string is tested against string literals only"),
        ("hour(amount)", "int", "hour()'s argument must be timestamp, got float"),
        ("lower(amount)", "string", "lower()'s argument must be string, got float"),
        ("if(amount, 1, 2)", "int", "if()'s condition must be bool, got float"),
        ("coalesce(city, amount)", "string", "coalesce() needs arguments of one type, got string, float"),
        ("at", "float", "computes a timestamp"),
        ("not amount", "bool", "the operand of 'not' must be bool, got float"),
        ("amount < at", "bool", "'<' orders two numbers or two timestamps, got float < timestamp"),
        ("1 + 2", "int", "the expression is a constant"),
        ("amount + [1, 2]", "float", "a [list] is only an argument"),
    ],
)
def test_expressions_refuse_type_and_name_errors(expression: str, type_: str, problem: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check(INPUTS, [feature(expression, type_, name="ratio")])
    assert caught.value.message.startswith(f"derived feature 'ratio': expression {expression!r}: ")
    assert problem in caught.value.message, caught.value.message


def test_expressions_order_derived_features_by_dependency() -> None:
    # Given derived features declared before the ones they read
    derived = [
        feature("safe_div(amount, per_item, 0)", name="ratio"),
        feature("items * 2", "int", name="per_item"),
        feature("log1p(ratio) + per_item", name="score"),
    ]
    # When checked; Then each comes after what it reads, with its type and reads
    checked = check(INPUTS, derived)
    assert [f.feature.name for f in checked.features] == ["per_item", "ratio", "score"]
    assert checked.by_name()["per_item"].type == "int"
    assert checked.by_name()["score"].reads == ("ratio", "per_item")
    assert [i.name for i in checked.inputs_read(["score"])] == ["amount", "items"]


@pytest.mark.parametrize(
    ("derived", "cycle"),
    [
        ([feature("a + 1", name="a")], "a -> a"),
        ([feature("b + 1", name="a"), feature("c * 2", name="b"), feature("a - amount", name="c")], "a -> b -> c -> a"),
        ([feature("amount", name="x"), feature("c + x", name="b"), feature("b", name="c")], "b -> c -> b"),
    ],
)
def test_expressions_refuse_cyclic_references(derived: list[DerivedFeature], cycle: str) -> None:
    with pytest.raises(InvalidInput, match=f"cyclic reference between derived features: {cycle}$"):
        check(INPUTS, derived)


def test_expressions_refuse_duplicate_and_shadowing_names() -> None:
    with pytest.raises(InvalidInput, match="'d' is defined twice"):
        check(INPUTS, [feature("amount"), feature("items")])
    with pytest.raises(InvalidInput, match="'amount' has the name of an input field"):
        check(INPUTS, [feature("items", name="amount")])
    with pytest.raises(InvalidInput, match="input field 'city' is declared twice"):
        check([*INPUTS, InputField(name="city", type="int")], [feature("amount")])


def test_expressions_models_refuse_bad_names_and_types() -> None:
    with pytest.raises(ValidationError):
        DerivedFeature(name="has space", expression="amount", type="float")
    with pytest.raises(ValidationError):
        DerivedFeature(name="d", expression="amount", type="timestamp")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        DerivedFeature(name="d", expression="x" * 4_001, type="float")
    with pytest.raises(ValidationError):
        InputField(name="1bad", type="float")


def test_expressions_accept_the_whole_vocabulary() -> None:
    # Given one feature per function and operator; When checked; Then each has its declared type
    derived = [
        feature("safe_div(amount, items, -1) + amount / 2 - -amount * 3", name="arith"),
        feature("log1p(abs(amount)) + clip(amount, 0, 100) + min(amount, items) + max(items, 2)", name="math"),
        feature("(amount > 1 and not member) or city == 'x' or city != 'y' or at <= at", "bool", name="logic"),
        feature("coalesce(amount, customers:avg_spend, 0) + fill(`petal width`, 1.5)", name="nulls"),
        feature("bucketize(amount, [-1, 0, 10.5])", "int", name="bucket"),
        feature("hour(at) + day_of_week(at) + month(at)", "int", name="dates"),
        feature("lower(city) in ['paris', 'rome'] and is_null(member) == false", "bool", name="strings"),
        feature("if(member, lower(city), 'none')", "string", name="choice"),
        feature("hour(max(at, at))", "int", name="latest"),
    ]
    checked = check(INPUTS, derived)
    assert {f.feature.name: f.type for f in checked.features} == {
        "arith": "float", "math": "float", "logic": "bool", "nulls": "float", "bucket": "int",
        "dates": "int", "strings": "bool", "choice": "string", "latest": "int",
    }  # fmt: skip


def _imported(module: str) -> set[str]:
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    return {m.split(".")[0] for m in json.loads(done.stdout.strip().splitlines()[-1])}


def test_expressions_checking_and_serving_import_no_training_libraries() -> None:
    # The checker runs where specs are stored (the API Lambda), the runtime where models serve
    training_only = {"onnx", "pyarrow", "sklearn", "skl2onnx", "pandas", "scipy"}
    assert _imported("functions.logic.expressions") & (training_only | {"onnxruntime", "numpy"}) == set()
    runtime = _imported("functions.logic.expressions_runtime")
    assert {"onnxruntime", "numpy"} <= runtime
    assert runtime & training_only == set()
