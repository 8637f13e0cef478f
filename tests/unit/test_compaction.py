from __future__ import annotations

import gzip
import io
import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.logic.compaction import (
    PREDICTION,
    TIME,
    VERSION,
    compact_lines,
    compact_objects,
    gunzip_lines,
    rejected_to_jsonl_gz,
    stored_schema,
    to_parquet_bytes,
)
from functions.logic.drift import check_drift, iter_parquet_row_groups
from functions.logic.profile import build_reference_profile
from functions.models.drift import FeatureVerdict
from functions.models.registry import Feature

FEATURES = [
    Feature(name="x", type="float"),
    Feature(name="n", type="int"),
    Feature(name="c", type="category", categories=["a", "b"]),
    Feature(name="b", type="bool"),
    Feature(name="s", type="string", nullable=True),
    Feature(name="t", type="timestamp"),
]


def line(**changes: Any) -> bytes:
    record: dict[str, Any] = {
        "request_id": "req-1",
        "model": "churn",
        "version": 3,
        "variant": "production",
        "time": "2026-11-26T12:00:00.123Z",
        "features": {"x": 1.5, "n": 2, "c": "a", "b": True, "s": "hello", "t": "2026-01-01T00:00:00+00:00"},
        "prediction": "yes",
        "probabilities": [0.2, 0.8],
    }
    record.update(changes)
    return json.dumps(record).encode()


def test_compaction_types_rows_by_the_feature_schema() -> None:
    # Given well-formed capture lines
    result = compact_lines(
        [line(), line(features={"x": 2, "n": 3.0, "c": "z", "b": False}), b""], FEATURES, "classification"
    )
    # Then every row is kept, typed as declared, missing features are null
    t = result.table
    assert result.rejected == 0 and result.input_rows == 2 and t.num_rows == 2
    assert t.schema == stored_schema(FEATURES, "classification")
    assert t.column("n").to_pylist() == [2, 3]
    assert t.column("x").to_pylist() == [1.5, 2.0]
    assert t.column("c").type == pa.dictionary(pa.int32(), pa.string())
    assert t.column("c").to_pylist() == ["a", "z"]  # unseen categories are data, not errors
    assert t.column("s").to_pylist() == ["hello", None]
    assert t.column(VERSION).to_pylist() == [3, 3]
    assert t.column(TIME)[0].as_py().microsecond == 123_000


def test_compaction_rows_that_do_not_fit_are_counted_and_kept_aside() -> None:
    # Given good lines among bad ones
    bad = [
        b"not json",
        line(features={"x": "1.5"}),
        line(features={"n": 2.5}),
        line(time="yesterday"),
        line(features=None),
        line(features={"b": "yes"}),
    ]
    lines = [line()] * 5 + bad + [line()] * 5
    # When compacted
    result = compact_lines(lines, FEATURES, "classification", block_lines=4)
    # Then the good rows are kept in order and every bad line is returned byte for byte
    assert result.table.num_rows == 10
    assert sorted(result.rejected_lines) == sorted(bad)
    assert sum(result.rejected_reasons.values()) == len(bad)
    assert result.rejected_reasons["feature 'n' is not int"] == 1
    assert result.rejected_reasons["no features object"] == 1
    assert result.rejected_reasons["time is not ISO-8601 with an offset"] == 1
    assert gzip.decompress(rejected_to_jsonl_gz(result.rejected_lines)).splitlines() == result.rejected_lines


def test_compaction_prediction_is_cast_by_task() -> None:
    lines = [line(prediction=1.5), line(prediction=2), line(prediction="high")]
    result = compact_lines(lines, FEATURES, "regression")
    assert result.table.column(PREDICTION).to_pylist() == [1.5, 2.0]
    assert result.rejected == 1
    labels = compact_lines([line(prediction=1), line(prediction="yes")], FEATURES, "classification")
    assert labels.table.column(PREDICTION).to_pylist() == ["1", "yes"] and labels.rejected == 0


def test_compaction_of_objects_concatenates_and_counts_broken_objects() -> None:
    objects = [gzip.compress(b"\n".join([line()] * 3)), b"not gzip", gzip.compress(line(features={"n": 0.5}))]
    errors: list[int] = []
    result = compact_objects(objects, FEATURES, "classification", on_object_error=lambda i, e: errors.append(i))
    assert result.table.num_rows == 3 and result.rejected == 1
    assert result.rejected_reasons["object is not gzip"] == 1 and errors == [1]


def test_compaction_empty_input_gives_an_empty_typed_table() -> None:
    result = compact_objects([], FEATURES, "classification")
    assert result.table.num_rows == 0 and result.table.schema == stored_schema(FEATURES, "classification")


def test_compaction_reserved_feature_prefix_is_refused() -> None:
    with pytest.raises(ValueError, match="reserved"):
        stored_schema([Feature(name="__time", type="float")], "regression")


def test_gunzip_lines_reads_concatenated_members() -> None:
    data = gzip.compress(b"a\nb\n") + gzip.compress(b"c\n")
    assert [x for x in gunzip_lines(data) if x] == [b"a", b"b", b"c"]


def test_compaction_parquet_feeds_the_drift_check() -> None:
    # Given a reference and 3,000 captured rows compacted to Parquet in row groups of 1,000
    rng = np.random.default_rng(0)
    reference = pa.table({"x": rng.normal(size=5_000), "c": pa.array(np.where(rng.random(5_000) < 0.5, "a", "b"))})
    features = [Feature(name="x", type="float"), Feature(name="c", type="category")]
    profile = build_reference_profile(reference, features)
    lines = [
        json.dumps({**json.loads(line()), "features": {"x": float(v), "c": "a" if v > 0 else "b"}}).encode()
        for v in rng.normal(size=3_000)
    ]
    compacted = compact_lines(lines, features, "classification")
    data = to_parquet_bytes(compacted.table, row_group_size=1_000)
    assert pq.ParquetFile(io.BytesIO(data)).num_row_groups == 3
    # When checked
    report = check_drift(profile, iter_parquet_row_groups([io.BytesIO(data)]), model="churn", version=3)
    # Then the rows and versions are seen and nothing drifts
    assert report.row_count == 3_000 and report.versions_seen == [3]
    assert all(f.verdict == FeatureVerdict.NO_DRIFT for f in report.features)


@pytest.mark.parametrize("broken", [b"", b"not json"])
def test_compaction_of_an_object_keeps_rows_aligned_with_their_lines(broken: bytes) -> None:
    # Given one object: good rows, a row with a fractional int, blank lines, maybe an unparsable line
    rows = [line(), line(features={"n": 2.5}), b"", b"   ", line(request_id="last"), broken]
    data = gzip.compress(b"\n".join(rows))
    # When compacted
    result = compact_objects([data], FEATURES, "classification")
    # Then exactly the bad lines are kept aside and the good rows kept in order
    assert result.table.column("__request_id").to_pylist() == ["req-1", "last"]
    assert sorted(result.rejected_lines) == sorted([line(features={"n": 2.5}), *([broken] if broken else [])])
    assert result.input_rows == 3 + bool(broken)


_VALUES = {
    "x": st.one_of(st.floats(-1e9, 1e9, allow_nan=False), st.integers(-1000, 1000), st.text(max_size=3), st.none()),
    "n": st.one_of(st.integers(-(2**40), 2**40), st.floats(-10, 10, allow_nan=False), st.booleans(), st.none()),
    "c": st.one_of(st.sampled_from(["a", "b", "z"]), st.integers(0, 3), st.none()),
    "b": st.one_of(st.booleans(), st.integers(0, 1), st.none()),
}


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(
        st.one_of(
            st.fixed_dictionaries({}, optional=_VALUES).map(lambda f: line(features=f)),
            st.sampled_from(
                [
                    b"{",
                    b"[]",
                    b"null",
                    b'"text"',
                    b'{"features": 3}',
                    b'{"features": {"x": {"y": 1}}}',
                    b'{"features": {"x": [null, 1]}}',
                    b"\xff\xfe{",
                    b'{"version": "3", "features": {}}',
                    b'{"version": 1e40, "features": {}}',
                    b'{"probabilities": [null, 1], "features": {}}',
                    b'{"probabilities": 5, "features": {}}',
                    b'{"time": 5, "features": {}}',
                    b'{"features": {}, "prediction": [1]}',
                ]
            ),
        ),
        max_size=40,
    )
)
def test_compaction_never_loses_a_row(rows: list[bytes]) -> None:
    # Given any mix of capture lines, some with values of the wrong type, some not captures at all
    # When compacted (as one object)
    result = compact_objects([gzip.compress(b"\n".join(rows))], FEATURES, "classification")
    # Then every line is either a typed row or kept aside, never both, never neither
    assert result.table.num_rows + result.rejected == len(rows) == result.input_rows
    assert sum(result.rejected_reasons.values()) == result.rejected
    assert result.table.schema == stored_schema(FEATURES, "classification")


@pytest.mark.parametrize("first", [b"null", b"  null", b"3", b"[]"])
def test_compaction_top_level_non_objects_are_kept_aside_not_crashing(first: bytes) -> None:
    # Given an object whose first line is not a JSON object (a top-level null crashes pyarrow's reader)
    result = compact_objects([gzip.compress(b"\n".join([first, line()]))], FEATURES, "classification")
    # Then that line is kept aside and the next one compacted
    assert result.rejected_lines == [first] and result.table.num_rows == 1


def test_compaction_moves_shadow_rows_last_in_order() -> None:
    rows = [line(request_id="p1"), line(request_id="s1", variant="shadow"), line(request_id="p2")]
    result = compact_objects([gzip.compress(b"\n".join(rows))], FEATURES, "classification")
    assert result.table.column("__request_id").to_pylist() == ["p1", "p2", "s1"]
