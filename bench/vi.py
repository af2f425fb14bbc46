"""Benchmark: neuroadda VI vs skimage.metrics.variation_of_information vs waterz.evaluate.

Run from the repository root:

    python bench/vi.py [--quick] [--repeats 3] [--json OUT]

Cases
  neuroproof_250: gt = ``labels`` of datasets/data/drosophila_medulla_fibsem_neuroproof/
      training_sample2.h5 (250^3, uint64); seg = the gt made imperfect (seeded): 20 % of the bodies
      merged into another random body, the 30 largest bodies split at z = 125, 3000 random
      cubes (side 2-6) with new ids (false fragments), and half of the gt boundary voxels set to
      seg 0 (an ordinary seg label).
  neuroproof_250_ids_2^63: the same seg and gt with every non-zero id mapped (one-to-one, seeded) to a
      random uint64 in [2^63 - 2^62, 2^63 + 2^62): ids near 2^63 spread over 63 bits, as a lab's
      64-bit body ids are (0 stays 0).  A relabelling, so the VI must equal neuroproof_250's.
      skimage cannot take ids >= 2^63 (OverflowError) and is reported as failing.
  neuroproof_250_ids+2^63: the same seg and gt with 2^63 added to every non-zero id.
  synthetic_512 (skipped by --quick): gt = a 32^3 grid of random ids in [1, 20000] upsampled
      to 512^3 blocks of 16^3, with the first x plane of each block set to 0 (ignored);
      seg = gt shifted by (3, 5, 7) voxels, 10 % of the ids merged, plus 20000 random cubes.

Each method is timed best-of-N on the same arrays; every result must match neuroadda to 1e-9.  The
summary line per case gives the faster of skimage and waterz divided by neuroadda's time.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from neuroadda.metrics import evaluate_segmentation, variation_of_information  # noqa: E402

NEUROPROOF = ROOT / "datasets/data/drosophila_medulla_fibsem_neuroproof/training_sample2.h5"
TOL = 1e-9


def add_cubes(seg: np.ndarray, rng: np.random.Generator, n: int, first_id: int) -> None:
    for k in range(n):
        side = int(rng.integers(2, 7))
        z, y, x = (int(rng.integers(0, d - side)) for d in seg.shape)
        seg[z:z + side, y:y + side, x:x + side] = first_id + k


def merge_ids(labels: np.ndarray, rng: np.random.Generator, frac: float) -> np.ndarray:
    """Map a random ``frac`` of the ids onto other random ids (false merges)."""
    ids, inv = np.unique(labels, return_inverse=True)
    target = ids.copy()
    sel = rng.choice(ids.size, int(ids.size * frac), replace=False)
    target[sel] = ids[rng.integers(0, ids.size, sel.size)]
    return target[inv].reshape(labels.shape)


def neuroproof_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    import h5py

    with h5py.File(NEUROPROOF, "r") as f:
        gt = f["labels"][:]
    seg = merge_ids(gt, rng, 0.2)
    ids, counts = np.unique(gt, return_counts=True)
    largest = ids[np.argsort(counts)[-30:]]
    lower = np.zeros(gt.shape, bool)
    lower[gt.shape[0] // 2:] = True
    seg[np.isin(gt, largest) & lower] += np.uint64(10**6)
    add_cubes(seg, rng, 3000, 2 * 10**6)
    boundary = np.zeros(gt.shape, bool)
    for ax in range(3):
        cut = [slice(None)] * 3
        cut[ax] = slice(1, None)
        boundary[tuple(cut)] |= np.diff(gt, axis=ax) != 0
    seg[boundary & (rng.random(gt.shape) < 0.5)] = 0
    return seg, gt


def ids_near_2_63(rng: np.random.Generator, seg: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """seg and gt with every non-zero id mapped one-to-one to a random uint64 in [2^63 - 2^62, 2^63 + 2^62)."""
    ids = np.unique(np.concatenate([np.unique(seg), np.unique(gt)]))
    ids = ids[ids != 0]
    while True:
        new = np.uint64(2**63 - 2**62) + rng.integers(0, 2**63, size=ids.size, dtype=np.uint64)
        if np.unique(new).size == ids.size:
            break
    lut = np.concatenate([[np.uint64(0)], new])
    relabel = lambda a: lut[np.searchsorted(ids, a) + 1].reshape(a.shape) * (a != 0)  # noqa: E731
    return relabel(seg), relabel(gt)


def ids_plus_2_63(seg: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    big = np.uint64(2**63)
    return np.where(seg != 0, seg + big, seg), np.where(gt != 0, gt + big, gt)


def synthetic_case(rng: np.random.Generator, size: int = 512, block: int = 16) -> tuple[np.ndarray, np.ndarray]:
    n = size // block
    coarse = rng.integers(1, 20_000, size=(n, n, n), dtype=np.uint64)
    gt = coarse.repeat(block, 0).repeat(block, 1).repeat(block, 2)
    seg = merge_ids(np.roll(gt, (3, 5, 7), axis=(0, 1, 2)), rng, 0.1)
    gt.reshape(n, block, n, block, n, block)[..., 0] = 0  # "membrane" planes: ignored
    add_cubes(seg, rng, 20_000, 10**6)
    return np.ascontiguousarray(seg), np.ascontiguousarray(gt)


def quiet_call(fn, *args):
    """Call ``fn`` with the process stdout (fd 1) sent to /dev/null: waterz prints from C++."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        return fn(*args)
    finally:
        ctypes.CDLL(None).fflush(None)
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def run_neuroadda(seg, gt):
    return variation_of_information(seg, gt)


def run_evaluate(seg, gt):
    out = evaluate_segmentation(seg, gt)
    return out["vi_split"], out["vi_merge"]


def run_skimage(seg, gt):
    import skimage.metrics

    split, merge = skimage.metrics.variation_of_information(gt, seg, ignore_labels=[0])
    return float(split), float(merge)


def run_waterz(seg, gt):
    import waterz

    out = quiet_call(waterz.evaluate, seg, gt)
    return out["voi_split"], out["voi_merge"]


METHODS = [
    ("neuroadda", run_neuroadda),
    ("neuroadda evaluate_segmentation (VI+ARE)", run_evaluate),
    ("skimage", run_skimage),
    ("waterz", run_waterz),
]


def time_best(fn, seg, gt, repeats: int):
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn(seg, gt)
        best = min(best, time.perf_counter() - t0)
    return best, result


def bench_case(name: str, seg: np.ndarray, gt: np.ndarray, repeats: int) -> list[dict]:
    rows = []
    for method, fn in METHODS:
        row = {"case": name, "shape": list(gt.shape), "method": method}
        try:
            seconds, (split, merge) = time_best(fn, seg, gt, repeats)
        except (OverflowError, ValueError, MemoryError) as e:  # skimage cannot index ids >= 2**63
            rows.append({**row, "seconds": float("nan"), "split": float("nan"), "merge": float("nan"),
                         "error": f"{type(e).__name__}: {e}"})
            print(f"  {method}: fails ({type(e).__name__})", file=sys.stderr, flush=True)
            continue
        rows.append({**row, "seconds": seconds, "split": float(split), "merge": float(merge)})
        print(f"  {method}: {seconds:.3f} s", file=sys.stderr, flush=True)
    ref = rows[0]
    for r in rows:
        r["time_vs_neuroadda"] = r["seconds"] / ref["seconds"]
        r["max_abs_diff"] = max(abs(r["split"] - ref["split"]), abs(r["merge"] - ref["merge"]))
    return rows


def speedup(rows: list[dict], case: str) -> tuple[float, str]:
    """(time of the faster of skimage and waterz) / (neuroadda time) on ``case``, and which one that was."""
    others = [r for r in rows if r["case"] == case and r["method"] in ("skimage", "waterz") and "error" not in r]
    best = min(others, key=lambda r: r["seconds"])
    return best["time_vs_neuroadda"], best["method"]


def print_table(rows: list[dict]) -> None:
    print("| case | method | seconds | time / neuroadda time | split (bits) | merge (bits) "
          "| max abs diff vs neuroadda |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['case']} {'x'.join(map(str, r['shape']))} | {r['method']} | fails | - | - | - | "
                  f"{r['error'].split(':')[0]} |")
            continue
        print(f"| {r['case']} {'x'.join(map(str, r['shape']))} | {r['method']} | {r['seconds']:.3f} | "
              f"{r['time_vs_neuroadda']:.2f} | {r['split']:.6f} | {r['merge']:.6f} | {r['max_abs_diff']:.1e} |")
    print()
    for case in dict.fromkeys(r["case"] for r in rows):
        ratio, method = speedup(rows, case)
        print(f"{case}: neuroadda {ratio:.1f}x faster than the faster of skimage and waterz ({method})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="skip the 512^3 synthetic case")
    ap.add_argument("--repeats", type=int, default=3, help="best of N (default 3)")
    ap.add_argument("--json", type=Path, help="also write the rows and the environment as JSON")
    args = ap.parse_args(argv)

    cases = []
    if NEUROPROOF.exists():
        cases.append(("neuroproof_250", lambda: neuroproof_case(np.random.default_rng(0))))
        cases.append(("neuroproof_250_ids_2^63",
                      lambda: ids_near_2_63(np.random.default_rng(2), *neuroproof_case(np.random.default_rng(0)))))
        cases.append(("neuroproof_250_ids+2^63", lambda: ids_plus_2_63(*neuroproof_case(np.random.default_rng(0)))))
    else:
        print(f"skipping neuroproof case: {NEUROPROOF} not found", file=sys.stderr)
    if not args.quick:
        cases.append(("synthetic_512", lambda: synthetic_case(np.random.default_rng(1))))

    rows = []
    for name, make in cases:
        seg, gt = make()
        print(f"{name}: {gt.shape} {gt.dtype}, {np.count_nonzero(gt == 0)} ignored gt voxels", file=sys.stderr)
        rows += bench_case(name, seg, gt, args.repeats)
        del seg, gt
    print_table(rows)

    if args.json:
        import skimage
        import waterz

        env = {"python": platform.python_version(), "numpy": np.__version__, "skimage": skimage.__version__,
               "waterz": getattr(waterz, "__version__", "?"), "cpu_count": os.cpu_count(),
               "machine": platform.machine(), "repeats": args.repeats}
        args.json.write_text(json.dumps({"env": env, "rows": rows}, indent=2))
    bad = [r for r in rows if "error" not in r and not r["max_abs_diff"] <= TOL]
    base = {r["method"]: r for r in rows if r["case"] == "neuroproof_250"}
    bad += [r for r in rows if r["case"].startswith("neuroproof_250_") and "error" not in r  # relabellings
            and max(abs(r["split"] - base[r["method"]]["split"]), abs(r["merge"] - base[r["method"]]["merge"])) > TOL]
    if bad:
        print(f"MISMATCH > {TOL}: {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
