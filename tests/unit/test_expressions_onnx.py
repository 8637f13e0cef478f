"""Derived features compiled into ONNX (functions/logic/expressions_onnx.py): the documented
semantics on chosen cases, the training path over pyarrow tables, and the graph merged in front
of a fitted scikit-learn pipeline."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pytest

from functions.logic import evaluation, serving_runtime
from functions.logic.expressions import check
from functions.logic.expressions_onnx import (
    PASSTHROUGH_PREFIX,
    compile_transformation,
    derive_columns,
    merge_in_front,
    table_feeds,
)
from functions.logic.expressions_runtime import TransformRunner, request_feeds, timestamp_seconds
from functions.models.errors import InvalidInput
from functions.models.expressions import DerivedFeature, InputField

NAN = math.nan
INPUTS = [
    InputField(name="x", type="float"),
    InputField(name="y", type="float"),
    InputField(name="n", type="int"),
    InputField(name="b", type="bool"),
    InputField(name="c", type="bool"),
    InputField(name="s", type="string"),
    InputField(name="t", type="timestamp"),
]


def evaluate(expression: str, type_: str, rows: list[Any], *, table: bool = True) -> list[Any]:
    """Serve the expression over request rows; assert the training path (a table of the same
    values, unless the rows hold request-only forms such as ISO strings) gives the same."""
    checked = check(INPUTS, [DerivedFeature(name="d", expression=expression, type=type_)])  # type: ignore[arg-type]
    transformation = compile_transformation(checked, ["d"])
    served = TransformRunner(transformation.to_bytes()).run(request_feeds(transformation.inputs, rows))["d"].ravel()
    if table:
        arrays = {f.name: pa.array([r.get(f.name) for r in rows], ARROW[f.type]) for f in transformation.inputs}
        trained = derive_columns(transformation, pa.table(arrays))["d"]
        assert np.array_equal(trained, served, equal_nan=served.dtype != object)
    return [None if not isinstance(v, str) and math.isnan(v) else v for v in served.tolist()]


ARROW = {
    "float": pa.float64(),
    "int": pa.int64(),
    "bool": pa.bool_(),
    "string": pa.string(),
    "timestamp": pa.timestamp("us"),
}


def column(expression: str, type_: str, name: str, values: list[Any], *, table: bool = True) -> list[Any]:
    return evaluate(expression, type_, [{name: v} for v in values], table=table)


def test_compiled_arithmetic_nulls_zero_division_and_overflow() -> None:
    assert column("x / 2", "float", "x", [3.0, None, NAN, math.inf, -0.5]) == [1.5, None, None, None, -0.25]
    rows = [
        {"x": 1.0, "y": 0.0},
        {"x": 0.0, "y": 0.0},
        {"x": None, "y": 0.0},
        {"x": 6.0, "y": 4.0},
        {"x": 1.0, "y": None},
    ]
    assert evaluate("x / y", "float", rows) == [None, None, None, 1.5, None]
    assert evaluate("safe_div(x, y, -1)", "float", rows) == [-1.0, -1.0, None, 1.5, None]
    # overflow in float64 and beyond float32's range are null, like every non-finite value
    assert evaluate("x * y", "float", [{"x": 1e300, "y": 1e300}, {"x": 1e30, "y": 1e30}, {"x": 2.0, "y": 3.0}]) == [
        None, None, 6.0,
    ]  # fmt: skip
    assert column("n * 2 - 1", "int", "n", [3, None, 0]) == [5.0, None, -1.0]


def test_compiled_math_functions() -> None:
    logs = column("log1p(x)", "float", "x", [0.0, 1e-20, math.e - 1, -1.0, -2.0, None])
    assert logs[:3] == [0.0, pytest.approx(1e-20, rel=1e-6), pytest.approx(1.0, rel=1e-7)]
    assert logs[3:] == [None, None, None]
    assert column("abs(x)", "float", "x", [-2.5, None]) == [2.5, None]
    assert column("clip(x, 0, 10)", "float", "x", [-1.0, 5.0, 11.0, None]) == [0.0, 5.0, 10.0, None]
    rows = [{"x": 1.0, "y": 2.0}, {"x": None, "y": 2.0}, {"x": 1.0, "y": None}]
    assert evaluate("min(x, y)", "float", rows) == [1.0, None, None]
    assert evaluate("max(x, y)", "float", rows) == [2.0, None, None]


def test_compiled_comparisons_are_null_on_null_and_logic_is_three_valued() -> None:
    assert column("x > 1", "bool", "x", [2.0, 1.0, None]) == [1.0, 0.0, None]
    truth = [True, False, None]
    rows = [{"b": p, "c": q} for p in truth for q in truth]
    # Kleene: false and null = false, true or null = true, otherwise null propagates
    assert evaluate("b and c", "bool", rows) == [1.0, 0.0, None, 0.0, 0.0, 0.0, None, 0.0, None]
    assert evaluate("b or c", "bool", rows) == [1.0, 1.0, 1.0, 1.0, 0.0, None, 1.0, None, None]
    assert column("not b", "bool", "b", truth) == [0.0, 1.0, None]
    assert column("is_null(b)", "bool", "b", truth) == [0.0, 0.0, 1.0]
    assert column("x in [1, 2.5]", "bool", "x", [2.5, 3.0, None]) == [1.0, 0.0, None]
    assert column("if(b, 1, 2)", "int", "b", truth) == [1.0, 2.0, None]


def test_compiled_coalesce_and_fill() -> None:
    rows = [{"x": 1.0, "y": 2.0}, {"x": None, "y": 2.0}, {"x": None, "y": None}]
    assert evaluate("coalesce(x, y, 7)", "float", rows) == [1.0, 2.0, 7.0]
    assert evaluate("coalesce(x, y)", "float", rows) == [1.0, 2.0, None]
    assert column("fill(s, 'unknown')", "string", "s", ["a", None, ""]) == ["a", "unknown", "unknown"]


def test_compiled_bucketize_counts_edges_at_or_below_the_value() -> None:
    values = [-100.0, 0.0, 0.5, 10.0, 1e9, None]
    assert column("bucketize(x, [0, 10])", "int", "x", values) == [0.0, 1.0, 1.0, 2.0, 2.0, None]


@pytest.mark.parametrize("expression", ["bucketize(x - 1e-50, [0])", "bucketize(-(x + 2.2e-116), [0])"])
def test_constants_below_float32_range_keep_float64_semantics_in_every_session(expression: str) -> None:
    # ONNX Runtime's NoopElimination would drop `x - 1e-50` as `x - 0` (it rounds the constant to
    # float32), moving x = 0 onto the bucket edge; every session we build turns it off.
    assert column(expression, "int", "x", [0.0]) == [0.0]
    checked = check(INPUTS, [DerivedFeature(name="d", expression=expression, type="int")])
    content = compile_transformation(checked, ["d"]).to_bytes()
    feeds = {"x": np.array([[0.0]])}
    for session in (serving_runtime._session(content), evaluation.onnx_session(content)):
        assert session.run(None, feeds)[0].ravel().tolist() == [0.0]


def test_compiled_date_parts_in_utc() -> None:
    stamps = [
        datetime(2024, 2, 29, 13, 5, 59, 999_999),  # a leap day, a Thursday
        datetime(1969, 12, 31, 23, 59, 59),  # before the epoch, a Wednesday
        datetime(2000, 1, 1),  # a Saturday
        datetime(1, 1, 1, 0, 0, 1),  # a Monday
        datetime(9999, 12, 31, 23, 0),  # a Friday
        None,
    ]
    assert column("hour(t)", "int", "t", stamps) == [13.0, 23.0, 0.0, 0.0, 23.0, None]
    assert column("day_of_week(t)", "int", "t", stamps) == [3.0, 2.0, 5.0, 0.0, 4.0, None]
    assert column("month(t)", "int", "t", stamps) == [2.0, 12.0, 1.0, 1.0, 12.0, None]
    # a zone-aware request value is converted to UTC; ISO strings without a zone are UTC
    paris = datetime(2024, 7, 1, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    assert column("hour(t)", "int", "t", [paris, "2024-07-01T01:30:00", "2024-07-01T01:30:00+02:00"], table=False) == [
        23.0, 1.0, 23.0,
    ]  # fmt: skip


def test_compiled_strings_null_is_empty_and_lower_folds_ascii_only() -> None:
    words = ["PaRiS", "ÄÖ", "İSTANBUL", "", None]
    assert column("lower(s)", "string", "s", words) == ["paris", "ÄÖ", "İstanbul", "", ""]
    assert column("lower(s) in ['paris', 'rome']", "bool", "s", ["Rome", "Oslo", None]) == [1.0, 0.0, None]
    assert column("s == 'a'", "bool", "s", ["a", "b", None]) == [1.0, 0.0, None]
    assert column("if(s == 'a', s, 'other')", "string", "s", ["a", "b", None]) == ["a", "other", ""]


def test_compiled_graph_handles_zero_rows_and_passes_raw_fields_through() -> None:
    # Given a derived string feature and two raw fields the pipeline reads directly
    checked = check(INPUTS, [DerivedFeature(name="city", expression="lower(s)", type="string")])
    transformation = compile_transformation(checked, ["city", "x", "n"])
    assert transformation.outputs == {"city": "city", "x": PASSTHROUGH_PREFIX + "x", "n": PASSTHROUGH_PREFIX + "n"}
    assert [i.name for i in transformation.inputs] == ["x", "n", "s"]
    # When run over an empty table; Then every column is empty
    empty = pa.table({"x": pa.array([], pa.float64()), "n": pa.array([], pa.int64()), "s": pa.array([], pa.string())})
    assert {k: v.shape for k, v in derive_columns(transformation, empty).items()} == {
        "city": (0,), "x": (0,), "n": (0,),
    }  # fmt: skip
    # And raw fields come out as the pipeline's float32 (non-finite -> NaN)
    table = pa.table({"x": [1.5, math.inf], "n": pa.array([7, None], pa.int64()), "s": ["A", None]})
    out = derive_columns(transformation, table)
    assert out["x"].dtype == np.float32 and np.array_equal(out["x"], [1.5, NAN], equal_nan=True)
    assert np.array_equal(out["n"], [7.0, NAN], equal_nan=True) and out["city"].tolist() == ["a", ""]


def test_training_feeds_read_arrow_column_types_like_requests() -> None:
    # Given timestamps in other units and zones, dates, dictionary strings, ints with nulls
    fields = [
        InputField(name="t", type="timestamp"),
        InputField(name="s", type="string"),
        InputField(name="n", type="int"),
    ]
    when = [datetime(2024, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC), None]
    for arrow_column in (
        pa.array(when, pa.timestamp("ms", tz="UTC")),
        pa.array(when, pa.timestamp("ns", tz="Europe/Paris")),
        pa.array([w.replace(tzinfo=None) if w else None for w in when], pa.timestamp("us")),
    ):
        table = pa.table({"t": arrow_column, "s": pa.array(["a", None]).dictionary_encode(), "n": pa.array([3, None])})
        # When fed; Then the values equal the request path's
        feeds = table_feeds(table, fields)
        expected = request_feeds(fields, [{"t": when[0], "s": "a", "n": 3}, {}])
        for name in ("t", "s", "n"):
            assert np.array_equal(feeds[name], expected[name], equal_nan=name != "s"), name
    days = table_feeds(pa.table({"t": pa.array([date(2024, 3, 1)])}), fields[:1])["t"]
    assert days.tolist() == [[timestamp_seconds(datetime(2024, 3, 1))]]


def test_feeds_refuse_values_of_the_wrong_type_naming_the_field() -> None:
    fields = [
        InputField(name="x", type="float"),
        InputField(name="t", type="timestamp"),
        InputField(name="s", type="string"),
    ]
    with pytest.raises(InvalidInput, match=r"field 'x' \(float\): str is not a number"):
        request_feeds(fields, [{"x": "3"}])
    with pytest.raises(InvalidInput, match=r"field 't' \(timestamp\)"):
        request_feeds(fields, [{"t": "yesterday"}])
    with pytest.raises(InvalidInput, match=r"field 's' \(string\): int is not a string"):
        request_feeds(fields, [{"s": 3}])
    with pytest.raises(InvalidInput, match=r"column 's' \(double\) cannot be read as timestamp"):
        table_feeds(pa.table({"s": [1.0]}), [InputField(name="s", type="timestamp")])
    with pytest.raises(InvalidInput, match="input field 'x' is not a column"):
        table_feeds(pa.table({"y": [1.0]}), fields[:1])


# -- merged in front of a fitted pipeline ---------------------------------------------------------
def _training_table(n: int = 400) -> pa.Table:
    rng = np.random.default_rng(7)
    amount = rng.gamma(2.0, 50.0, n)
    amount[rng.random(n) < 0.1] = np.nan  # nulls the pipeline imputes
    items = rng.integers(0, 6, n)  # zero items: safe division's default
    start = datetime(2024, 1, 1, tzinfo=UTC)
    at = [start + timedelta(minutes=int(m)) for m in rng.integers(0, 60 * 24 * 60, n)]
    city = rng.choice(["Paris", "ROME", "oslo", ""], n)
    return pa.table(
        {
            "amount": pa.array(amount, from_pandas=True),
            "items": pa.array(items, pa.int64()),
            "at": pa.array(at, pa.timestamp("us", tz="UTC")),
            "city": pa.array(city.tolist()),
        }
    )


def test_transformation_merged_in_front_of_a_pipeline_equals_sklearn_on_the_derived_columns() -> None:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    # Given derived features (one reading another), a raw field read directly, and a string feature
    inputs = [
        InputField(name="amount", type="float"),
        InputField(name="items", type="int"),
        InputField(name="at", type="timestamp"),
        InputField(name="city", type="string"),
    ]
    derived = [
        DerivedFeature(name="per_item", expression="safe_div(amount, items, 0)", type="float"),
        DerivedFeature(name="log_per_item", expression="log1p(per_item)", type="float"),
        DerivedFeature(name="night", expression="hour(at) < 6 or hour(at) >= 22", type="bool"),
        DerivedFeature(name="size", expression="bucketize(amount, [50, 100, 200])", type="int"),
        DerivedFeature(name="town", expression="lower(fill(city, 'unknown'))", type="string"),
    ]
    features = ["log_per_item", "night", "size", "items", "town"]
    transformation = compile_transformation(check(inputs, derived), features)
    # And the training path's derived columns
    table = _training_table()
    columns = derive_columns(transformation, table)
    import pandas as pd

    frame = pd.DataFrame(columns)[features]
    numeric = ["log_per_item", "night", "size", "items"]
    y = ((np.nan_to_num(columns["log_per_item"]) + columns["size"]) > 4).astype(int)
    pipeline = Pipeline(
        [
            (
                "preprocess",
                ColumnTransformer(
                    [
                        ("numeric", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]), numeric),
                        ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["town"]),
                    ]
                ),
            ),
            ("estimator", LogisticRegression()),
        ]
    ).fit(frame, y)
    initial_types = [(f, StringTensorType([None, 1]) if f == "town" else FloatTensorType([None, 1])) for f in features]
    exported = to_onnx(
        pipeline, initial_types=initial_types, target_opset={"": 21, "ai.onnx.ml": 3}, options={"zipmap": False}
    )
    # When the transformation is merged in front and run on the raw rows
    merged = merge_in_front(transformation, exported)
    session = ort.InferenceSession(merged.SerializeToString(), providers=["CPUExecutionProvider"])
    assert sorted(i.name for i in session.get_inputs()) == ["amount", "at", "city", "items"]
    rows = table.to_pylist()
    labels, probabilities = session.run(None, request_feeds(transformation.inputs, rows))
    # Then it equals scikit-learn on the derived columns, in one batch and one row at a time
    expected = pipeline.predict_proba(frame)
    assert np.allclose(probabilities, expected, atol=1e-5)
    assert np.array_equal(labels, pipeline.predict(frame))
    for i in range(0, len(rows), 37):
        _, single = session.run(None, request_feeds(transformation.inputs, [rows[i]]))
        assert np.allclose(single[0], expected[i], atol=1e-5)


def test_merge_refuses_a_pipeline_below_the_transformation_opset() -> None:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    checked = check(INPUTS, [DerivedFeature(name="d", expression="x * 2", type="float")])
    transformation = compile_transformation(checked, ["d"])
    model = LogisticRegression().fit(np.arange(20.0).reshape(-1, 1), np.arange(20) % 2)
    old = to_onnx(model, initial_types=[("d", FloatTensorType([None, 1]))], target_opset={"": 13, "ai.onnx.ml": 1})
    with pytest.raises(InvalidInput, match="target_opset >= 19"):
        merge_in_front(transformation, old)
    other = to_onnx(model, initial_types=[("z", FloatTensorType([None, 1]))], target_opset={"": 21, "ai.onnx.ml": 3})
    with pytest.raises(InvalidInput, match="reads none of the transformation's outputs"):
        merge_in_front(transformation, other)
