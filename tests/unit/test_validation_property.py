"""Property: the vectorised verdict equals a plain-Python evaluation of the same rules.

Hypothesis generates small tables (ints, floats with NaN, strings, categories; nulls anywhere)
and contracts over them; the reference below reads the rules from the contract docs
(functions/models/contracts.py) and evaluates them row by row.
"""

from __future__ import annotations

import io
import math
import re
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.logic.validation_files import BytesSource, Limits, validate_source
from functions.models.contracts import DataContract

WORDS = ["a", "b", "ab", "ba", "x1", "zz", "A", ""]
PATTERNS = ["[ab]+", "a.*", "[a-z][0-9]?", "x?z*", ".*"]


@st.composite
def tables_and_contracts(draw: st.DrawFn) -> tuple[dict[str, list[Any]], dict[str, str], dict[str, Any]]:
    n = draw(st.integers(0, 12))
    ncols = draw(st.integers(1, 4))
    data: dict[str, list[Any]] = {}
    types: dict[str, str] = {}
    specs: list[dict[str, Any]] = []
    for i in range(ncols):
        kind = draw(st.sampled_from(["int", "float", "string", "category"]))
        name = f"c{i}"
        maybe_null = st.none() if draw(st.booleans()) else st.nothing()
        if kind == "int":
            values = draw(st.lists(st.integers(-5, 5) | maybe_null, min_size=n, max_size=n))
        elif kind == "float":
            floats = st.floats(-5, 5, allow_nan=False) | st.just(math.nan)
            values = draw(st.lists(floats | maybe_null, min_size=n, max_size=n))
        else:
            values = draw(st.lists(st.sampled_from(WORDS) | maybe_null, min_size=n, max_size=n))
        data[name] = values
        types[name] = kind
        spec: dict[str, Any] = {"name": name, "type": kind}
        null_rule = draw(st.sampled_from(["any", "none", "fraction"]))
        if null_rule == "none":
            spec["nullable"] = False
        elif null_rule == "fraction":
            spec["max_null_fraction"] = draw(st.sampled_from([0.0, 0.25, 0.5, 1.0]))
        if kind in ("int", "float") and draw(st.booleans()):
            lo = draw(st.integers(-6, 3))
            spec["min"] = lo + draw(st.sampled_from([0, 0.5]))
            spec["max"] = lo + draw(st.integers(0, 6))
            if spec["max"] < spec["min"]:
                spec["max"] = spec["min"]
        if kind in ("string", "category"):
            if draw(st.booleans()):
                spec["categories"] = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=5, unique=True))
            if draw(st.booleans()):
                spec["pattern"] = draw(st.sampled_from(PATTERNS))
        specs.append(spec)
    doc: dict[str, Any] = {"columns": specs, "min_rows": draw(st.integers(0, 3))}
    if draw(st.booleans()):
        doc["max_rows"] = doc["min_rows"] + draw(st.integers(0, 10))
    keyable = [s["name"] for s in specs if s["type"] != "float"]
    if keyable and draw(st.booleans()):
        doc["key"] = draw(st.sampled_from(keyable))
    return data, types, doc


def to_arrow(data: dict[str, list[Any]], types: dict[str, str]) -> pa.Table:
    arrays = {}
    for name, values in data.items():
        kind = types[name]
        if kind == "int":
            arrays[name] = pa.array(values, pa.int64())
        elif kind == "float":
            arrays[name] = pa.array(values, pa.float64())
        elif kind == "string":
            arrays[name] = pa.array(values, pa.string())
        else:
            arrays[name] = pa.array(values, pa.string()).dictionary_encode()
    return pa.table(arrays)


def missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def reference(data: dict[str, list[Any]], doc: dict[str, Any]) -> dict[str, int]:
    """Failed rule -> offending count, evaluated one value at a time."""
    n = len(next(iter(data.values())))
    failed: dict[str, int] = {}
    if n < doc["min_rows"] or ("max_rows" in doc and n > doc["max_rows"]):
        failed["rows"] = doc["min_rows"] - n if n < doc["min_rows"] else n - doc["max_rows"]
    for spec in doc["columns"]:
        name, values = spec["name"], data[spec["name"]]
        nulls = sum(1 for v in values if missing(v))
        if spec.get("nullable", True) is False and nulls:
            failed[f"nulls:{name}"] = nulls
        if "max_null_fraction" in spec and n and nulls / n > spec["max_null_fraction"]:
            failed[f"nulls:{name}"] = nulls
        if "min" in spec:
            bad = sum(1 for v in values if not missing(v) and (v < spec["min"] or v > spec["max"]))
            if bad:
                failed[f"range:{name}"] = bad
        if "categories" in spec:
            bad = sum(1 for v in values if v is not None and v not in spec["categories"])
            if bad:
                failed[f"categories:{name}"] = bad
        if "pattern" in spec:
            bad = sum(1 for v in values if v is not None and re.fullmatch(spec["pattern"], v) is None)
            if bad:
                failed[f"pattern:{name}"] = bad
        if doc.get("key") == name:
            present = [v for v in values if v is not None]
            bad = sum(1 for v in present if present.count(v) > 1)
            if bad:
                failed[f"unique:{name}"] = bad
    return failed


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables_and_contracts())
def test_validation_verdict_equals_plain_python_evaluation(case: tuple[dict, dict, dict]) -> None:
    data, types, doc = case
    contract = DataContract.model_validate(doc)
    buf = io.BytesIO()
    pq.write_table(to_arrow(data, types), buf, row_group_size=3)
    expected = reference(data, doc)
    # whole, and in row-group chunks: both agree with the reference
    for limits in (Limits(), Limits(chunk_bytes=1)):
        report = validate_source(
            BytesSource(buf.getvalue()), "t.parquet", contract, dataset="d", contract_version=1, limits=limits
        )
        got = {r.rule: r.offending for r in report.rules if not r.passed}
        assert got == expected
        assert report.passed == (not expected)
