from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from functions.logic import drift_stats as st


@pytest.mark.parametrize("x", [0.0, 0.05, 0.2, 0.5, 0.8, 0.99, 1.0, 1.01, 1.36, 1.63, 2.0, 3.0, 5.0, 8.0])
def test_kolmogorov_sf_matches_scipy_kstwobign(x: float) -> None:
    assert st.kolmogorov_sf(x) == pytest.approx(stats.kstwobign.sf(x), abs=1e-13)


def test_kolmogorov_sf_is_monotone_on_a_grid() -> None:
    values = [st.kolmogorov_sf(x) for x in np.linspace(0, 4, 2_001)]
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_ks_binned_equals_scipy_on_data_that_falls_on_bin_edges() -> None:
    # Given integer samples binned one value per bin (binning loses nothing)
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 50, 5_000), rng.integers(2, 52, 4_000)
    # When D and p are computed from counts
    d, p = st.ks_binned(np.bincount(a, minlength=60), np.bincount(b, minlength=60))
    # Then D is scipy's, and p its asymptotic p-value
    ref = stats.ks_2samp(a, b, method="asymp")
    assert d == pytest.approx(ref.statistic, abs=1e-12)
    en = len(a) * len(b) / (len(a) + len(b))
    assert p == pytest.approx(stats.kstwobign.sf(np.sqrt(en) * d), rel=1e-9)
    assert p == pytest.approx(ref.pvalue, rel=0.1)  # scipy refines with the finite-n distribution


def test_ks_binned_of_empty_sample_is_not_significant() -> None:
    assert st.ks_binned(np.zeros(5), np.ones(5)) == (0.0, 1.0)


@pytest.mark.parametrize("dof", [1, 2, 3, 7, 30, 200, 2_000])
def test_chi2_sf_matches_scipy(dof: int) -> None:
    for x in np.linspace(0.0, 3 * dof + 60, 97):
        assert st.chi2_sf(float(x), dof) == pytest.approx(stats.chi2.sf(x, dof), abs=1e-12)


def test_chi2_homogeneity_matches_scipy_contingency() -> None:
    ref, cur = np.array([100, 300, 0, 250, 50]), np.array([120, 260, 0, 280, 90])
    chi2, dof, p = st.chi2_homogeneity(ref, cur)
    expected = stats.chi2_contingency(np.vstack([ref, cur])[:, [0, 1, 3, 4]], correction=False)
    assert chi2 == pytest.approx(expected.statistic) and dof == expected.dof
    assert p == pytest.approx(expected.pvalue, rel=1e-9)


def test_chi2_homogeneity_single_category_is_not_significant() -> None:
    assert st.chi2_homogeneity(np.array([5, 0]), np.array([7, 0])) == (0.0, 0, 1.0)


def test_js_distance_matches_scipy() -> None:
    ref, cur = np.array([10, 20, 30, 0, 5]), np.array([12, 18, 25, 3, 9])
    assert st.js_distance(ref, cur) == pytest.approx(jensenshannon(ref, cur, base=2))
    assert st.js_distance(ref, ref) == pytest.approx(0.0, abs=1e-7)
    assert st.js_distance(np.array([1, 0]), np.array([0, 1])) == pytest.approx(1.0)


def test_wasserstein_binned_matches_scipy_on_points() -> None:
    points = np.array([-3.0, -1.0, 0.0, 0.5, 2.0, 4.0])
    ref, cur = np.array([1, 4, 6, 2, 0, 1]), np.array([0, 2, 5, 5, 3, 1])
    expected = stats.wasserstein_distance(points, points, ref, cur)
    assert st.wasserstein_binned(ref, cur, points) == pytest.approx(expected)


def test_psi_is_zero_for_identical_and_grows_with_shift() -> None:
    ref = np.array([100, 200, 300, 400])
    assert st.psi(ref, ref) == pytest.approx(0.0)
    assert 0 < st.psi(ref, np.array([110, 200, 300, 390])) < st.psi(ref, np.array([200, 200, 300, 300]))
    # an empty reference bucket is floored, not infinite
    assert np.isfinite(st.psi(np.array([0, 10]), np.array([5, 5])))


def test_psi_groups_split_reference_mass_evenly() -> None:
    ref = np.concatenate([[0], np.full(1_000, 10), [0]])
    groups = st.psi_groups(ref, 10)
    sizes = np.bincount(groups, weights=ref)
    assert len(sizes) == 10 and np.allclose(sizes, 1_000)
    assert groups[0] == 0 and groups[-1] == 9  # out-of-range bins join the outer groups


def test_two_proportion_p_value_is_symmetric_and_degenerate_safe() -> None:
    assert st.two_proportion_p_value(10, 1000, 10, 1000) == pytest.approx(1.0)
    assert st.two_proportion_p_value(0, 1000, 0, 1000) == 1.0
    assert st.two_proportion_p_value(10, 1000, 100, 1000) < 1e-10
    assert st.two_proportion_p_value(10, 1000, 30, 1000) == pytest.approx(st.two_proportion_p_value(30, 1000, 10, 1000))


def test_adjust_p_values_bonferroni_and_bh_match_references() -> None:
    p = np.random.default_rng(0).random(25) ** 3
    assert st.adjust_p_values(p, "bonferroni") == pytest.approx(np.minimum(p * 25, 1))
    assert st.adjust_p_values(p, "benjamini-hochberg") == pytest.approx(stats.false_discovery_control(p, method="bh"))
    assert st.adjust_p_values([], "bonferroni") == []


def test_merge_rare_sums_sparse_categories_but_keeps_unseen() -> None:
    ref, cur = np.array([5_000, 4_000, 3, 2, 1, 0]), np.array([500, 400, 1, 0, 0, 7])
    r, c = st.merge_rare(ref, cur, min_expected=5)
    assert r.tolist() == [5_000, 4_000, 0, 6] and c.tolist() == [500, 400, 7, 1]
    assert r.sum() == ref.sum() and c.sum() == cur.sum()
