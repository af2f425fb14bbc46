"""Benchmark: MMD^2 permutation test, batched from one pooled kernel vs naive per-permutation recomputation.

Run from the repository root:

    python bench/mmd.py [--quick] [--perms 1000] [--naive-perms N] [--json OUT]

Data: x, y = 2 x n embeddings of dimension 256, standard Gaussian (seed 0), y shifted by +0.02 in every
dimension (a small shift: p ~ 0.1 at n = 500, p = 1/1001 from n = 2000). n in {500, 2000, 8000}
(--quick skips 8000).

Methods (the same permutations: both use ``permutation_splits(n, n, P, seed=0)``, the stream mmd_test uses):
  batched: ``mmd_test(x, y, permutations=P, bootstrap=0)``: median sigma, ONE pooled kernel K, permutation
      statistics as chunked matmuls against K. Also timed with bootstrap=1000 (perm + bootstrap CI).
  naive:   for each permutation, ``mmd2(z[p[:n]], z[p[n:]], bandwidth=sigma)``, recomputing the three kernel
      blocks (BLAS Gram trick, blockwise) and the U-statistic. Only the first k permutations are timed
      (k = 1000 / 200 / 20 for n = 500 / 2000 / 8000 unless --naive-perms) and the time is extrapolated
      linearly to P; the table says so.
Agreement: the batched statistics of the same k permutations (``permuted_mmd2`` on mmd_test's K) against the
naive ones (max abs diff), and the p-value over those k permutations from both. Exits non-zero on mismatch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import neuroadda.selection.mmd as M  # noqa: E402
from neuroadda.selection import mmd2, mmd_test, pooled_kernel  # noqa: E402

DIM, SHIFT, TOL = 256, 0.02, 1e-10
NAIVE_DEFAULT = {500: 1000, 2000: 200, 8000: 20}


def timed(f, *a, **k):
    t = time.perf_counter()
    r = f(*a, **k)
    return time.perf_counter() - t, r


def run_case(n: int, perms: int, naive_perms: int, repeats: int) -> list[dict]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, DIM))
    y = rng.normal(size=(n, DIM)) + SHIFT
    z = np.vstack([x, y])
    times = []
    for _ in range(repeats):
        t, res = timed(mmd_test, x, y, permutations=perms, bootstrap=0, seed=0)
        times.append(t)
    t_batched = min(times)
    t_boot, res_boot = timed(mmd_test, x, y, permutations=perms, bootstrap=1000, seed=0)
    assert res_boot.mmd2 == res.mmd2 and res_boot.p_value == res.p_value

    k = min(naive_perms, perms)
    splits = M.permutation_splits(n, n, k, seed=0)  # = the first k permutations of mmd_test(seed=0)
    t0 = time.perf_counter()
    obs_naive = mmd2(x, y, bandwidth=res.bandwidth)
    naive = np.array([mmd2(z[p[:n]], z[p[n:]], bandwidth=res.bandwidth) for p in splits])
    t_naive_k = time.perf_counter() - t0
    t_naive = t_naive_k * perms / k

    batched_k = M.permuted_mmd2(pooled_kernel(z, res.bandwidth), n, splits)
    diff = float(np.max(np.abs(batched_k - naive)))
    p_naive_k = (1 + int(np.sum(naive >= obs_naive - 1e-12))) / (1 + k)
    p_batched_k = mmd_test(x, y, permutations=k, bootstrap=0, seed=0).p_value
    ok = diff < TOL and abs(obs_naive - res.mmd2) < TOL and p_naive_k == p_batched_k
    common = dict(n=n, perms=perms, naive_perms_timed=k, sigma=res.bandwidth, mmd2_batched=res.mmd2,
                  mmd2_naive=obs_naive, p_batched=res.p_value, p_batched_k=p_batched_k, p_naive_k=p_naive_k,
                  max_abs_diff_k=diff, ok=ok)
    return [
        dict(common, method="batched mmd_test", seconds=t_batched, extrapolated=False),
        dict(common, method="batched mmd_test + 1000 bootstrap", seconds=t_boot, extrapolated=False,
             ci=[res_boot.ci_low, res_boot.ci_high]),
        dict(common, method="naive recompute" + (f" ({k} timed, x{perms / k:g})" if k < perms else ""),
             seconds=t_naive, extrapolated=k < perms),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip n = 8000")
    ap.add_argument("--perms", type=int, default=1000)
    ap.add_argument("--naive-perms", type=int, default=None, help="naive permutations timed (all sizes)")
    ap.add_argument("--repeats", type=int, default=3, help="best-of for the batched test (1 for n = 8000)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    rows = []
    for n in (500, 2000) if args.quick else (500, 2000, 8000):
        rows += run_case(n, args.perms, args.naive_perms or NAIVE_DEFAULT[n], 1 if n >= 8000 else args.repeats)
        print(f"done n={n}", file=sys.stderr, flush=True)

    print(f"\n{args.perms}-permutation MMD^2 test, 2 x n x {DIM} Gaussian embeddings, shift {SHIFT}/dim\n")
    print("| n per side | method | seconds | time / batched time | MMD^2 | p (P perms) | "
          "p over timed naive perms: batched / naive | max abs diff |")
    print("|---:|---|---:|---:|---:|---:|---|---:|")
    for r in rows:
        base = next(b["seconds"] for b in rows if b["n"] == r["n"] and b["method"] == "batched mmd_test")
        naive = r["method"].startswith("naive")
        mmd = r["mmd2_naive"] if naive else r["mmd2_batched"]
        p = "-" if naive else f"{r['p_batched']:.4f}"
        print(f"| {r['n']} | {r['method']} | {r['seconds']:.3f} | {r['seconds'] / base:.1f} | {mmd:.6e} | {p} | "
              f"{r['p_batched_k']:.4f} / {r['p_naive_k']:.4f} (k={r['naive_perms_timed']}) | "
              f"{r['max_abs_diff_k']:.1e} |")
    bad = [r for r in rows if not r["ok"]]
    if args.json:
        meta = dict(python=platform.python_version(), numpy=np.__version__, machine=platform.machine(),
                    cpus=os.cpu_count())
        args.json.write_text(json.dumps(dict(meta=meta, rows=rows), indent=2))
    if bad:
        print(f"MISMATCH in {len(bad)} rows", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
