from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.logic.profile import bin_edges, bin_numeric, build_reference_profile
from functions.models.profile import CategoricalProfile, NumericProfile, ReferenceProfile
from functions.models.registry import Feature


def _table(n: int = 10_000, seed: int = 0) -> tuple[pa.Table, list[Feature]]:
    rng = np.random.default_rng(seed)
    nums = {f"x{i}": rng.normal(size=n) for i in range(20)}
    cats = np.array(["a", "b", "c", "d", "e"])
    catcols = {f"c{j}": pa.array(cats[rng.choice(5, size=n, p=[0.1, 0.3, 0.3, 0.2, 0.1])]) for j in range(5)}
    table = pa.table({**nums, **catcols})
    features = [Feature(name=k, type="float") for k in nums] + [Feature(name=k, type="category") for k in catcols]
    return table, features


def test_profile_roundtrip_is_identical_and_small() -> None:
    # Given 25 features of 1e4 rows
    table, features = _table()
    # When the profile is built, serialized and parsed back
    profile = build_reference_profile(table, features, created_at=datetime(2026, 1, 1, tzinfo=UTC))
    data = profile.to_bytes()
    back = ReferenceProfile.from_bytes(data)
    # Then it is compact JSON, under 300 KB, and parses to the same profile
    assert len(data) < 300_000
    assert json.loads(data)["format_version"] == 1
    assert back.model_dump_json() == profile.model_dump_json()
    x0 = back.feature("x0")
    assert isinstance(x0, NumericProfile)
    assert np.array_equal(x0.counts, profile.feature("x0").counts)  # type: ignore[union-attr]


def test_profile_of_a_million_rows_stays_under_300_kb() -> None:
    # Given 1e6 rows of 25 features
    table, features = _table(n=1_000_000, seed=1)
    # When profiled
    data = build_reference_profile(table, features).to_bytes()
    # Then the serialized profile is under 300 KB
    assert len(data) < 300_000


def test_profile_numeric_histogram_covers_min_and_max() -> None:
    # Given a float column with nulls and a NaN
    values = pa.array([1.0, 2.0, None, 3.5, float("nan"), 10.0])
    profile = build_reference_profile(pa.table({"x": values}), [Feature(name="x", type="float", nullable=True)])
    x = profile.feature("x")
    assert isinstance(x, NumericProfile)
    # Then the histogram holds every finite value, nulls and NaN are counted as null
    assert x.count == 4 and x.null_count == 2
    assert x.counts.sum() == 4 and x.counts[0] == 1 and x.counts[-1] == 1
    assert x.min == 1.0 and x.max == 10.0
    assert x.bin_low <= x.min and x.bin_high > x.max
    assert x.null_fraction == pytest.approx(2 / 6)
    assert x.quantile_values[0] == 1.0 and x.quantile_values[-1] == 10.0


def test_profile_constant_column_is_binned() -> None:
    # Given a constant int column
    profile = build_reference_profile(pa.table({"k": [7] * 100}), [Feature(name="k", type="int")])
    k = profile.feature("k")
    # Then all values sit in one bin and the range is positive
    assert isinstance(k, NumericProfile)
    assert k.counts.sum() == 100 and k.bin_width > 0


def test_profile_timestamp_is_numeric_in_seconds() -> None:
    ts = pa.array([datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)], pa.timestamp("ms", "UTC"))
    profile = build_reference_profile(pa.table({"t": ts}), [Feature(name="t", type="timestamp")])
    t = profile.feature("t")
    assert isinstance(t, NumericProfile)
    assert t.max - t.min == pytest.approx(86_400)


def test_profile_categorical_declared_categories_and_other_bucket() -> None:
    # Given declared categories and a value outside them
    table = pa.table({"c": ["a", "a", "b", "z", None]})
    profile = build_reference_profile(table, [Feature(name="c", type="category", categories=["a", "b", "c"])])
    c = profile.feature("c")
    # Then the declared order is kept, unseen values go to other_count, nulls are counted
    assert isinstance(c, CategoricalProfile)
    assert c.categories == ["a", "b", "c"] and c.counts == [2, 1, 0]
    assert c.other_count == 1 and c.null_count == 1


def test_profile_string_keeps_most_frequent_values() -> None:
    table = pa.table({"s": ["x"] * 5 + ["y"] * 3 + ["z"]})
    profile = build_reference_profile(table, [Feature(name="s", type="string")], max_categories=2)
    s = profile.feature("s")
    assert isinstance(s, CategoricalProfile)
    assert s.categories == ["x", "y"] and s.other_count == 1


def test_profile_bool_categories_are_false_true() -> None:
    profile = build_reference_profile(pa.table({"b": [True, False, True]}), [Feature(name="b", type="bool")])
    b = profile.feature("b")
    assert isinstance(b, CategoricalProfile)
    assert b.categories == ["false", "true"] and b.counts == [1, 2]


def test_profile_empty_table_gives_empty_histograms() -> None:
    table = pa.table({"x": pa.array([], pa.float64()), "c": pa.array([], pa.string())})
    profile = build_reference_profile(table, [Feature(name="x", type="float"), Feature(name="c", type="string")])
    assert profile.row_count == 0
    assert profile.feature("x").count == 0 and profile.feature("c").count == 0


def test_profile_missing_column_raises_key_error() -> None:
    with pytest.raises(KeyError):
        build_reference_profile(pa.table({"x": [1.0]}), [Feature(name="y", type="float")])


def test_profile_string_column_for_numeric_feature_raises_value_error() -> None:
    with pytest.raises(ValueError, match="column type"):
        build_reference_profile(pa.table({"x": ["1.0"]}), [Feature(name="x", type="float")])


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(format_version=2),
        lambda d: d["features"][0].update(counts="not base64!"),
        lambda d: d["features"][0].update(n_bins=3),
        lambda d: d["features"][0].update(evil=1),
        lambda d: d["features"][0].update(count=5),
    ],
)
def test_profile_from_bytes_rejects_invalid_documents(mutate: object) -> None:
    # Given a valid document, tampered
    table, features = _table(n=100)
    doc = json.loads(build_reference_profile(table, features[:1]).to_bytes())
    mutate(doc)  # type: ignore[operator]
    # Then parsing refuses it
    with pytest.raises(ValueError):
        ReferenceProfile.from_bytes(json.dumps(doc).encode())


def test_bin_numeric_counts_out_of_range_and_ignores_nan() -> None:
    low, width = bin_edges(0.0, 1.0, 4)
    counts = bin_numeric(np.array([-5.0, 0.0, 0.3, 0.99, 1.0, 1.5, np.nan, np.inf, -np.inf]), low, width, 4)
    assert counts.tolist() == [2, 1, 1, 0, 2, 2]


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=200),
    probe=st.lists(st.floats(-2e6, 2e6, allow_nan=False), max_size=200),
    n_bins=st.integers(1, 64),
)
def test_bin_numeric_matches_edges_by_search(values: list[float], probe: list[float], n_bins: int) -> None:
    # Given bins over the values' range, and any probe values
    low, width = bin_edges(min(values), max(values), n_bins)
    arr = np.array(probe + values)
    # When binned
    counts = bin_numeric(arr, low, width, n_bins)
    # Then every value is counted once, the range ends are in range, and each value falls in the bin
    # whose edges hold it (up to float rounding at an edge)
    assert counts.sum() == arr.size
    assert counts[0] == int((arr < low).sum()) or abs(arr - low).min() < 1e-9 * max(1.0, abs(low))
    inside = bin_numeric(np.array(values), low, width, n_bins)
    assert inside[0] == 0 and inside[-1] == 0
    edges = low + np.arange(n_bins + 1) * width
    expected = np.bincount(np.clip(np.searchsorted(edges, arr, side="right"), 0, n_bins + 1), minlength=n_bins + 2)
    assert np.abs(counts - expected).sum() <= 2 * int(np.isclose(arr[:, None], edges[None, :], rtol=1e-12).sum())
