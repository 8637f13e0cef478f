"""Null-rate sensitivity of the drift check: a null-fraction change is drift when it is significant
after the correction and large in relative terms (Cohen's h), so a rare null tripling is caught and
a one-point change of a common null rate on a million rows is not."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from functions.logic.drift import check_drift
from functions.logic.profile import build_reference_profile
from functions.models.drift import DriftConfig, DriftReport, FeatureVerdict
from functions.models.profile import ReferenceProfile
from functions.models.registry import Feature

FEATURES = [Feature(name="x", type="float"), Feature(name="c", type="category"), Feature(name="y", type="float")]
CATS = np.array(["a", "b", "c", "d"])


def make_table(n: int, seed: int, null_rate: float, *, exact: bool = False) -> pa.Table:
    """x and c null at random rows with probability `null_rate` each (Bernoulli, so the realised
    fraction carries sampling noise; `exact`: exactly round(null_rate * n) rows); y is never null."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    c = CATS[rng.integers(0, 4, size=n)]

    def nulls() -> np.ndarray:
        return rng.permutation(n) < round(null_rate * n) if exact else rng.random(n) < null_rate

    return pa.table(
        {
            "x": pa.array(x, mask=nulls()),
            "c": pa.array(c, mask=nulls()),
            "y": rng.normal(size=n),
        }
    )


def _profile(n: int, seed: int, null_rate: float) -> ReferenceProfile:
    return build_reference_profile(make_table(n, seed, null_rate), FEATURES)


def _check(profile: ReferenceProfile, table: pa.Table) -> DriftReport:
    return check_drift(profile, table.to_batches(max_chunksize=65_536), DriftConfig(), model="m", version=1)


def _verdicts(report: DriftReport) -> dict[str, FeatureVerdict]:
    return {f.name: f.verdict for f in report.features}


def test_cohens_h_is_relative() -> None:
    from functions.logic.drift_stats import cohens_h

    # 1% -> 6% is a larger effect than 40% -> 45%, though both move by five points
    assert cohens_h(0.01, 0.06) > 0.29 and cohens_h(0.40, 0.45) == pytest.approx(0.101, abs=1e-3)
    assert cohens_h(0.40, 0.41) < 0.021 and cohens_h(0.2, 0.2) == 0.0


def test_drift_null_rate_one_to_six_percent_is_drift() -> None:
    # Given a reference where x and c are 1% null, and a window of 20,000 rows where they are 6% null
    profile = build_reference_profile(make_table(20_000, 1, 0.01, exact=True), FEATURES)
    report = _check(profile, make_table(20_000, 2, 0.06, exact=True))
    # Then both drift on their null fraction, and y (unchanged) does not
    verdicts = _verdicts(report)
    assert verdicts == {"x": FeatureVerdict.DRIFT, "c": FeatureVerdict.DRIFT, "y": FeatureVerdict.NO_DRIFT}
    assert all("null fraction" in f.reason for f in report.features if f.name in ("x", "c"))


def test_drift_null_rate_forty_to_forty_one_percent_on_a_million_rows_is_not_drift() -> None:
    # Given a reference of a million rows 40% null and a window of a million rows 41% null
    profile = _profile(1_000_000, 1, 0.40)
    report = _check(profile, make_table(1_000_000, 2, 0.41))
    # Then the change is significant but small in relative terms: no drift
    x = next(f for f in report.features if f.name == "x")
    assert x.null_p_value_adjusted is not None and x.null_p_value_adjusted < report.config.alpha
    assert report.drifted_features == []


@pytest.mark.parametrize(("base", "factor"), [(0.01, 3.0), (0.02, 3.0), (0.05, 3.0), (0.01, 5.0)])
def test_drift_null_rate_multiplied_by_three_or_more_from_one_percent_is_detected(base: float, factor: float) -> None:
    # Given references with a null rate of at least 1%, and windows of 20,000 rows where it is x3 or more
    for seed in range(5):
        profile = _profile(20_000, 100 + seed, base)
        report = _check(profile, make_table(20_000, 200 + seed, base * factor))
        # Then x and c drift every time, and nothing else
        assert sorted(report.drifted_features) == ["c", "x"], (base, factor, seed, report.drifted_features)


def _false_positives(seeds: range) -> dict[float, int]:
    flagged: dict[float, int] = {}
    for rate in (0.01, 0.1, 0.4):
        for seed in seeds:
            profile = _profile(20_000, 1_000 + seed, rate)
            report = _check(profile, make_table(20_000, 5_000 + seed, rate))
            flagged[rate] = flagged.get(rate, 0) + int(bool(report.drifted_features))
    return flagged


def test_drift_unchanged_null_rates_false_positives_fast() -> None:
    # Given 5 seeds per null rate (1%, 10%, 40%), reference and window drawn alike
    # Then no window is flagged
    assert _false_positives(range(5)) == {0.01: 0, 0.1: 0, 0.4: 0}


@pytest.mark.full
def test_drift_unchanged_null_rates_false_positives_50_seeds() -> None:
    # Given 50 seeds per null rate: at most 1% of windows flag anything
    flagged = _false_positives(range(50))
    assert all(count / 50 <= 0.01 for count in flagged.values()), flagged
