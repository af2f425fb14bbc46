"""Fragment methods side by side: the distance-transform watershed and the ascent fragments (which block-wise
segmentation reproduces exactly), on the same affinity maps, in one run.

Each map is a backbone predicting a labelled target (cached under --dir). For each method: fragments (count,
seconds), then waterz mean-affinity agglomeration at every threshold of --thresholds and at the threshold the
backbone recorded; VI against the ground truth (bits, label 0 ignored, 2-D labels scored per slice). The maps
are the replicates: the paired difference ascent - watershed per map, its mean and a 95 % bootstrap interval,
at the recorded threshold and at each method's best threshold.

    python bench/fragments.py                                   # the default maps (~15 min on 2 cores)
    python bench/fragments.py --maps gala-train:neuroproof --json out.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import zarr

from neuroadda.data.volume import open_labels
from neuroadda.metrics.vi import evaluate_segmentation
from neuroadda.paths import resource_root
from neuroadda.segmentation.agglomerate import agglomerate, make_fragments
from neuroadda.vocab import TWO_D
from neuroadda.workflows.predict import predict_volume

METHODS = ("watershed", "ascent")
DEFAULT_MAPS = ["gala-train:neuroproof", "gala-train:gala-test", "vnc-gerhard2013:neuroproof",
                "isbi2012:vnc-gerhard2013", "vnc-gerhard2013:isbi2012", "isbi2012:gala-test"]


def checkpoint_path(name: str, extra: dict) -> Path:
    if name in extra:
        return Path(extra[name])
    return resource_root() / "datasets" / "backbones" / f"{name}.pt"


def bootstrap_ci(x, n=10000, seed=0) -> tuple[float, float]:
    x = np.asarray(x, float)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), (n, len(x)))].mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def score_map(affs_path: Path, target: str, thresholds) -> dict:
    arr = zarr.open_array(str(affs_path), mode="r")
    affs = np.asarray(arr[...])
    gt_vol = open_labels(target, resample_to=tuple(arr.attrs["voxel_size_nm"]))
    gt = np.asarray(gt_vol.labels.read((slice(None),) * 3))
    kind = gt_vol.labels_kind
    per_slice = kind == TWO_D
    recorded = float(arr.attrs["threshold"])
    ts = sorted(set(float(t) for t in thresholds) | {recorded})
    out = {"recorded_threshold": recorded, "labels_kind": kind, "shape": list(gt.shape)}
    for method in METHODS:
        t0 = time.perf_counter()
        frag = make_fragments(affs, method, per_slice=per_slice)
        sec = time.perf_counter() - t0
        vis = {t: evaluate_segmentation(seg, gt, labels_kind=kind)["vi"]
               for t, seg in agglomerate(affs, ts, fragments=frag)}
        best = min(vis, key=lambda t: (vis[t], t))
        out[method] = {"fragments": int(len(np.unique(frag))), "seconds": sec,
                       "vi": {str(t): v for t, v in vis.items()}, "vi_recorded": vis[recorded],
                       "best_threshold": best, "vi_best": vis[best]}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--maps", nargs="+", default=DEFAULT_MAPS, help="BACKBONE:TARGET (backbone: shipped name or "
                    "NAME=PATH given with --checkpoint)")
    ap.add_argument("--checkpoint", nargs="*", default=[], metavar="NAME=PATH", help="extra backbones by path")
    ap.add_argument("--thresholds", nargs="+", type=float, default=[0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    ap.add_argument("--dir", default="/tmp/neuroadda_bench_fragments", help="cached predictions")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    extra = dict(c.split("=", 1) for c in args.checkpoint)
    d = Path(args.dir)
    d.mkdir(parents=True, exist_ok=True)
    rows = []
    for m in args.maps:
        bb, target = m.split(":")
        affs = d / f"{bb}__{target}.zarr"
        if not affs.exists():
            predict_volume(checkpoint_path(bb, extra), target, affs, progress=False)
        r = {"map": m, **score_map(affs, target, args.thresholds)}
        rows.append(r)
        w, a = r["watershed"], r["ascent"]
        print(f"{m}: recorded t={r['recorded_threshold']:.2f}: watershed {w['vi_recorded']:.3f} ascent "
              f"{a['vi_recorded']:.3f}; best: watershed {w['vi_best']:.3f} (t={w['best_threshold']:.2f}) ascent "
              f"{a['vi_best']:.3f} (t={a['best_threshold']:.2f}); fragments {w['fragments']} / {a['fragments']}, "
              f"{w['seconds']:.1f} / {a['seconds']:.1f} s", flush=True)
    print("\n| map | labels | VI watershed / ascent at the recorded threshold | best VI watershed / ascent "
          "(threshold) | fragments | fragment seconds |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        w, a = r["watershed"], r["ascent"]
        print(f"| {r['map']} | {r['labels_kind']} | {w['vi_recorded']:.3f} / {a['vi_recorded']:.3f} "
              f"(t {r['recorded_threshold']:.2f}) | {w['vi_best']:.3f} ({w['best_threshold']:.2f}) / "
              f"{a['vi_best']:.3f} ({a['best_threshold']:.2f}) | {w['fragments']} / {a['fragments']} | "
              f"{w['seconds']:.1f} / {a['seconds']:.1f} |")
    summary = {}
    for key in ("vi_recorded", "vi_best"):
        diff = [r["ascent"][key] - r["watershed"][key] for r in rows]
        lo, hi = bootstrap_ci(diff)
        summary[key] = {"mean_diff": float(np.mean(diff)), "ci95": [lo, hi], "n_maps": len(diff)}
        verdict = "within noise" if lo <= 0 <= hi else ("ascent lower" if hi < 0 else "ascent higher")
        print(f"ascent - watershed, {key}: {np.mean(diff):+.3f} bits [{lo:+.3f}, {hi:+.3f}] over {len(diff)} maps "
              f"({verdict})")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
