"""Small statistics for comparing training outcomes over seeds (pure numpy; checked against scipy in tests).

Paired differences get a bootstrap 95 % CI and an exact Wilcoxon signed-rank p-value; rankings are compared
with Spearman's rho and Kendall's tau-b (ties get average ranks). Nothing here is specific to VI.
"""

from __future__ import annotations

import itertools

import numpy as np


def mean_sd(values) -> tuple[float, float]:
    """(mean, sample standard deviation with ddof 1; 0 for a single value)."""
    v = np.asarray(values, float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def bootstrap_ci(diffs, *, level: float = 0.95, n_boot: int = 10_000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of paired differences and its percentile bootstrap CI: (mean, low, high).

    Resamples the pairs with replacement ``n_boot`` times (seeded, so the same input gives the same CI)."""
    d = np.asarray(diffs, float)
    if d.size == 0:
        raise ValueError("no differences")
    if d.size == 1:
        return float(d[0]), float(d[0]), float(d[0])
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(1)
    a = (1 - level) / 2
    lo, hi = np.quantile(means, [a, 1 - a])
    return float(d.mean()), float(lo), float(hi)


def stratified_bootstrap_ci(groups, *, level: float = 0.95, n_boot: int = 10_000,
                            seed: int = 0) -> tuple[float, float, float]:
    """Mean over groups of each group's mean (e.g. per-target mean paired differences, pooled over targets)
    and its percentile bootstrap CI, resampling within each group only: (mean, low, high). Groups may differ
    in size; one group is :func:`bootstrap_ci`."""
    gs = [np.asarray(g, float) for g in groups if len(g)]
    if not gs:
        raise ValueError("no groups")
    rng = np.random.default_rng(seed)
    means = np.zeros(n_boot)
    for g in gs:
        means += g[rng.integers(0, g.size, size=(n_boot, g.size))].mean(1) / len(gs)
    a = (1 - level) / 2
    lo, hi = np.quantile(means, [a, 1 - a])
    return float(np.mean([g.mean() for g in gs])), float(lo), float(hi)


def wilcoxon_signed_rank(diffs) -> float:
    """Two-sided exact p-value of the Wilcoxon signed-rank test of median(diffs) = 0.

    Zero differences are dropped (Wilcoxon's convention); ties among |d| get average ranks, and the null
    distribution is enumerated over all 2^n sign assignments of those ranks (n <= 20), so it is exact with
    ties too. Returns 1.0 when nothing is left."""
    d = np.asarray(diffs, float)
    d = d[d != 0]
    n = d.size
    if n == 0:
        return 1.0
    if n > 20:
        raise ValueError(f"exact enumeration supports up to 20 non-zero differences, got {n}")
    r = rankdata(np.abs(d))
    w_plus = float(r[d > 0].sum())
    total = float(r.sum())
    signs = np.array(list(itertools.product((0.0, 1.0), repeat=n)))
    null = signs @ r
    centre = total / 2
    extreme = abs(w_plus - centre)
    return float(np.mean(np.abs(null - centre) >= extreme - 1e-9))


def rankdata(x) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (as scipy.stats.rankdata's default)."""
    x = np.asarray(x, float)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), float)
    xs = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and xs[j + 1] == xs[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(a, b) -> float:
    """Spearman's rho: Pearson correlation of average ranks; NaN when either side is constant or n < 2."""
    ra, rb = rankdata(a), rankdata(b)
    if len(ra) < 2 or ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def kendall_tau(a, b) -> float:
    """Kendall's tau-b (tie-corrected); NaN when either side is constant or n < 2."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    i, j = np.triu_indices(len(a), 1)
    da, db = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    n_a, n_b = np.count_nonzero(da), np.count_nonzero(db)
    if n_a == 0 or n_b == 0:
        return float("nan")
    return float((da * db).sum() / np.sqrt(n_a * n_b))
