"""Maximum Mean Discrepancy (MMD^2) between two embedding samples, with permutation test and bootstrap CI.

Conventions (Gretton et al. 2012, JMLR, "A Kernel Two-Sample Test"):

* Gaussian kernel ``k(a, b) = exp(-||a - b||^2 / (2 sigma^2))``; ``sigma`` is a length (a distance).
* ``bandwidth="median"``: ``sigma = median_bandwidth(vstack(x, y))``, the median pairwise Euclidean distance.
* ``bandwidth="multi"``: the MEAN (not the sum) of the five Gaussian kernels with
  ``sigma in median * {1/4, 1/2, 1, 2, 4}``, so ``k(a, a) = 1`` as for one kernel and values stay comparable.
* ``unbiased`` (U-statistic), ``biased`` (V-statistic, diagonals included) and ``linear`` (Lemma 14:
  consecutive pairs of the first ``min(n, m) // 2 * 2`` rows of each sample) estimators.

Everything is float64 numpy (BLAS matmuls); torch tensors are accepted and converted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ESTIMATORS = ("unbiased", "biased", "linear")
MULTI_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)
_TIE_TOL = 1e-12  # permuted stats within this (relative) of the observed one count as ">="
_BLOCK_ELEMS = 1 << 21  # ~16 MB of float64 per temporary block (kernel rows, permutation/bootstrap chunks)


@dataclass(frozen=True)
class MMDResult:
    """Result of :func:`mmd_test`. ``bandwidth`` is the sigma used (the base median sigma for "multi");
    ``p_value`` is NaN when ``permutations == 0`` and ``ci_low/ci_high`` are NaN when ``bootstrap == 0``."""

    mmd2: float
    p_value: float
    ci_low: float
    ci_high: float
    bandwidth: float
    permutations: int
    n: int
    m: int
    estimator: str
    bootstrap: int = 0
    ci: float = 0.95


def _as_f64(a, name: str) -> np.ndarray:
    if hasattr(a, "detach") and hasattr(a, "numpy"):  # torch tensor, without importing torch
        a = a.detach().cpu().double().numpy()
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: cannot convert to a float64 array ({e})") from None
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D (samples, features) array, got shape {arr.shape}")
    if arr.shape[0] < 2 or arr.shape[1] < 1:
        raise ValueError(f"{name}: need at least 2 samples and 1 feature, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return arr


def _check_pair(x, y, estimator: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = _as_f64(x, "x"), _as_f64(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same feature dimension, got {x.shape[1]} and {y.shape[1]}")
    _check_estimator(estimator)
    return x, y


def _check_estimator(estimator: str) -> None:
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")


def _sq_dists(a: np.ndarray, b: np.ndarray, an: np.ndarray, bn: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) squared distances ``|a|^2 + |b|^2 - 2 a.b`` clipped at 0 (an, bn: squared norms)."""
    d2 = a @ b.T
    d2 *= -2.0
    d2 += an[:, None]
    d2 += bn[None, :]
    return np.maximum(d2, 0.0, out=d2)


def median_bandwidth(z, *, max_rows: int = 2000, seed: int = 0) -> float:
    """Median heuristic: sigma = median Euclidean distance ||z_i - z_j|| over pairs i < j of z (N, d).

    Used as ``exp(-d^2 / (2 sigma^2))``. If N > ``max_rows``, a seeded random subset of ``max_rows`` rows
    (without replacement) is used. If the median is 0 (mostly duplicate rows), the median of the positive
    distances is returned instead, and 1.0 if all rows are identical.
    """
    z = _as_f64(z, "z")
    if z.shape[0] > max_rows:
        z = z[np.sort(np.random.default_rng(seed).choice(z.shape[0], max_rows, replace=False))]
    z = z - z.mean(axis=0)  # translation invariant; reduces cancellation in the Gram trick
    sq = np.einsum("ij,ij->i", z, z)
    d = np.sqrt(_sq_dists(z, z, sq, sq)[np.triu_indices(z.shape[0], k=1)])
    med = float(np.median(d))
    if med > 0:
        return med
    pos = d[d > 0]
    return float(np.median(pos)) if pos.size else 1.0


def _sigmas(bandwidth, z: np.ndarray) -> tuple[float, tuple[float, ...]]:
    """(reported sigma, sigmas of the kernels averaged) for a bandwidth spec on the pooled sample z."""
    if bandwidth in ("median", "multi"):
        s = median_bandwidth(z)
        return s, (s,) if bandwidth == "median" else tuple(s * f for f in MULTI_SCALES)
    if isinstance(bandwidth, str):
        raise ValueError(f"bandwidth must be 'median', 'multi' or a positive float, got {bandwidth!r}")
    if isinstance(bandwidth, bool) or not isinstance(bandwidth, (int, float, np.integer, np.floating)):
        raise ValueError(f"bandwidth must be 'median', 'multi' or a positive float, got {bandwidth!r}")
    s = float(bandwidth)
    if not (np.isfinite(s) and s > 0):
        raise ValueError(f"bandwidth must be a positive finite sigma, got {bandwidth!r}")
    return s, (s,)


def _gauss_(d2: np.ndarray, sigmas) -> np.ndarray:
    """Mean of Gaussian kernels over sigmas, computed from squared distances (in place if one sigma)."""
    if len(sigmas) == 1:
        d2 *= -1.0 / (2.0 * sigmas[0] ** 2)
        return np.exp(d2, out=d2)
    out = np.zeros_like(d2)
    for s in sigmas:
        out += np.exp(d2 * (-1.0 / (2.0 * s * s)))
    out /= len(sigmas)
    return out


def _kernel_rows(a, b, sigmas, start: int, same: bool) -> np.ndarray:
    an, bn = np.einsum("ij,ij->i", a, a), np.einsum("ij,ij->i", b, b)
    d2 = _sq_dists(a, b, an, bn)
    if same:  # exact zeros on the diagonal of the full matrix: rows start.. of b
        r = np.arange(a.shape[0])
        d2[r, start + r] = 0.0
    return _gauss_(d2, sigmas)


def pooled_kernel(z, sigmas) -> np.ndarray:
    """(N, N) float64 kernel matrix of z (N, d): mean over ``sigmas`` of Gaussian kernels; unit diagonal,
    exactly symmetric.

    Squared distances come from matrix products (clipped at 0), in row blocks of ~16 MB temporaries.
    """
    z = _as_f64(z, "z")
    sig = (float(sigmas),) if np.ndim(sigmas) == 0 else tuple(float(s) for s in sigmas)
    if not sig or not all(np.isfinite(s) and s > 0 for s in sig):
        raise ValueError(f"sigmas must be positive finite floats, got {sigmas!r}")
    z = z - z.mean(axis=0)
    N = z.shape[0]
    K = np.empty((N, N))
    step = max(1, _BLOCK_ELEMS // N)
    for i in range(0, N, step):  # upper block-triangle only, mirrored: exactly symmetric, half the work
        blk = K[i:i + step, i:]
        blk[...] = _kernel_rows(z[i:i + step], z[i:], sig, 0, same=True)
        il = np.tril_indices(blk.shape[0], -1)
        blk[il] = blk.T[il]  # the diagonal square block: lower from upper
        K[i:i + step, :i] = K[:i, i:i + step].T
    return K


def _block_sum(a, b, sigmas, same: bool) -> float:
    """Sum of all kernel entries between a and b, blockwise (no N^2 storage)."""
    step = max(1, _BLOCK_ELEMS // b.shape[0])
    return float(sum(_kernel_rows(a[i:i + step], b, sigmas, i, same).sum() for i in range(0, a.shape[0], step)))


def _pair_k(a, b, sigmas) -> np.ndarray:
    d2 = np.einsum("ij,ij->i", a - b, a - b)
    return _gauss_(d2, sigmas)


def mmd2(x, y, *, bandwidth="median", estimator: str = "unbiased") -> float:
    """MMD^2 between x (n, d) and y (m, d); n, m >= 2. See the module docstring for the conventions."""
    x, y = _check_pair(x, y, estimator)
    n, m = x.shape[0], y.shape[0]
    _, sig = _sigmas(bandwidth, np.vstack([x, y]))
    mu = (x.sum(0) + y.sum(0)) / (n + m)
    x, y = x - mu, y - mu
    if estimator == "linear":
        L = min(n, m) // 2 * 2
        x1, x2, y1, y2 = x[0:L:2], x[1:L:2], y[0:L:2], y[1:L:2]
        h = _pair_k(x1, x2, sig) + _pair_k(y1, y2, sig) - _pair_k(x1, y2, sig) - _pair_k(x2, y1, sig)
        return float(h.mean())
    sxx, syy, sxy = _block_sum(x, x, sig, True), _block_sum(y, y, sig, True), _block_sum(x, y, sig, False)
    return float(_finish(sxx, syy, sxy, n, m, estimator))


def permutation_splits(n: int, m: int, permutations: int, seed: int = 0) -> np.ndarray:
    """(P, n + m) int64 permutations of the pooled rows used by ``mmd_test(..., seed=seed)``: row r puts
    pooled rows ``perm[r, :n]`` in x and ``perm[r, n:]`` in y (pooled = vstack(x, y))."""
    return _perm_chunk(_rngs(seed)[0], n + m, permutations)


def _rngs(seed: int):
    s_perm, s_boot = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(s_perm), np.random.default_rng(s_boot)


def _perm_chunk(rng, N: int, count: int) -> np.ndarray:
    out = np.empty((count, N), dtype=np.int64)
    for r in range(count):  # one rng.permutation per row: the stream does not depend on the chunk size
        out[r] = rng.permutation(N)
    return out


def _finish(sxx, syy, sxy, n, m, estimator, c2x=None, c2y=None):
    """MMD^2 from full within sums (diagonal included, K_kk = 1) and the cross sum.

    Unbiased: within terms average over pairs of DISTINCT samples: (c K c^T - sum c^2) / (n^2 - sum c^2)
    for count vectors c; for 0/1 indicators sum c^2 = n, which is exactly the U-statistic 1 / (n (n - 1)).
    """
    if estimator == "biased":
        return sxx / n**2 + syy / m**2 - 2.0 * sxy / (n * m)
    c2x = n if c2x is None else c2x
    c2y = m if c2y is None else c2y
    with np.errstate(divide="ignore", invalid="ignore"):  # a resample of one distinct row has no pairs: NaN
        return (sxx - c2x) / (n * n - c2x) + (syy - c2y) / (m * m - c2y) - 2.0 * sxy / (n * m)


def _linear_stats(K, xs, ys):
    """Batched linear-time MMD^2 for position arrays xs (c, n), ys (c, m) into K."""
    L = min(xs.shape[1], ys.shape[1]) // 2 * 2
    x1, x2, y1, y2 = xs[:, 0:L:2], xs[:, 1:L:2], ys[:, 0:L:2], ys[:, 1:L:2]
    return (K[x1, x2] + K[y1, y2] - K[x1, y2] - K[x2, y1]).mean(axis=1)


def _perm_stats(K, n, chunks, estimator) -> np.ndarray:
    """Batched MMD^2 over chunks of permutations (c, N). With A the 0/1 x-indicator (c, N), one matmul
    gives Q = A K A^T (row-wise); then Sxy = A.r - Q and Syy = T - 2 A.r + Q (r = K 1, T = 1^T K 1)."""
    N = K.shape[0]
    rowsum, total = K.sum(axis=1), float(K.sum())
    out = []
    for p in chunks:
        if estimator == "linear":
            out.append(_linear_stats(K, p[:, :n], p[:, n:]))
            continue
        A = np.zeros((p.shape[0], N))
        np.put_along_axis(A, p[:, :n], 1.0, axis=1)
        q = np.einsum("ij,ij->i", A @ K, A)
        xr = A @ rowsum
        out.append(_finish(q, total - 2.0 * xr + q, xr - q, n, N - n, estimator))
    return np.concatenate(out) if out else np.empty(0)


def _chunk_sizes(total: int, N: int):
    step = max(1, _BLOCK_ELEMS // N)
    return [min(step, total - i) for i in range(0, total, step)]


def permuted_mmd2(K: np.ndarray, n: int, perms: np.ndarray, estimator: str = "unbiased") -> np.ndarray:
    """(P,) MMD^2 for each permuted split ``perms`` (P, N) of the pooled kernel K (N, N), batched in chunks."""
    _check_estimator(estimator)
    sizes = _chunk_sizes(perms.shape[0], K.shape[0])
    return _perm_stats(K, n, np.split(perms, np.cumsum(sizes)[:-1]), estimator)


def _bootstrap_stats(K, n, B, rng, estimator) -> np.ndarray:
    """(B,) MMD^2 on resamples (with replacement) of the x rows and of the y rows, batched via count
    vectors cx (c, n), cy (c, m): cx Kxx cx^T and cx Kxy cy^T from U = cx K[:n], cy Kyy cy^T from cy K[n:].
    Unbiased: pairs of the same original row (duplicates) are left out, see :func:`_finish`."""
    N = K.shape[0]
    m = N - n
    out = []
    for c in _chunk_sizes(B, N):
        ix, iy = rng.integers(0, n, (c, n)), rng.integers(0, m, (c, m))
        if estimator == "linear":
            out.append(_linear_stats(K, ix, n + iy))
            continue
        cx = np.bincount((ix + (np.arange(c) * n)[:, None]).ravel(), minlength=c * n).reshape(c, n) * 1.0
        cy = np.bincount((iy + (np.arange(c) * m)[:, None]).ravel(), minlength=c * m).reshape(c, m) * 1.0
        U, V = cx @ K[:n], cy @ K[n:]
        sxx, sxy = np.einsum("ij,ij->i", U[:, :n], cx), np.einsum("ij,ij->i", U[:, n:], cy)
        syy = np.einsum("ij,ij->i", V[:, n:], cy)
        c2x, c2y = np.einsum("ij,ij->i", cx, cx), np.einsum("ij,ij->i", cy, cy)
        out.append(_finish(sxx, syy, sxy, n, m, estimator, c2x, c2y))
    return np.concatenate(out)


def mmd_test(x, y, *, bandwidth="median", permutations: int = 1000, bootstrap: int = 1000, seed: int = 0,
             ci: float = 0.95, estimator: str = "unbiased") -> MMDResult:
    """Permutation test and percentile bootstrap CI for MMD^2 between x (n, d) and y (m, d).

    p = (1 + #{permuted stat >= observed - 1e-12}) / (1 + P). All statistics come from ONE pooled kernel matrix
    (N = n + m, N^2 * 8 bytes: 128 MB for N = 4000, 2 GB for N = 16000) in batched matmuls. The bandwidth is
    fixed from the pooled sample (permutation invariant). Percentile CI from resampling x and y rows
    separately with replacement; for the unbiased estimator, pairs of copies of the same row are left out
    (counting them as k = 1 would centre the bootstrap near the biased value and, when MMD^2 is O(1/n),
    push the whole interval above the estimate).
    """
    x, y = _check_pair(x, y, estimator)
    for name, v in (("permutations", permutations), ("bootstrap", bootstrap)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} must be a non-negative int, got {v!r}")
    if not (0.0 < ci < 1.0):
        raise ValueError(f"ci must be in (0, 1), got {ci!r}")
    n, m = x.shape[0], y.shape[0]
    z = np.vstack([x, y])
    sigma, sig = _sigmas(bandwidth, z)
    K = pooled_kernel(z, sig)
    obs = float(permuted_mmd2(K, n, np.arange(n + m)[None, :], estimator)[0])
    rng_perm, rng_boot = _rngs(seed)
    p_value = ci_low = ci_high = float("nan")
    if permutations:
        chunks = (_perm_chunk(rng_perm, n + m, c) for c in _chunk_sizes(permutations, n + m))
        null = _perm_stats(K, n, chunks, estimator)
        ties = null >= obs - _TIE_TOL * max(1.0, abs(obs))  # equal splits may differ by BLAS rounding only
        p_value = float((1 + np.count_nonzero(ties)) / (1 + permutations))
    if bootstrap:
        boot = _bootstrap_stats(K, n, bootstrap, rng_boot, estimator)
        ci_low, ci_high = (float(v) for v in np.nanquantile(boot, [(1 - ci) / 2, (1 + ci) / 2]))
    return MMDResult(obs, p_value, ci_low, ci_high, sigma, int(permutations), n, m, estimator,
                     int(bootstrap), float(ci))
