"""The offline layout (functions/logic/offline_store.py) and the point-in-time join over it
(functions/logic/pit_join.py): no future leakage, the TTL boundary (age <= ttl is fresh), equal
timestamps, unknown entities, nulls kept, composite and string keys, refusals; and property tests
against a brute-force oracle and against pandas.merge_asof."""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.logic.offline_store import ENTITY_COLUMN, build_layout, load_layout
from functions.logic.pit_join import JoinView, pit_join
from functions.models.errors import IntegrityError, InvalidInput
from functions.models.features_offline import PitJoinCounts, SourceVersionRef

SOURCE = SourceVersionRef(dataset="customers", version=3, sha256="ab" * 32)
T0 = datetime(2024, 1, 1)
US = pa.timestamp("us")


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def layout_of(table: pa.Table, keys: list[str] | None = None, **kwargs: Any) -> Any:
    built = build_layout(table, source=SOURCE, entity_keys=keys or ["cid"], timestamp_column="ts", **kwargs)
    return load_layout(built.data, built.manifest)


def features(cids: list[Any], hours: list[float], values: list[float | None], **extra: list[Any]) -> pa.Table:
    return pa.table({"cid": cids, "ts": pa.array([at(h) for h in hours], US), "x": values, **extra})


def labels(cids: list[Any], hours: list[float | None], **extra: list[Any]) -> pa.Table:
    times = [None if h is None else at(h) for h in hours]
    return pa.table({"cid": cids, "t": pa.array(times, US), **extra})


def join(label_table: pa.Table, *views: JoinView, **kwargs: Any) -> Any:
    return pit_join(label_table, list(views), time_column="t", **kwargs)


# -- leakage, TTL, equal timestamps, unknown entities, nulls -------------------------------
def test_pit_join_never_returns_a_feature_row_later_than_the_label() -> None:
    # Given entity 1 whose only feature rows are later than its labels, and entity 2 with one earlier row
    layout = layout_of(features([1, 1, 2, 2], [5, 7, 1, 9], [50.0, 70.0, 10.0, 90.0]))
    # When labels at hours 0 and 4 (entity 1) and 4 (entity 2) are joined
    result = join(labels([1, 1, 2], [0, 4.999, 4]), JoinView("v", layout, ttl=None))
    # Then entity 1 gets nulls, never the later 50/70, and entity 2 gets the earlier 10, not the later 90
    assert result.table.column("v:x").to_pylist() == [None, None, 10.0]
    assert result.counts == [PitJoinCounts(view="v", matched=1, missing=2, expired=0)]


def test_pit_join_ttl_boundary_age_equal_to_ttl_is_fresh_and_one_microsecond_more_is_expired() -> None:
    # Given one feature row at hour 0 and a TTL of 2 hours
    layout = layout_of(features([1], [0], [1.5]))
    view = JoinView("v", layout, ttl=timedelta(hours=2))
    # When labels are aged exactly 2 h, 2 h + 1 us, 2 h - 1 us and 30 h
    just_over = 2 + 1 / 3_600_000_000
    just_under = 2 - 1 / 3_600_000_000
    result = join(labels([1, 1, 1, 1], [2, just_over, just_under, 30]), view)
    # Then age <= ttl keeps the value and age > ttl is a null counted as expired
    assert result.table.column("v:x").to_pylist() == [1.5, None, 1.5, None]
    assert result.counts == [PitJoinCounts(view="v", matched=2, missing=0, expired=2)]


def test_pit_join_ttl_expiry_does_not_fall_back_to_an_older_row_or_forward_to_a_later_one() -> None:
    # Given rows at hours 0 and 10, TTL 1 hour
    layout = layout_of(features([1, 1], [0, 10], [0.0, 10.0]))
    # When a label at hour 5 (latest row 5 h old) is joined
    result = join(labels([1], [5]), JoinView("v", layout, ttl=timedelta(hours=1)))
    # Then it is expired: null, not the later row
    assert result.table.column("v:x").to_pylist() == [None]
    assert result.counts[0].expired == 1


def test_pit_join_zero_ttl_matches_only_equal_timestamps() -> None:
    layout = layout_of(features([1, 1], [0, 3], [0.0, 3.0]))
    result = join(labels([1, 1, 1], [0, 1, 3]), JoinView("v", layout, ttl=timedelta(0)))
    assert result.table.column("v:x").to_pylist() == [0.0, None, 3.0]


def test_pit_join_uses_the_feature_row_stamped_exactly_at_the_label_time() -> None:
    # Given rows at hours 1, 2 and 3
    layout = layout_of(features([7, 7, 7], [3, 1, 2], [3.0, 1.0, 2.0]))
    # When labels at exactly hours 1, 2 and 3 are joined
    result = join(labels([7, 7, 7], [2, 3, 1]), JoinView("v", layout, ttl=timedelta(0)))
    # Then each takes the row with its own timestamp (<=), not the one before
    assert result.table.column("v:x").to_pylist() == [2.0, 3.0, 1.0]


def test_pit_join_unknown_entities_null_keys_and_null_times_are_missing() -> None:
    layout = layout_of(features([1], [0], [1.0]))
    result = join(labels([1, 99, None, 1], [1, 1, 1, None]), JoinView("v", layout, ttl=None))
    assert result.table.column("v:x").to_pylist() == [1.0, None, None, None]
    assert result.counts == [PitJoinCounts(view="v", matched=1, missing=3, expired=0)]


def test_pit_join_keeps_nulls_and_nans_inside_matched_feature_rows() -> None:
    # Given a matched row whose x is null and y is NaN, and a string feature that is null
    table = features([1, 1], [0, 1], [None, 2.0], y=[math.nan, 1.0], s=[None, "b"])
    layout = layout_of(table)
    # When a label at hour 0.5 is joined
    result = join(labels([1], [0.5]), JoinView("v", layout, ttl=None))
    # Then the null stays null, the NaN stays NaN, and the row counts as matched (not missing)
    row = result.table.to_pylist()[0]
    assert row["v:x"] is None and row["v:s"] is None and math.isnan(row["v:y"])
    assert result.counts[0].matched == 1


def test_pit_join_keeps_label_order_and_columns_and_joins_several_views() -> None:
    # Given two views keyed differently (customer id; a composite of store and product)
    customers = layout_of(features([1, 2], [0, 0], [1.0, 2.0]))
    sales = pa.table(
        {
            "store": ["s1", "s1", "s2"],
            "product": [10, 11, 10],
            "ts": pa.array([at(0), at(0), at(5)], US),
            "qty": [3, 4, 5],
        }
    )
    built = build_layout(sales, source=SOURCE, entity_keys=["store", "product"], timestamp_column="ts")
    stores = load_layout(built.data, built.manifest)
    label_table = labels([2, 1, 1], [1, 1, 6], store=["s2", "s1", "s2"], product=[10, 11, 10], y=[0, 1, 0])
    # When both are joined, the second with a 2 hour TTL
    result = join(label_table, JoinView("c", customers, ttl=None), JoinView("s", stores, ttl=timedelta(hours=2)))
    # Then rows keep their order and columns, each view adds its features, and counts are per view
    assert result.table.column_names == ["cid", "t", "store", "product", "y", "c:x", "s:qty"]
    assert result.table.column("c:x").to_pylist() == [2.0, 1.0, 1.0]
    assert result.table.column("s:qty").to_pylist() == [None, 4, 5]
    assert result.counts == [
        PitJoinCounts(view="c", matched=3, missing=0, expired=0),
        PitJoinCounts(view="s", matched=2, missing=1, expired=0),
    ]


def test_pit_join_string_keys_and_dictionary_label_keys_match() -> None:
    layout = layout_of(features(["a", "b"], [0, 0], [1.0, 2.0]))
    label_table = pa.table({"cid": pa.array(["b", "c", "a"]).dictionary_encode(), "t": pa.array([at(1)] * 3, US)})
    result = join(label_table, JoinView("v", layout, ttl=None))
    assert result.table.column("v:x").to_pylist() == [2.0, None, 1.0]


def test_pit_join_composite_key_does_not_match_on_one_part_alone() -> None:
    # Given (1, "a") and (2, "b") only
    table = features([1, 2], [0, 0], [1.0, 2.0], region=["a", "b"])
    layout = layout_of(table, keys=["cid", "region"])
    # When labels carry the swapped combinations (1, "b") and (2, "a") and the real ones
    label_table = labels([1, 2, 1, 2], [1, 1, 1, 1], region=["b", "a", "a", "b"])
    result = join(label_table, JoinView("v", layout, ttl=None))
    # Then only the real combinations match
    assert result.table.column("v:x").to_pylist() == [None, None, 1.0, 2.0]


def test_pit_join_streams_label_batches_with_the_same_answer() -> None:
    layout = layout_of(features([1, 1, 2], [0, 2, 1], [0.0, 2.0, 1.0]))
    label_table = labels([1, 2, 1, 2, 3, 1], [1, 2, 3, 0, 1, 2])
    whole = join(label_table, JoinView("v", layout, ttl=None))
    sink = io.BytesIO()
    pq.write_table(label_table, sink, row_group_size=2)
    streamed = join(pq.ParquetFile(io.BytesIO(sink.getvalue())).iter_batches(batch_size=2), JoinView("v", layout, None))
    assert streamed.table.equals(whole.table) and streamed.counts == whole.counts


def test_pit_join_label_time_zone_may_differ_but_naive_and_aware_do_not_mix() -> None:
    aware = pa.table(
        {"cid": [1], "ts": pa.array([datetime(2024, 1, 1, tzinfo=UTC)], pa.timestamp("ms", "UTC")), "x": [1.0]}
    )
    layout = layout_of(aware)
    later = pa.array([datetime(2024, 1, 1, 1, tzinfo=UTC)], pa.timestamp("ns", "UTC")).cast(
        pa.timestamp("ns", "Europe/Paris")
    )
    assert join(pa.table({"cid": [1], "t": later}), JoinView("v", layout, None)).table.column("v:x").to_pylist() == [
        1.0
    ]
    with pytest.raises(InvalidInput, match="time zone"):
        join(labels([1], [1]), JoinView("v", layout, None))


def test_pit_join_refuses_a_label_key_of_another_kind_and_missing_columns() -> None:
    layout = layout_of(features([1], [0], [1.0]))
    with pytest.raises(InvalidInput, match="label key 'cid' is string but the view's key 'cid' is int64"):
        join(labels(["1"], [1]), JoinView("v", layout, None))
    with pytest.raises(InvalidInput, match="no entity key column 'customer'"):
        join(labels([1], [1]), JoinView("v", layout, None, label_keys=["customer"]))
    with pytest.raises(InvalidInput, match="no loaded feature"):
        join(labels([1], [1]), JoinView("v", layout, None, features=["nope"]))
    with pytest.raises(InvalidInput, match="TTL must not be negative"):
        join(labels([1], [1]), JoinView("v", layout, timedelta(seconds=-1)))
    with pytest.raises(InvalidInput, match="already have column"):
        join(labels([1], [1], **{"v:x": [0.0]}), JoinView("v", layout, None))


# -- the layout ------------------------------------------------------------------------------
def test_layout_is_sorted_by_entity_and_time_in_row_groups_with_its_sha256_and_source() -> None:
    # Given an unsorted source of 3 entities
    table = features([3, 1, 2, 1, 3], [1, 5, 2, 0, 0], [31.0, 15.0, 22.0, 10.0, 30.0])
    # When built with row groups of 2 rows
    built = build_layout(table, source=SOURCE, entity_keys=["cid"], timestamp_column="ts", row_group_size=2)
    # Then the Parquet rows are sorted by (cid, ts), in 3 row groups, and the manifest says so
    stored = pq.read_table(io.BytesIO(built.data))
    assert stored.column("x").to_pylist() == [10.0, 15.0, 22.0, 30.0, 31.0]
    assert stored.column(ENTITY_COLUMN).to_pylist() == [0, 0, 1, 2, 2]
    assert pq.ParquetFile(io.BytesIO(built.data)).num_row_groups == 3
    manifest = built.manifest
    assert (manifest.rows, manifest.entities, manifest.row_groups, manifest.source) == (5, 3, 3, SOURCE)
    assert manifest.size_bytes == len(built.data)
    # And rebuilding from the same source reproduces the same bytes
    again = build_layout(table, source=SOURCE, entity_keys=["cid"], timestamp_column="ts", row_group_size=2)
    assert again.manifest.sha256 == manifest.sha256


def test_layout_refuses_duplicate_entity_timestamp_rows_naming_one() -> None:
    table = features([1, 2, 1], [0, 0, 0], [1.0, 2.0, 3.0])
    with pytest.raises(InvalidInput, match=r"1 duplicate \(entity, ts\) row\(s\) in customers@3, e.g. cid=1 at"):
        layout_of(table)


def test_layout_refuses_null_keys_null_times_bad_types_and_missing_columns() -> None:
    with pytest.raises(InvalidInput, match="entity key column 'cid' has 1 null"):
        layout_of(features([1, None], [0, 1], [1.0, 2.0]))
    with pytest.raises(InvalidInput, match="timestamp column 'ts' has 1 null"):
        layout_of(pa.table({"cid": [1, 2], "ts": pa.array([at(0), None], US), "x": [1.0, 2.0]}))
    with pytest.raises(InvalidInput, match="must be an integer or a string"):
        layout_of(features([1.5], [0], [1.0]))
    with pytest.raises(InvalidInput, match="'ts' is int64, not a timestamp"):
        layout_of(pa.table({"cid": [1], "ts": [5], "x": [1.0]}))
    with pytest.raises(InvalidInput, match=r"feature column.*'nope' not in the source table"):
        layout_of(features([1], [0], [1.0]), features=["nope"])


def test_load_layout_refuses_bytes_that_do_not_match_the_manifest(tmp_path: Any) -> None:
    built = build_layout(features([1], [0], [1.0]), source=SOURCE, entity_keys=["cid"], timestamp_column="ts")
    tampered = built.data[:-1] + bytes([built.data[-1] ^ 1])
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        load_layout(tampered, built.manifest)
    path = tmp_path / "layout.parquet"
    path.write_bytes(built.data)
    assert load_layout(path, built.manifest).manifest == built.manifest


def test_layout_of_an_empty_source_joins_to_missing() -> None:
    empty = features([], [], [])
    empty = empty.cast(pa.schema([("cid", pa.int64()), ("ts", US), ("x", pa.float64())]))
    result = join(labels([1], [0]), JoinView("v", layout_of(empty), None))
    assert result.table.column("v:x").to_pylist() == [None]
    assert result.counts[0].missing == 1


# -- properties: a brute-force oracle and pandas.merge_asof --------------------------------
KEY_KINDS = ("int", "string", "composite")


@st.composite
def cases(draw: st.DrawFn, *, allow_null_labels: bool = True) -> dict[str, Any]:
    kind = draw(st.sampled_from(KEY_KINDS))
    entity = st.integers(0, 4)
    rows = draw(
        st.lists(
            st.tuples(entity, st.integers(0, 3), st.integers(0, 20), st.one_of(st.none(), st.floats(-5, 5))),
            max_size=40,
            unique_by=lambda r: (r[0], r[1] if kind == "composite" else 0, r[2]),
        )
    )
    label_entity = st.integers(0, 5)  # 5 is never a feature entity
    label_time = st.integers(-2, 25)
    label_rows = draw(
        st.lists(
            st.tuples(
                st.one_of(st.none(), label_entity) if allow_null_labels else label_entity,
                st.integers(0, 3),
                st.one_of(st.none(), label_time) if allow_null_labels else label_time,
            ),
            min_size=1,
            max_size=30,
        )
    )
    ttl = draw(st.one_of(st.none(), st.integers(0, 8)))
    return {"kind": kind, "rows": rows, "labels": label_rows, "ttl": ttl}


def _key(kind: str, e: Any, sub: int) -> dict[str, Any]:
    if kind == "int":
        return {"e": e}
    if kind == "string":
        return {"e": None if e is None else f"id-{e}"}
    return {"e": e, "sub": f"s{sub}"}


def _tables(case: dict[str, Any]) -> tuple[pa.Table, pa.Table, list[str]]:
    kind = case["kind"]
    keys = ["e", "sub"] if kind == "composite" else ["e"]
    key_type = pa.string() if kind == "string" else pa.int64()
    schema = [pa.field("e", key_type)] + ([pa.field("sub", pa.string())] if kind == "composite" else [])
    feat_rows = [{**_key(kind, e, s), "ts": T0 + timedelta(seconds=t), "x": x} for e, s, t, x in case["rows"]]
    label_rows = [
        {**_key(kind, e, s), "t": None if t is None else T0 + timedelta(seconds=t)} for e, s, t in case["labels"]
    ]
    feat = pa.Table.from_pylist(feat_rows, schema=pa.schema([*schema, pa.field("ts", US), pa.field("x", pa.float64())]))
    lab = pa.Table.from_pylist(label_rows, schema=pa.schema([*schema, pa.field("t", US)]))
    return feat, lab, keys


def _oracle(feat: pa.Table, lab: pa.Table, keys: list[str], ttl: int | None) -> list[float | None]:
    """The definition, row by row: the latest feature row of the same key at or before the label's
    time, null if there is none or it is more than ttl seconds old."""
    rows = feat.to_pylist()
    out: list[float | None] = []
    for label in lab.to_pylist():
        if label["t"] is None or any(label[k] is None for k in keys):
            out.append(None)
            continue
        candidates = [r for r in rows if all(r[k] == label[k] for k in keys) and r["ts"] <= label["t"]]
        best = max(candidates, key=lambda r: r["ts"], default=None)
        fresh = best is not None and (ttl is None or label["t"] - best["ts"] <= timedelta(seconds=ttl))
        out.append(best["x"] if fresh and best is not None else None)
    return out


def _join_case(case: dict[str, Any], batch_rows: int = 7) -> tuple[pa.Table, pa.Table, list[str], list[Any]]:
    feat, lab, keys = _tables(case)
    built = build_layout(feat, source=SOURCE, entity_keys=keys, timestamp_column="ts", row_group_size=8)
    ttl = None if case["ttl"] is None else timedelta(seconds=case["ttl"])
    result = pit_join(
        lab, [JoinView("v", load_layout(built.data, built.manifest), ttl)], time_column="t", batch_rows=batch_rows
    )
    counts = result.counts[0]
    assert counts.rows == lab.num_rows
    return feat, lab, keys, result.table.column("v:x").to_pylist()


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_pit_join_equals_the_brute_force_oracle(case: dict[str, Any]) -> None:
    feat, lab, keys, got = _join_case(case)
    assert got == _oracle(feat, lab, keys, case["ttl"])


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(allow_null_labels=False))
def test_pit_join_equals_pandas_merge_asof(case: dict[str, Any]) -> None:
    feat, lab, keys, got = _join_case(case)
    # pandas.merge_asof needs both sides sorted by time; the label order is restored afterwards
    left = lab.to_pandas().assign(_row=range(lab.num_rows)).sort_values("t", kind="stable")
    right = feat.to_pandas().rename(columns={"ts": "t"}).sort_values("t", kind="stable")
    tolerance = None if case["ttl"] is None else pd.Timedelta(seconds=case["ttl"])
    merged = pd.merge_asof(left, right, on="t", by=keys, direction="backward", tolerance=tolerance)
    expected = merged.sort_values("_row")["x"].tolist()
    # identical values and nulls in the same places (pandas writes a null as NaN)
    assert [math.isnan(v) for v in expected] == [v is None for v in got]
    assert [v for v in expected if not math.isnan(v)] == [v for v in got if v is not None]
