from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from functions.logic.drift import VERSION_COLUMN, check_drift, iter_parquet_batches, iter_parquet_row_groups
from functions.logic.profile import build_reference_profile
from functions.models.drift import DriftConfig, DriftReport, FeatureVerdict, ModelVerdict
from functions.models.profile import ReferenceProfile
from functions.models.registry import Feature

CATS = np.array(["a", "b", "c", "d", "e"])
BASE_P = [0.1, 0.3, 0.3, 0.2, 0.1]
SHIFTED_P = [0.25, *(np.array(BASE_P[1:]) * 0.75 / 0.9)]  # "a" from 10% to 25%
FEATURES = [Feature(name=f"x{i}", type="float") for i in range(20)] + [
    Feature(name=f"c{j}", type="category") for j in range(5)
]


def make_table(n: int, seed: int, shift: str | None = None) -> pa.Table:
    """20 standard normal features and 5 categorical ones; `shift` changes one of them."""
    rng = np.random.default_rng(seed)
    cols: dict[str, pa.Array | np.ndarray] = {f"x{i}": rng.normal(size=n) for i in range(20)}
    if shift == "mean":
        cols["x3"] = cols["x3"] + 0.2
    if shift == "scale":
        cols["x7"] = cols["x7"] * 1.3
    for j in range(5):
        p = SHIFTED_P if shift == "category" and j == 2 else BASE_P
        cols[f"c{j}"] = pa.array(CATS[rng.choice(5, size=n, p=p)])
    return pa.table(cols)


def _profile(n: int = 20_000, seed: int = 1) -> ReferenceProfile:
    return build_reference_profile(make_table(n, seed), FEATURES)


def _check(profile: ReferenceProfile, table: pa.Table, **config: object) -> DriftReport:
    return check_drift(profile, table.to_batches(max_chunksize=4_096), DriftConfig(**config), model="m", version=1)  # type: ignore[arg-type]


def _flagged(profile: ReferenceProfile, seeds: range, shift: str | None, n: int) -> dict[str, int]:
    flagged: dict[str, int] = {}
    for seed in seeds:
        report = _check(profile, make_table(n, 1_000 + seed, shift))
        for name in report.drifted_features:
            flagged[name] = flagged.get(name, 0) + 1
    return flagged


def _false_positives_and_detection(seeds: range, n: int) -> None:
    shifted = {"mean": "x3", "scale": "x7", "category": "c2"}
    fp_total: dict[str, int] = {}
    for seed in seeds:
        profile = build_reference_profile(make_table(n, seed), FEATURES)
        for name in _check(profile, make_table(n, 10_000 + seed)).drifted_features:
            fp_total[name] = fp_total.get(name, 0) + 1
        for shift, feature in shifted.items():
            report = _check(profile, make_table(n, 20_000 + seed, shift))
            assert feature in report.drifted_features, (seed, shift, report.drifted_features)
            assert set(report.drifted_features) <= {feature}, (seed, shift, report.drifted_features)
    assert all(count / len(seeds) <= 0.01 for count in fp_total.values()), fp_total


def test_drift_unshifted_false_positive_rate_and_each_shift_detected_fast() -> None:
    # Given 5 seeds of 100,000 unshifted rows, and each shift alone
    # Then no feature is flagged in more than 1% of seeds and each shift is caught every time
    _false_positives_and_detection(range(5), 100_000)


@pytest.mark.full
def test_drift_unshifted_false_positive_rate_and_each_shift_detected_50_seeds() -> None:
    _false_positives_and_detection(range(50), 100_000)


def test_drift_streamed_batches_equal_one_batch() -> None:
    profile = _profile()
    table = make_table(10_000, 5, "mean")
    a = check_drift(profile, table.to_batches(max_chunksize=777), model="m", version=1, check_id="x", now=None)
    b = check_drift(profile, [table], model="m", version=1, check_id="x")
    assert [f.model_dump(exclude={"reason"}) for f in a.features] == [
        f.model_dump(exclude={"reason"}) for f in b.features
    ]


def test_drift_empty_window_gives_no_data() -> None:
    # Given no batches, or only empty ones
    profile = _profile()
    for batches in ([], [make_table(0, 1)]):
        report = check_drift(profile, batches, model="m", version=1)
        # Then the verdict says so and nothing drifts
        assert report.verdict == ModelVerdict.NO_DATA
        assert report.row_count == 0 and report.drifted_features == []
        assert all(f.verdict == FeatureVerdict.INSUFFICIENT_DATA for f in report.features)


def test_drift_too_few_rows_is_insufficient_data() -> None:
    report = _check(_profile(), make_table(200, 2, "mean"), min_rows=1_000)
    assert report.verdict == ModelVerdict.INSUFFICIENT_DATA
    assert "200 rows" in report.reason
    assert report.features[0].verdict == FeatureVerdict.INSUFFICIENT_DATA


def test_drift_missing_column_is_reported_not_raised() -> None:
    # Given captures without x5
    table = make_table(5_000, 2).drop_columns(["x5"])
    report = _check(_profile(), table)
    # Then x5 is missing, the rest is checked, and the model verdict names the mismatch
    x5 = next(f for f in report.features if f.name == "x5")
    assert x5.verdict == FeatureVerdict.MISSING_COLUMN and x5.rows_without_column == 5_000
    assert report.verdict == ModelVerdict.SCHEMA_MISMATCH and "x5" in report.reason
    assert report.checked_features == 24


def test_drift_wrong_types_are_reported_not_raised() -> None:
    # Given a string numeric column and an int categorical column
    table = make_table(5_000, 2)
    table = table.set_column(0, "x0", table.column("x0").cast(pa.string()))
    table = table.set_column(20, "c0", pa.array(np.zeros(5_000, dtype=np.int64)))
    report = _check(_profile(), table)
    verdicts = {f.name: f for f in report.features}
    assert verdicts["x0"].verdict == FeatureVerdict.WRONG_TYPE and "string" in verdicts["x0"].reason
    assert verdicts["c0"].verdict == FeatureVerdict.WRONG_TYPE
    assert report.verdict == ModelVerdict.SCHEMA_MISMATCH


def test_drift_drift_share_and_critical_features_decide_the_model() -> None:
    profile = _profile()
    table = make_table(20_000, 3, "mean")
    assert _check(profile, table).verdict == ModelVerdict.NO_DRIFT  # 1 of 25 < 20%
    assert _check(profile, table, drift_share=0.04).verdict == ModelVerdict.DRIFT
    report = _check(profile, table, critical_features=["x3"])
    assert report.verdict == ModelVerdict.DRIFT and "critical" in report.reason
    assert next(f for f in report.features if f.name == "x3").critical


def test_drift_null_fraction_change_is_drift() -> None:
    table = make_table(20_000, 3)
    x1 = table.column("x1").to_numpy().copy()
    mask = np.zeros(len(x1), dtype=bool)
    mask[::5] = True  # 20% nulls
    table = table.set_column(1, "x1", pa.array(x1, mask=mask))
    report = _check(_profile(), table)
    x1_report = report.features[1]
    assert x1_report.verdict == FeatureVerdict.DRIFT and "null fraction" in x1_report.reason
    assert x1_report.current_null_fraction == pytest.approx(0.2)


def test_drift_out_of_range_and_unseen_values_are_measured() -> None:
    profile = _profile()
    table = make_table(20_000, 3)
    table = table.set_column(0, "x0", pa.array(table.column("x0").to_numpy() + 10.0))
    cats = np.array(["a", "zzz"])[np.random.default_rng(0).integers(0, 2, 20_000)]
    table = table.set_column(21, "c1", pa.array(cats))
    report = _check(profile, table)
    x0, c1 = report.features[0], report.features[21]
    assert x0.numeric is not None and x0.numeric.above_range_fraction > 0.9
    assert x0.numeric.current_mean == pytest.approx(10.0, abs=0.1)
    assert x0.numeric.wasserstein == pytest.approx(10.0, abs=0.1)
    assert c1.categorical is not None and c1.categorical.unseen_fraction == pytest.approx(0.5, abs=0.02)
    assert x0.verdict == c1.verdict == FeatureVerdict.DRIFT


def test_drift_dictionary_and_plain_strings_give_the_same_counts() -> None:
    profile = _profile()
    table = make_table(10_000, 4, "category")
    encoded = table.set_column(22, "c2", table.column("c2").dictionary_encode())
    a, b = _check(profile, table), _check(profile, encoded)
    assert a.features[22].categorical == b.features[22].categorical


def test_drift_bonferroni_is_configurable() -> None:
    report = _check(_profile(), make_table(20_000, 3, "scale"), correction="bonferroni")
    assert report.drifted_features == ["x7"]
    assert report.config.correction == "bonferroni"


def test_drift_report_is_valid_json_with_histograms() -> None:
    report = _check(_profile(), make_table(5_000, 2, "category"))
    back = DriftReport.model_validate_json(report.model_dump_json())
    assert back == report
    hist = report.features[0].histogram
    assert hist is not None and len(hist.labels) == len(hist.reference) == len(hist.current)
    assert sum(hist.current) == pytest.approx(1.0)


def test_iter_parquet_batches_streams_row_groups_and_skips_absent_columns(tmp_path: Path) -> None:
    # Given two files, the second without c4, written in row groups of 1,000
    table = make_table(3_000, 6).append_column(VERSION_COLUMN, pa.array(np.full(3_000, 3, dtype=np.int32)))
    pq.write_table(table, tmp_path / "a.parquet", row_group_size=1_000)
    pq.write_table(table.drop_columns(["c4"]), tmp_path / "b.parquet", row_group_size=1_000)
    # When read for the check
    batches = list(iter_parquet_batches([str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")], ["x0", "c4"]))
    # Then each batch is one row group with only the wanted columns
    assert [b.num_rows for b in batches] == [1_000] * 6
    assert batches[0].schema.names == ["x0", "c4"] and batches[-1].schema.names == ["x0"]
    profile = _profile()
    by_column = check_drift(profile, iter_parquet_row_groups([str(tmp_path / "b.parquet")]), model="m", version=1)
    by_batch = check_drift(profile, iter_parquet_batches([str(tmp_path / "b.parquet")]), model="m", version=1)
    assert by_column.versions_seen == [3] and by_column.row_count == 3_000
    assert by_column.features == by_batch.features
    assert by_column.features[-1].verdict == FeatureVerdict.MISSING_COLUMN


def test_drift_sparse_string_feature_does_not_flag_sampling_noise() -> None:
    # Given a string feature with 800 Zipf-distributed values and small windows of the same distribution
    values = np.array([f"v{i}" for i in range(800)])
    p = 1 / np.arange(1, 801)
    p /= p.sum()
    flagged = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        profile = build_reference_profile(
            pa.table({"s": values[rng.choice(800, size=50_000, p=p)]}), [Feature(name="s", type="string")]
        )
        report = _check(profile, pa.table({"s": values[rng.choice(800, size=1_500, p=p)]}))
        flagged += report.drifted_features == ["s"]
    # Then rare values are tested together and nothing is flagged
    assert flagged == 0


def test_drift_shadow_rows_count_once(tmp_path: Path) -> None:
    # Given 4,000 production rows and the same requests scored again in the shadow (shifted values
    # there would be drift if counted)
    profile = _profile()
    production = make_table(4_000, 2).append_column("__variant", pa.array(["production"] * 4_000))
    shadow = make_table(4_000, 3, "mean").append_column("__variant", pa.array(["shadow"] * 4_000))
    both = pa.concat_tables([production, shadow])
    pq.write_table(both, tmp_path / "w.parquet", row_group_size=4_000)
    # When checked as batches and as Parquet row groups (the first row group's statistics exclude shadow)
    for batches in ([both], iter_parquet_row_groups([str(tmp_path / "w.parquet")])):
        report = check_drift(profile, batches, model="m", version=1)
        # Then only the production rows are counted
        assert report.row_count == 4_000 and report.shadow_rows == 4_000
        assert report.drifted_features == []


NULL_FEATURES = [Feature(name=n, type="float") for n in ("x0", "x1")] + [
    Feature(name=n, type="category") for n in ("c0", "c1")
]


def _with_nulls(table: pa.Table, name: str, fraction: float, seed: int) -> pa.Table:
    """`table` with exactly round(fraction * rows) of `name`'s values set to null, at random rows."""
    n = table.num_rows
    mask = np.random.default_rng(seed).permutation(n) < round(fraction * n)
    values = table.column(name).combine_chunks()
    nulled = pc.if_else(pa.array(mask), pa.nulls(n, values.type), values)
    return table.set_column(table.schema.get_field_index(name), name, nulled)


def make_null_table(n: int, seed: int, null_fractions: dict[str, float]) -> pa.Table:
    table = make_table(n, seed).select([f.name for f in NULL_FEATURES])
    for name, fraction in null_fractions.items():
        table = _with_nulls(table, name, fraction, seed + 7)
    return table


@pytest.mark.parametrize("feature", ["x1", "c1"])
@pytest.mark.parametrize("fraction", [0.95, 0.96, 1.0])
def test_drift_feature_turning_null_is_drift_and_checked_at_any_null_fraction(feature: str, fraction: float) -> None:
    # Given a reference where the feature is 2% null, and a window of 20,000 rows where it is
    # `fraction` null (at 0.96 and above, fewer non-null values than min_rows remain)
    profile = build_reference_profile(make_null_table(20_000, 1, {feature: 0.02}), NULL_FEATURES)
    report = _check(profile, make_null_table(20_000, 3, {feature: fraction}))
    # Then the feature drifts on its null fraction, it is counted as checked, and the model drifts
    f = next(f for f in report.features if f.name == feature)
    assert f.verdict == FeatureVerdict.DRIFT and "null fraction" in f.reason
    assert f.current_null_fraction == pytest.approx(fraction)
    assert f.null_p_value_adjusted is not None and f.null_p_value_adjusted < report.config.alpha
    assert report.drifted_features == [feature] and report.checked_features == 4
    assert report.verdict == ModelVerdict.DRIFT
    # and where the distribution test could not run, the feature says so and why
    if fraction > 0.95:
        assert f.p_value is None and f.numeric is None and f.categorical is None
        assert "1,000" in f.distribution_skipped and "distribution not tested" in f.reason
    else:
        assert f.p_value is not None and f.distribution_skipped == ""


@pytest.mark.parametrize("feature", ["x1", "c1"])
def test_drift_feature_null_in_reference_and_window_is_checked_without_drift(feature: str) -> None:
    # Given a feature that was all null in training and stays all null
    profile = build_reference_profile(make_null_table(5_000, 1, {feature: 1.0}), NULL_FEATURES)
    report = _check(profile, make_null_table(5_000, 3, {feature: 1.0}))
    # Then it is checked (null fraction only, unchanged) and nothing drifts
    f = next(f for f in report.features if f.name == feature)
    assert f.verdict == FeatureVerdict.NO_DRIFT and f.distribution_skipped
    assert report.checked_features == 4 and report.drifted_features == []
    assert report.verdict == ModelVerdict.NO_DRIFT


def test_drift_feature_null_in_reference_gaining_values_is_drift() -> None:
    # Given a feature all null in training, half filled in the window
    profile = build_reference_profile(make_null_table(5_000, 1, {"x1": 1.0}), NULL_FEATURES)
    report = _check(profile, make_null_table(5_000, 3, {"x1": 0.5}))
    # Then its null fraction drifted; its distribution has no reference to compare with
    x1 = report.features[1]
    assert x1.verdict == FeatureVerdict.DRIFT and x1.distribution_skipped and "0 reference" in x1.distribution_skipped


def test_drift_null_test_runs_from_min_rows_total_rows() -> None:
    # Given a reference where x1 is 10% null
    profile = build_reference_profile(make_null_table(5_000, 1, {"x1": 0.1}), NULL_FEATURES)
    # When a window of exactly min_rows rows has x1 all null
    at_minimum = _check(profile, make_null_table(1_000, 3, {"x1": 1.0}), min_rows=1_000)
    # Then x1 drifts
    assert at_minimum.features[1].verdict == FeatureVerdict.DRIFT and at_minimum.verdict == ModelVerdict.DRIFT
    # When the window has one row fewer
    below = _check(profile, make_null_table(999, 3, {"x1": 1.0}), min_rows=1_000)
    # Then the window and every feature are insufficient data, naming the rows
    assert below.verdict == ModelVerdict.INSUFFICIENT_DATA and "999 rows" in below.reason
    assert all(f.verdict == FeatureVerdict.INSUFFICIENT_DATA for f in below.features)
    assert "999 current" in below.features[1].reason and below.checked_features == 0


def test_drift_window_emptied_of_values_drifts_when_significant_even_under_min_null_delta() -> None:
    # Given x1 97% null in training (a change to 100% is under min_null_delta, but no value at all
    # in 20,000 rows is far from chance), and c1 99.99% null (2 values of 20,000)
    profile = build_reference_profile(make_null_table(20_000, 1, {"x1": 0.97, "c1": 0.9999}), NULL_FEATURES)
    # When both are all null in the window
    report = _check(profile, make_null_table(2_000, 3, {"x1": 1.0, "c1": 1.0}))
    # Then x1 drifts; c1, whose few values could be missing by chance, does not
    verdicts = {f.name: f.verdict for f in report.features}
    assert verdicts["x1"] == FeatureVerdict.DRIFT and verdicts["c1"] == FeatureVerdict.NO_DRIFT
