"""MMD^2: hand-computed values, a double-loop reference, statistical properties, permutation test, bootstrap."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist

import neuroadda.selection.mmd as M
from neuroadda.selection import MMDResult, median_bandwidth, mmd2, mmd_test, pooled_kernel

# ---------------------------------------------------------------- references written out in the test


def k_ref(a, b, sigmas) -> float:
    d2 = float(np.sum((np.asarray(a, float) - np.asarray(b, float)) ** 2))
    return sum(math.exp(-d2 / (2 * s * s)) for s in sigmas) / len(sigmas)


def mmd2_ref(x, y, sigmas, estimator) -> float:
    """Straightforward double loops (Gretton et al. 2012, eq. 3/5 and Lemma 14)."""
    n, m = len(x), len(y)
    if estimator == "linear":
        L = min(n, m) // 2 * 2
        h = [k_ref(x[i], x[i + 1], sigmas) + k_ref(y[i], y[i + 1], sigmas)
             - k_ref(x[i], y[i + 1], sigmas) - k_ref(x[i + 1], y[i], sigmas) for i in range(0, L, 2)]
        return sum(h) / len(h)
    skip = estimator == "unbiased"
    sxx = sum(k_ref(x[i], x[j], sigmas) for i in range(n) for j in range(n) if not (skip and i == j))
    syy = sum(k_ref(y[i], y[j], sigmas) for i in range(m) for j in range(m) if not (skip and i == j))
    sxy = sum(k_ref(x[i], y[j], sigmas) for i in range(n) for j in range(m))
    if skip:
        return sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2 * sxy / (n * m)
    return sxx / n**2 + syy / m**2 - 2 * sxy / (n * m)


def gauss(rng, n, d, shift=0.0):
    z = rng.normal(size=(n, d))
    z[:, 0] += shift
    return z


# ---------------------------------------------------------------- exact values


def test_hand_computed_1d():
    x, y = np.array([[0.0], [1.0]]), np.array([[2.0], [4.0]])
    e = math.exp
    # sigma = 1: k(a, b) = exp(-(a - b)^2 / 2)
    k01, k24, k02, k04, k12, k14 = e(-0.5), e(-2.0), e(-2.0), e(-8.0), e(-0.5), e(-4.5)
    unbiased = k01 + k24 - 2 / 4 * (k02 + k04 + k12 + k14)  # 1/(2*1) * 2 k01 = k01
    biased = (2 + 2 * k01) / 4 + (2 + 2 * k24) / 4 - 2 / 4 * (k02 + k04 + k12 + k14)
    linear = k01 + k24 - k04 - k12  # one pair: k(x1,x2) + k(y1,y2) - k(x1,y2) - k(x2,y1)
    assert mmd2(x, y, bandwidth=1.0) == pytest.approx(unbiased, abs=1e-14)
    assert mmd2(x, y, bandwidth=1.0) == pytest.approx(0.5 * e(-0.5) + 0.5 * e(-2) - 0.5 * e(-8) - 0.5 * e(-4.5))
    assert mmd2(x, y, bandwidth=1.0, estimator="biased") == pytest.approx(biased, abs=1e-14)
    assert mmd2(x, y, bandwidth=1.0, estimator="biased") == pytest.approx(1 - 0.5 * e(-8) - 0.5 * e(-4.5))
    assert mmd2(x, y, bandwidth=1.0, estimator="linear") == pytest.approx(linear, abs=1e-14)
    assert linear == pytest.approx(e(-2) - e(-8))
    # pooled distances 1, 2, 4, 1, 3, 2 -> median 2
    assert median_bandwidth(np.vstack([x, y])) == 2.0
    assert mmd2(x, y) == pytest.approx(mmd2_ref(x, y, [2.0], "unbiased"), abs=1e-14)
    # multi = MEAN of the 5 kernels, so MMD^2 is the mean of the 5 single-sigma values
    multi = np.mean([mmd2(x, y, bandwidth=2.0 * f) for f in (0.25, 0.5, 1, 2, 4)])
    assert mmd2(x, y, bandwidth="multi") == pytest.approx(multi, abs=1e-14)
    assert mmd2(x, y, bandwidth="multi") == pytest.approx(mmd2_ref(x, y, [0.5, 1, 2, 4, 8], "unbiased"), abs=1e-14)


@pytest.mark.parametrize("estimator", ["unbiased", "biased", "linear"])
@pytest.mark.parametrize("bandwidth", [1.3, "median", "multi"])
def test_matches_double_loop_reference(estimator, bandwidth):
    rng = np.random.default_rng(1)
    x, y = gauss(rng, 7, 3), gauss(rng, 10, 3, shift=0.7) * 1.5
    med = float(np.median(pdist(np.vstack([x, y]))))
    sigmas = {1.3: [1.3], "median": [med], "multi": [med * f for f in (0.25, 0.5, 1, 2, 4)]}[bandwidth]
    got = mmd2(x, y, bandwidth=bandwidth, estimator=estimator)
    assert got == pytest.approx(mmd2_ref(x, y, sigmas, estimator), rel=1e-11, abs=1e-13)
    # the test path (one pooled kernel) gives the same observed statistic
    res = mmd_test(x, y, bandwidth=bandwidth, estimator=estimator, permutations=0, bootstrap=0)
    assert res.mmd2 == pytest.approx(got, rel=1e-11, abs=1e-13)
    assert res.bandwidth == pytest.approx(1.3 if bandwidth == 1.3 else med, rel=1e-12)


def test_linear_uses_first_even_min_rows():
    rng = np.random.default_rng(2)
    x, y = gauss(rng, 9, 2), gauss(rng, 6, 2, 1.0)
    assert mmd2(x, y, bandwidth=1.0, estimator="linear") == pytest.approx(
        mmd2(x[:6], y, bandwidth=1.0, estimator="linear"), abs=1e-15)
    assert mmd2(x, y, bandwidth=1.0, estimator="linear") != pytest.approx(
        mmd2(x[1:7], y, bandwidth=1.0, estimator="linear"), abs=1e-6)


def test_median_bandwidth_against_pdist():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(51, 4)) * 3 + 100.0  # offset: the Gram trick must not lose precision
    assert median_bandwidth(z) == pytest.approx(float(np.median(pdist(z))), rel=1e-10)
    z = rng.normal(size=(2100, 3))
    full = float(np.median(pdist(z)))
    sub = median_bandwidth(z, max_rows=2000, seed=4)
    assert sub == median_bandwidth(z, max_rows=2000, seed=4)  # seeded
    idx = np.sort(np.random.default_rng(4).choice(2100, 2000, replace=False))
    assert sub == pytest.approx(float(np.median(pdist(z[idx]))), rel=1e-10)
    assert sub == pytest.approx(full, rel=0.02)
    # degenerate: mostly duplicates -> median of positive distances; all identical -> 1.0
    dup = np.vstack([np.zeros((10, 2)), [[3.0, 4.0]], [[6.0, 8.0]]])
    assert median_bandwidth(dup) == pytest.approx(5.0)
    assert median_bandwidth(np.ones((5, 3))) == 1.0


def test_pooled_kernel_values():
    rng = np.random.default_rng(5)
    z = rng.normal(size=(9, 3)) + 50.0
    K = pooled_kernel(z, 1.7)
    ref = np.array([[k_ref(a, b, [1.7]) for b in z] for a in z])
    assert K.dtype == np.float64 and K.shape == (9, 9)
    np.testing.assert_allclose(K, ref, rtol=1e-11, atol=1e-14)
    assert np.array_equal(np.diag(K), np.ones(9)) and np.array_equal(K, K.T)
    K5 = pooled_kernel(z, [0.5, 1, 2])
    np.testing.assert_allclose(K5, [[k_ref(a, b, [0.5, 1, 2]) for b in z] for a in z], rtol=1e-11, atol=1e-14)


def test_torch_and_float32_inputs():
    rng = np.random.default_rng(6)
    x, y = gauss(rng, 20, 5).astype(np.float32), gauss(rng, 15, 5, 0.5).astype(np.float32)
    ref = mmd2(x.astype(np.float64), y.astype(np.float64))
    xt = torch.from_numpy(x).requires_grad_(True)
    assert mmd2(xt, torch.from_numpy(y)) == ref
    assert mmd2(x, y) == ref
    assert mmd_test(xt, torch.from_numpy(y), permutations=10, bootstrap=10).mmd2 == pytest.approx(ref, abs=1e-14)


# ---------------------------------------------------------------- statistical behaviour


def test_same_distribution_near_zero_and_grows_with_shift():
    rng = np.random.default_rng(7)
    base_x, base_y = gauss(rng, 400, 8), gauss(rng, 400, 8)
    same = mmd2(base_x, base_y)
    biased = mmd2(base_x, base_y, estimator="biased")
    assert abs(same) < 2e-3 and biased > 5 * abs(same)
    for bw in ("median", 2.0, "multi"):
        vals = [mmd2(base_x, base_y + np.eye(8)[0] * s, bandwidth=bw) for s in (0.0, 0.5, 1.0, 2.0)]
        assert all(b > a for a, b in zip(vals, vals[1:])), (bw, vals)
        assert vals[1] > 10 * abs(vals[0])


def test_unbiased_over_repeats():
    rng = np.random.default_rng(8)
    u, v, lin = [], [], []
    for _ in range(300):
        x, y = gauss(rng, 15, 2), gauss(rng, 15, 2)
        u.append(mmd2(x, y, bandwidth=1.0))
        v.append(mmd2(x, y, bandwidth=1.0, estimator="biased"))
        lin.append(mmd2(x, y, bandwidth=1.0, estimator="linear"))
    for vals in (u, lin):
        se = np.std(vals, ddof=1) / np.sqrt(len(vals))
        assert abs(np.mean(vals)) < 3 * se
    se_v = np.std(v, ddof=1) / np.sqrt(len(v))
    assert np.mean(v) > 20 * se_v and np.mean(v) > 0.03
    assert min(u) < 0  # the U-statistic can be negative; the V-statistic cannot
    assert min(v) >= 0


# ---------------------------------------------------------------- permutation test


@pytest.mark.parametrize("estimator", ["unbiased", "biased", "linear"])
def test_batched_permutations_equal_recomputation(estimator, monkeypatch):
    rng = np.random.default_rng(9)
    x, y = gauss(rng, 12, 3), gauss(rng, 9, 3, 0.4)
    n, z, sigma, P = 12, np.vstack([x, y]), 1.1, 25
    perms = M.permutation_splits(12, 9, P, seed=3)
    assert perms.shape == (P, 21) and all(np.array_equal(np.sort(p), np.arange(21)) for p in perms)
    loop = np.array([mmd2(z[p[:n]], z[p[n:]], bandwidth=sigma, estimator=estimator) for p in perms])
    K = pooled_kernel(z, sigma)
    np.testing.assert_allclose(M.permuted_mmd2(K, n, perms, estimator), loop, rtol=1e-11, atol=1e-13)
    monkeypatch.setattr(M, "_BLOCK_ELEMS", 21 * 4)  # chunks of 4 permutations: same stream, same stats
    np.testing.assert_allclose(M.permuted_mmd2(K, n, perms, estimator), loop, rtol=1e-11, atol=1e-13)
    res = mmd_test(x, y, bandwidth=sigma, permutations=P, bootstrap=0, seed=3, estimator=estimator)
    assert np.array_equal(M.permutation_splits(12, 9, P, seed=3), perms)  # chunking does not change the stream
    obs = mmd2(x, y, bandwidth=sigma, estimator=estimator)
    assert res.mmd2 == pytest.approx(obs, abs=1e-13)
    assert res.p_value == pytest.approx((1 + np.sum(loop >= obs - 1e-12)) / (1 + P), abs=1e-15)
    assert (res.permutations, res.n, res.m, res.estimator) == (P, 12, 9, estimator)


def test_p_value_uniformish_under_null_and_tiny_under_shift():
    rng = np.random.default_rng(10)
    ps = [mmd_test(gauss(rng, 30, 3), gauss(rng, 30, 3), permutations=200, bootstrap=0, seed=s).p_value
          for s in range(40)]
    assert np.mean(np.array(ps) < 0.05) <= 0.2
    assert 0.3 < np.mean(ps) < 0.7 and min(ps) >= 1 / 201
    res = mmd_test(gauss(rng, 50, 3), gauss(rng, 50, 3, 2.0), permutations=200, bootstrap=0)
    assert res.p_value <= 2 / 201
    assert res.p_value == pytest.approx(1 / 201)


def test_p_value_exact_small_case():
    # n = m = 2: only 3 distinct splits {01|23, 02|13, 03|12} (each twice, x<->y); observed is the most separated
    x, y = np.array([[0.0], [0.1]]), np.array([[5.0], [5.1]])
    res = mmd_test(x, y, bandwidth=1.0, permutations=600, bootstrap=0, seed=1)
    perms = M.permutation_splits(2, 2, 600, seed=1)
    n_obs_split = sum(set(p[:2]) in ({0, 1}, {2, 3}) for p in perms)
    assert res.p_value == pytest.approx((1 + n_obs_split) / 601)
    assert 0.25 < res.p_value < 0.42  # ~1/3


# ---------------------------------------------------------------- bootstrap


@pytest.mark.parametrize("estimator", ["unbiased", "biased", "linear"])
def test_bootstrap_statistics_match_resampled_loop(estimator):
    rng = np.random.default_rng(11)
    x, y = gauss(rng, 8, 2), gauss(rng, 6, 2, 0.8)
    z, sigma, n, m, B = np.vstack([x, y]), 1.2, 8, 6, 12
    got = M._bootstrap_stats(pooled_kernel(z, sigma), n, B, np.random.default_rng(5), estimator)
    draw = np.random.default_rng(5)  # the same draws, in the same order (one chunk)
    ix, iy = draw.integers(0, n, (B, n)), draw.integers(0, m, (B, m))
    for b in range(B):
        xs, ys = x[ix[b]], y[iy[b]]
        if estimator != "unbiased":
            want = mmd2_ref(xs, ys, [sigma], estimator)
        else:  # within terms average over position pairs holding DIFFERENT original rows
            wx = [k_ref(xs[i], xs[j], [sigma]) for i in range(n) for j in range(n) if ix[b, i] != ix[b, j]]
            wy = [k_ref(ys[i], ys[j], [sigma]) for i in range(m) for j in range(m) if iy[b, i] != iy[b, j]]
            want = np.mean(wx) + np.mean(wy) - 2 * np.mean([k_ref(a, c, [sigma]) for a in xs for c in ys])
        assert got[b] == pytest.approx(want, rel=1e-11, abs=1e-13)


def test_bootstrap_ci_contains_estimate_and_widens_for_small_samples():
    rng = np.random.default_rng(12)
    widths = {}
    for n in (40, 400):
        res = mmd_test(gauss(rng, n, 4), gauss(rng, n, 4, 1.0), permutations=0, bootstrap=400, seed=0)
        assert res.ci_low < res.mmd2 < res.ci_high
        assert math.isnan(res.p_value) and res.bootstrap == 400
        widths[n] = res.ci_high - res.ci_low
    assert widths[40] > 2 * widths[400]
    # also under the null (MMD^2 = O(1/n)): duplicates are excluded, so the interval is not pushed up
    x, y = gauss(rng, 200, 16), gauss(rng, 200, 16)
    res = mmd_test(x, y, permutations=0, bootstrap=400, seed=1)
    assert res.ci_low < res.mmd2 < res.ci_high


def test_reproducible_and_frozen():
    rng = np.random.default_rng(13)
    x, y = gauss(rng, 30, 3), gauss(rng, 25, 3, 0.5)
    a = mmd_test(x, y, permutations=50, bootstrap=50, seed=7)
    assert a == mmd_test(x, y, permutations=50, bootstrap=50, seed=7)
    assert isinstance(a, MMDResult) and a.ci_low <= a.ci_high
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.mmd2 = 0.0
    b = mmd_test(x, y, permutations=0, bootstrap=0)
    assert math.isnan(b.p_value) and math.isnan(b.ci_low) and math.isnan(b.ci_high)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("x, y, match", [
    (np.zeros(5), np.zeros((5, 1)), "2-D"),
    (np.zeros((5, 2, 2)), np.zeros((5, 2)), "2-D"),
    (np.zeros((5, 2)), np.zeros((5, 3)), "same feature dimension"),
    (np.zeros((1, 2)), np.zeros((5, 2)), "at least 2 samples"),
    (np.zeros((5, 0)), np.zeros((5, 0)), "at least 2 samples"),
    (np.array([[0.0], [np.nan]]), np.zeros((5, 1)), "NaN or infinite"),
    (np.zeros((3, 1)), np.array([[0.0], [np.inf]]), "NaN or infinite"),
    ([["a", "b"], ["c", "d"]], np.zeros((2, 2)), "cannot convert"),
])
def test_bad_inputs(x, y, match):
    with pytest.raises(ValueError, match=match):
        mmd2(x, y)
    with pytest.raises(ValueError, match=match):
        mmd_test(x, y, permutations=5, bootstrap=5)


def test_bad_options():
    x, y = np.zeros((4, 2)), np.ones((4, 2))
    for bw in (0.0, -1.0, float("nan"), float("inf"), "mean", True, None, [1.0]):
        with pytest.raises(ValueError, match="bandwidth"):
            mmd2(x, y, bandwidth=bw)
    with pytest.raises(ValueError, match="estimator"):
        mmd2(x, y, estimator="quadratic")
    with pytest.raises(ValueError, match="permutations"):
        mmd_test(x, y, permutations=-1)
    with pytest.raises(ValueError, match="bootstrap"):
        mmd_test(x, y, bootstrap=2.5)
    for ci in (0.0, 1.0, 95):
        with pytest.raises(ValueError, match="ci"):
            mmd_test(x, y, ci=ci)
    for sig in (0.0, -1.0, [], [1.0, float("nan")]):
        with pytest.raises(ValueError, match="sigmas"):
            pooled_kernel(x, sig)
