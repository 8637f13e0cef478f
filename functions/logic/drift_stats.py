"""Statistics of the drift check, on binned data, in numpy only (the drift layer has no scipy).

Every function takes counts over the same bins for reference and current, and returns plain floats.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

_PSI_FLOOR = 1e-4  # share given to an empty bucket in PSI, so one empty bucket is not infinite


def kolmogorov_sf(x: float) -> float:
    """P(K > x) for the Kolmogorov distribution (the limit of sqrt(n) * D_n).

    Two series of the same function: the alternating one converges fast for large x, the Jacobi
    theta form for small x. Accurate to ~1e-15 absolute.
    """
    if x <= 0:
        return 1.0
    if x < 1.0:
        # P(K <= x) = sqrt(2 pi) / x * sum_{k>=1} exp(-(2k-1)^2 pi^2 / (8 x^2))
        t = math.pi**2 / (8.0 * x * x)
        total = 0.0
        for k in range(1, 40):
            term = math.exp(-((2 * k - 1) ** 2) * t)
            total += term
            if term < 1e-17 * total:
                break
        return min(1.0, max(0.0, 1.0 - math.sqrt(2.0 * math.pi) / x * total))
    total = 0.0
    for k in range(1, 101):
        term = math.exp(-2.0 * k * k * x * x)
        total += term if k % 2 else -term
        if term < 1e-300 or term < 1e-17 * abs(total):
            break
    return min(1.0, max(0.0, 2.0 * total))


def ks_binned(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Two-sample KS statistic D over the bin edges and its asymptotic p-value.

    p = Q_KS(sqrt(n m / (n + m)) * D), as scipy's ks_2samp(method="asymp") up to its finite-n
    refinement. D on binned data is the exact D of the samples at the bin edges, so it is at most
    the unbinned D (conservative), by less than one bin's mass.
    """
    n, m = float(reference.sum()), float(current.sum())
    if n == 0 or m == 0:
        return 0.0, 1.0
    d = float(np.max(np.abs(np.cumsum(reference) / n - np.cumsum(current) / m)))
    return d, kolmogorov_sf(math.sqrt(n * m / (n + m)) * d)


def _regularized_gamma_q(a: float, x: float) -> float:
    """Q(a, x) = Gamma(a, x) / Gamma(a): series for x < a + 1, continued fraction (Lentz) otherwise."""
    if x <= 0:
        return 1.0
    log_prefix = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1.0:
        ap, term = a, 1.0 / a
        total = term
        for _ in range(100_000):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-16:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 100_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return min(1.0, math.exp(log_prefix) * h)


def chi2_sf(x: float, dof: int) -> float:
    """P(X > x) for a chi-square variable with dof degrees of freedom."""
    if dof <= 0:
        return 1.0
    return _regularized_gamma_q(dof / 2.0, x / 2.0)


def chi2_homogeneity(reference: np.ndarray, current: np.ndarray) -> tuple[float, int, float]:
    """Chi-square test that two samples of counts over the same categories share a distribution.

    2 x k contingency table, categories empty in both samples dropped; returns (chi2, dof, p).
    """
    table = np.vstack([reference, current]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    total = table.sum()
    if table.shape[1] < 2 or table[0].sum() == 0 or table[1].sum() == 0:
        return 0.0, 0, 1.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / total
    stat = float(((table - expected) ** 2 / expected).sum())
    dof = table.shape[1] - 1
    return stat, dof, chi2_sf(stat, dof)


def merge_rare(reference: np.ndarray, current: np.ndarray, min_expected: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Sum the categories that either sample would see fewer than min_expected times (at the other's
    share) into one bucket, so sparse categories neither invalidate the chi-square test nor inflate
    JS distance and PSI with sampling noise. The last entry (the unseen bucket) is never merged."""
    n, m = float(reference.sum()), float(current.sum())
    if n == 0 or m == 0 or len(reference) < 3:
        return reference, current
    pooled = (reference + current) / (n + m)
    rare = pooled * min(n, m) < min_expected
    rare[-1] = False
    if rare.sum() < 2:
        return reference, current
    keep = ~rare
    return (
        np.append(reference[keep], reference[rare].sum()),
        np.append(current[keep], current[rare].sum()),
    )


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else np.zeros(len(counts), dtype=np.float64)


def js_distance(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between two count vectors."""
    p, q = _shares(reference.astype(np.float64)), _shares(current.astype(np.float64))
    mid = (p + q) / 2.0

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / mid[nz])))

    return math.sqrt(max(0.0, (kl(p) + kl(q)) / 2.0))


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index sum((c - r) * ln(c / r)) over shares, empty shares floored."""
    r = np.maximum(_shares(reference.astype(np.float64)), _PSI_FLOOR)
    c = np.maximum(_shares(current.astype(np.float64)), _PSI_FLOOR)
    return float(np.sum((c - r) * np.log(c / r)))


def psi_groups(reference: np.ndarray, n_groups: int) -> np.ndarray:
    """Group index of each fine bin so that groups hold ~equal reference mass (quantile buckets).

    `reference` has the below/above-range bins at both ends; they join the first / last group.
    """
    total = reference.sum()
    if total == 0:
        return np.zeros(len(reference), dtype=np.intp)
    before = (np.cumsum(reference) - reference) / total  # reference mass before each bin
    return np.minimum((before * n_groups).astype(np.intp), n_groups - 1)


def wasserstein_binned(reference: np.ndarray, current: np.ndarray, points: np.ndarray) -> float:
    """1-Wasserstein distance between two count vectors placed at increasing points."""
    n, m = reference.sum(), current.sum()
    if n == 0 or m == 0:
        return 0.0
    gap = np.abs(np.cumsum(reference) / n - np.cumsum(current) / m)[:-1]
    return float(np.sum(gap * np.diff(points)))


def two_proportion_p_value(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p-value of the z test that k1/n1 and k2/n2 are the same proportion."""
    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = (k1 + k2) / (n1 + n2)
    if pooled in (0.0, 1.0):
        return 1.0
    z = (k2 / n2 - k1 / n1) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return math.erfc(abs(z) / math.sqrt(2.0))


def cohens_h(p0: float, p1: float) -> float:
    """Cohen's h between two proportions: |2 asin sqrt(p1) - 2 asin sqrt(p0)|, in [0, pi].

    A relative effect size: the same absolute change weighs more near 0 or 1 than near 1/2.
    """
    clip = min(1.0, max(0.0, p0)), min(1.0, max(0.0, p1))
    return abs(2.0 * math.asin(math.sqrt(clip[1])) - 2.0 * math.asin(math.sqrt(clip[0])))


def adjust_p_values(p_values: Sequence[float] | np.ndarray, method: str) -> list[float]:
    """Bonferroni or Benjamini-Hochberg adjusted p-values (compare each to alpha)."""
    p = np.asarray(p_values, dtype=np.float64)
    k = len(p)
    if k == 0:
        return []
    if method == "bonferroni":
        return [float(v) for v in np.minimum(p * k, 1.0)]
    order = np.argsort(p)
    scaled = p[order] * k / np.arange(1, k + 1)
    adjusted_sorted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    adjusted = np.empty(k, dtype=np.float64)
    adjusted[order] = adjusted_sorted
    return [float(v) for v in adjusted]
