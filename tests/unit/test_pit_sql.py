"""The point-in-time join's SQL (functions/logic/pit_sql.py), run in DuckDB over the real offline
layout files and compared with the in-function join (functions/logic/pit_join.py): identical values,
nulls in the same places, no future leakage, the TTL boundary, equal timestamps, unknown entities,
null keys and times, composite and string keys, several views; and the engine choice.

DuckDB is the test oracle for the SQL (dev extra only): the statement is the one Athena runs, and
it uses nothing DuckDB and Athena (Trino) read differently.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.logic.offline_paths import labels_table, layout_key, layout_prefix, layout_table, manifest_key
from functions.logic.offline_store import build_layout, load_layout
from functions.logic.pit_join import JoinView, pit_join
from functions.logic.pit_sql import SqlView, choose_join_engine, glue_columns, pit_join_sql, quote
from functions.models.errors import InvalidInput
from functions.models.features_offline import SourceVersionRef
from functions.models.settings import Settings

duckdb = pytest.importorskip("duckdb")

SOURCE = SourceVersionRef(dataset="customers", version=3, sha256="ab" * 32)
T0 = datetime(2024, 1, 1)
US = pa.timestamp("us")


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def stamps(hours: list[float | None]) -> pa.Array:
    return pa.array([None if h is None else at(h) for h in hours], US)


class View:
    """A feature table as a view's source: its layout file on disk, loaded for the in-function join."""

    def __init__(self, tmp: Path, name: str, table: pa.Table, keys: list[str], ttl_hours: float | None) -> None:
        built = build_layout(table, source=SOURCE, entity_keys=keys, timestamp_column="ts", row_group_size=7)
        self.path = tmp / f"{name}.parquet"
        self.path.write_bytes(built.data)
        self.name, self.keys, self.ttl_hours = name, keys, ttl_hours
        self.features = [f.name for f in built.manifest.features]
        self.layout = load_layout(self.path, built.manifest)

    def join_view(self, label_keys: list[str] | None = None) -> JoinView:
        ttl = None if self.ttl_hours is None else timedelta(hours=self.ttl_hours)
        return JoinView(self.name, self.layout, ttl=ttl, label_keys=label_keys)

    def sql_view(self, label_keys: list[str] | None = None) -> SqlView:
        ttl = None if self.ttl_hours is None else round(self.ttl_hours * 3600)
        return SqlView(self.name, f"t_{self.name}", self.keys, "ts", self.features, ttl, label_keys)


def run_sql(
    labels: pa.Table, views: list[View], label_keys: list[str] | None = None, *, statuses: bool = False
) -> pa.Table:
    con = duckdb.connect()
    with_row = labels.append_column("__row", pa.array(np.arange(labels.num_rows), pa.int64()))
    con.register("labels_arrow", with_row)
    con.execute("CREATE TABLE labels AS SELECT * FROM labels_arrow")
    for v in views:
        con.execute(f"CREATE VIEW {quote('t_' + v.name)} AS SELECT * FROM read_parquet('{v.path}')")
    sql = pit_join_sql(
        labels_table="labels",
        label_columns=labels.column_names,
        time_column="t",
        views=[v.sql_view(label_keys) for v in views],
        statuses=statuses,
    )
    result: pa.Table = con.sql(sql).to_arrow_table()
    return result


def same(a: list[Any], b: list[Any]) -> bool:
    """Equal lists, None in the same places, NaN equal to NaN."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x is None or y is None:
            if x is not y:
                return False
        elif isinstance(x, float) and math.isnan(x):
            if not (isinstance(y, float) and math.isnan(y)):
                return False
        elif x != y:
            return False
    return True


def assert_sql_matches_in_function_join(
    labels: pa.Table, views: list[View], label_keys: list[str] | None = None
) -> pa.Table:
    joined = pit_join(labels, [v.join_view(label_keys) for v in views], time_column="t")
    expected = joined.table
    got = run_sql(labels, views, label_keys, statuses=True)
    statuses = [f"{v.name}:__status" for v in views]
    assert got.column_names == expected.column_names + statuses
    for name in expected.column_names:
        assert same(got.column(name).to_pylist(), expected.column(name).to_pylist()), name
    # and the statuses count what the in-function join counts
    for counts, name in zip(joined.counts, statuses, strict=True):
        values = got.column(name).to_pylist()
        assert (values.count("matched"), values.count("missing"), values.count("expired")) == (
            counts.matched,
            counts.missing,
            counts.expired,
        ), name
    return got.drop_columns(statuses)


# -- fixed cases ------------------------------------------------------------------------------
def test_pit_sql_never_returns_a_feature_row_later_than_the_label(tmp_path: Path) -> None:
    # Given entity 1 whose only rows are later than its labels, entity 2 with one earlier and one later row
    table = pa.table({"cid": [1, 1, 2, 2], "ts": stamps([5, 7, 1, 9]), "x": [50.0, 70.0, 10.0, 90.0]})
    view = View(tmp_path, "v", table, ["cid"], ttl_hours=None)
    labels = pa.table({"cid": [1, 1, 2], "t": stamps([0, 4.999, 4])})
    # When the SQL runs
    got = assert_sql_matches_in_function_join(labels, [view])
    # Then entity 1 gets nulls, never 50/70, and entity 2 gets the earlier 10, never the later 90
    assert got.column("v:x").to_pylist() == [None, None, 10.0]


def test_pit_sql_ttl_boundary_and_expiry_without_falling_back(tmp_path: Path) -> None:
    # Given rows at hours 0 and 10 and a TTL of 2 hours
    table = pa.table({"cid": [1, 1], "ts": stamps([0, 10]), "x": [1.5, 10.5]})
    view = View(tmp_path, "v", table, ["cid"], ttl_hours=2)
    one_us = 1 / 3_600_000_000
    # When labels are aged exactly the TTL, one microsecond more and less, and between the two rows
    labels = pa.table({"cid": [1, 1, 1, 1, 1], "t": stamps([2, 2 + one_us, 2 - one_us, 5, 10])})
    got = assert_sql_matches_in_function_join(labels, [view])
    # Then age <= ttl keeps the value, age > ttl is null and never the older or the later row
    assert got.column("v:x").to_pylist() == [1.5, None, 1.5, None, 10.5]


def test_pit_sql_equal_times_unknown_entities_null_keys_and_null_values(tmp_path: Path) -> None:
    # Given a row stamped exactly at a label's time and a matched row whose feature is null
    table = pa.table({"cid": [1, 2, 3], "ts": stamps([3, 1, 1]), "x": [3.0, None, float("nan")], "n": [1, 2, None]})
    view = View(tmp_path, "v", table, ["cid"], ttl_hours=48)
    labels = pa.table({"cid": [1, 2, 9, None, 1, 3], "t": stamps([3, 2, 2, 2, None, 2]), "y": [1, 0, 1, 0, 1, 0]})
    got = assert_sql_matches_in_function_join(labels, [view])
    # Then equal time counts, unknown/null key or null time are null, and null or NaN inside a row stay so
    assert got.column("v:n").to_pylist() == [1, 2, None, None, None, None]
    assert got.column("y").to_pylist() == [1, 0, 1, 0, 1, 0]


def test_pit_sql_two_views_with_composite_string_keys_and_renamed_label_keys(tmp_path: Path) -> None:
    # Given a view keyed by (store, sku) and one keyed by store alone, with string and int keys
    items = pa.table(
        {
            "store": ["a", "a", "b", "a"],
            "sku": [1, 2, 1, 1],
            "ts": stamps([0, 0, 0, 4]),
            "price": [1.0, 2.0, 3.0, 4.0],
            "tag": ["x", "y", None, "w"],
        }
    )
    stores = pa.table({"store": ["a", "b"], "ts": stamps([1, 1]), "size": [10, 20]})
    item_view = View(tmp_path, "item", items, ["store", "sku"], ttl_hours=3)
    store_view = View(tmp_path, "shop", stores, ["store"], ttl_hours=None)
    labels = pa.table(
        {"store": ["a", "a", "b", "b", "c", "a"], "sku": [1, 2, 1, 2, 1, 1], "t": stamps([1, 1, 5, 5, 5, 5])}
    )
    # Then both views agree with the in-function join, column for column
    got = assert_sql_matches_in_function_join(labels, [item_view, store_view])
    assert got.column("item:price").to_pylist() == [1.0, 2.0, None, None, None, 4.0]
    assert got.column("shop:size").to_pylist() == [10, 10, 20, 20, None, 10]


# -- property: generated data, both joins -------------------------------------------------------
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**32 - 1),
    entities=st.integers(1, 6),
    rows=st.integers(0, 40),
    n_labels=st.integers(1, 30),
    ttl_hours=st.one_of(st.none(), st.sampled_from([0, 1, 2.5, 24])),
)
def test_pit_sql_matches_the_in_function_join_on_generated_data(
    tmp_path: Path, seed: int, entities: int, rows: int, n_labels: int, ttl_hours: float | None
) -> None:
    rng = np.random.default_rng(seed)
    # feature rows on a coarse grid so labels often land exactly on a feature time; (entity, time) unique
    cells = rng.permutation(entities * 30)[:rows]
    rows = len(cells)
    cid, slot = cells % entities, cells // entities
    values = rng.normal(size=rows).round(3)
    x = pa.array(values, mask=rng.random(rows) < 0.2)
    table = pa.table({"cid": pa.array(cid, pa.int64()), "ts": stamps([float(s) for s in slot]), "x": x})
    view = View(tmp_path, f"v{seed % 1000}", table, ["cid"], ttl_hours)
    label_hours = [None if rng.random() < 0.1 else float(h) for h in rng.integers(0, 60, n_labels) / 2]
    label_cid = pa.array(rng.integers(0, entities + 2, n_labels), pa.int32())  # some unknown entities
    labels = pa.table({"cid": label_cid, "t": stamps(label_hours)})
    assert_sql_matches_in_function_join(labels, [view])


# -- the statement and its refusals ----------------------------------------------------------------
def test_pit_sql_quotes_identifiers_and_qualifies_tables_with_the_database() -> None:
    view = SqlView('we"ird', "fv_t", ["cid"], "ts", ["visits 7d"], 90_061)
    sql = pit_join_sql(
        labels_table="labels_r1", label_columns=["cid", "t"], time_column="t", views=[view], database="db"
    )
    assert '"db"."fv_t"' in sql and '"db"."labels_r1"' in sql
    assert '"we""ird:visits 7d"' in sql and '"visits 7d"' in sql
    assert "INTERVAL '1' DAY - INTERVAL '3661' SECOND" in sql
    assert "ASOF" not in sql.upper()


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"label_columns": ["cid"]}, "no time column 't'"),
        ({"label_columns": ["cid", "t", "__row"]}, "row id '__row' must not also be a label column"),
        ({"label_columns": ["cid", "t", "v:x"]}, "already have column(s) v:x"),
        ({"views": []}, "at least one view"),
        ({"views": [SqlView("v", "t", ["cid"], "ts", ["x"], None)] * 2}, "distinct names"),
        ({"views": [SqlView("v", "t", ["store"], "ts", ["x"], None)]}, "no entity key column(s) ['store']"),
        ({"views": [SqlView("v", "t", ["cid"], "ts", ["x"], -1)]}, "must not be negative"),
    ],
)
def test_pit_sql_refuses_bad_joins_naming_the_problem(changes: dict[str, Any], reason: str) -> None:
    args: dict[str, Any] = {
        "labels_table": "labels",
        "label_columns": ["cid", "t"],
        "time_column": "t",
        "views": [SqlView("v", "t", ["cid"], "ts", ["x"], None)],
    } | changes
    with pytest.raises(InvalidInput) as caught:
        pit_join_sql(**args)
    assert reason in caught.value.message


# -- engine choice, paths, Glue columns -----------------------------------------------------------
def manifest(size: int) -> Any:
    table = pa.table({"cid": [1], "ts": stamps([0]), "x": [1.0], "s": pa.array(["a"]).dictionary_encode()})
    built = build_layout(table, source=SOURCE, entity_keys=["cid"], timestamp_column="ts")
    return built.manifest.model_copy(update={"size_bytes": size})


@pytest.mark.parametrize(
    ("sizes", "limit", "workgroup", "engine"),
    [
        ([100, 200], 300, "wg", "function"),  # at the limit: in the function
        ([100, 201], 300, "wg", "athena"),  # above it, with a workgroup
        ([10_000], 300, "", "function"),  # above it, no workgroup deployed (local cloud)
        ([], 1, "wg", "function"),
    ],
)
def test_choose_join_engine_by_the_bytes_of_the_layouts_read(
    sizes: list[int], limit: int, workgroup: str, engine: str
) -> None:
    s = Settings.model_validate({"STEPWISE_OFFLINE_JOIN_MAX_BYTES": limit, "STEPWISE_ATHENA_WORKGROUP": workgroup})
    assert choose_join_engine([manifest(n) for n in sizes], s) == engine


def test_offline_paths_one_prefix_per_source_version_and_keys() -> None:
    prefix = layout_prefix("customer-stats", 3, ["cid"], "ts")
    assert prefix.startswith("offline/customer-stats/v00000003/") and prefix.endswith("/")
    digest = prefix.split("/")[3]
    assert len(digest) == 16 and layout_prefix("customer-stats", 3, ["cid"], "at") != prefix
    assert layout_key("customer-stats", 3, ["cid"], "ts") == prefix + "layout.parquet"
    assert manifest_key("customer-stats", 3, ["cid"], "ts") == prefix + "_manifest.json"
    assert layout_table("customer-stats", 3, ["cid"], "ts") == f"layout_customer_stats_v3_{digest}"
    assert labels_table("run-1.a") == "labels_run_1_a"
    with pytest.raises(InvalidInput):
        layout_prefix("v", 0, ["cid"], "ts")
    with pytest.raises(InvalidInput):
        labels_table("../x")


def test_glue_columns_map_the_layout_types() -> None:
    m = manifest(1)
    assert glue_columns(m, ["int64"], "timestamp[us]") == [
        {"Name": "cid", "Type": "bigint"},
        {"Name": "ts", "Type": "timestamp"},
        {"Name": "x", "Type": "double"},
        {"Name": "s", "Type": "string"},
    ]
    with pytest.raises(InvalidInput, match="do not map"):
        glue_columns(
            m.model_copy(update={"features": [m.features[0].model_copy(update={"arrow_type": "list<x>"})]}),
            ["int64"],
            "timestamp[us]",
        )
