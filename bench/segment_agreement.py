"""Block-wise vs whole-volume segmentation on real affinities: VI between the two (bits), per fragment method,
block size and context, in one run.

Affinities: a backbone (default the shipped demo ``datasets/backbones/gala-train.pt``; ``--checkpoint`` another,
e.g. one from ``neuroadda pretrain --source gala-train --max-steps 2000``) predicts the whole ``neuroproof`` crop
(250^3, FIB-SEM). For each fragment method: whole-volume ``neuroadda segment --fragments M`` (one process, waterz
on the whole array) and block-wise ``neuroadda segment --fragments M --block-size B B B --context C`` with 2
local workers, at the threshold the backbone recorded. The VI is computed between the two segmentations with
nothing ignored (split + merge, bits; 0 = the same partition); each is also scored against the neuroproof
ground truth (label 0 ignored). A reference row per method: the whole-volume result from the same prediction
stored as uint8 instead of float32 — how far a change that keeps the prediction's information moves it.

    python bench/segment_agreement.py                      # both methods, blocks 64 and 128 (~15 min on 2 cores)
    python bench/segment_agreement.py --methods ascent --blocks 64 --contexts 0 --json out.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr

from neuroadda.data.volume import open_volume
from neuroadda.metrics.vi import variation_of_information
from neuroadda.paths import resource_root
from neuroadda.workflows.predict import predict_volume
from neuroadda.workflows.segment import segment_zarr
from neuroadda.workflows.segment_blockwise import segment_blockwise

CONTEXTS = {"ascent": [0, 32], "watershed": [32, 48]}  # ascent grows a block's context itself where it must


def read_seg(path: Path) -> np.ndarray:
    node = zarr.open(str(path), mode="r")
    arr = node if isinstance(node, zarr.Array) else node["0"]  # plain zarr array or OME-Zarr group (level 0)
    return np.asarray(arr[...])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=str(resource_root() / "datasets" / "backbones" / "gala-train.pt"))
    ap.add_argument("--target", default="neuroproof")
    ap.add_argument("--methods", nargs="+", default=["ascent", "watershed"], choices=["ascent", "watershed"])
    ap.add_argument("--blocks", nargs="+", type=int, default=[64, 128])
    ap.add_argument("--contexts", nargs="+", type=int, default=None,
                    help="contexts to try (default: ascent 0 and 32, watershed 32 and 48)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    vol = open_volume(args.target, require_labels=True)
    gt = np.asarray(vol.labels.read(tuple(slice(0, n) for n in vol.shape)))
    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        affs = predict_volume(args.checkpoint, args.target, d / "affs.zarr", progress=False)
        src = zarr.open_array(str(affs), mode="r")
        q = zarr.create_array(store=str(d / "affs_u8.zarr"), shape=src.shape, chunks=src.chunks, dtype=np.uint8,
                              attributes=dict(src.attrs))
        q[...] = np.rint(np.asarray(src[...]) * 255).astype(np.uint8)
        for method in args.methods:
            t0 = time.perf_counter()
            _, threshold = segment_zarr(affs, d / f"whole_{method}.zarr", fragments=method)
            whole_s = time.perf_counter() - t0
            whole = read_seg(d / f"whole_{method}.zarr")
            vs, vm = variation_of_information(whole, gt)
            rows.append({"method": method, "case": "whole volume", "seconds": whole_s, "vi_vs_whole": 0.0,
                         "vi_vs_gt": vs + vm})
            segment_zarr(d / "affs_u8.zarr", d / f"whole_{method}_u8.zarr", fragments=method)
            u8 = read_seg(d / f"whole_{method}_u8.zarr")
            s, m = variation_of_information(u8, whole, ignore_gt=())
            gs, gm = variation_of_information(u8, gt)
            rows.append({"method": method, "case": "whole volume, affinities stored as uint8", "seconds": None,
                         "vi_vs_whole": s + m, "vi_vs_gt": gs + gm})
            print(f"{method}: whole {whole_s:.1f} s, VI vs gt {vs + vm:.3f}; uint8 copy: VI vs whole {s + m:.4f}",
                  flush=True)
            for b in args.blocks:
                for c in args.contexts if args.contexts is not None else CONTEXTS[method]:
                    out = d / f"{method}_b{b}_c{c}.zarr"
                    t0 = time.perf_counter()
                    summ = segment_blockwise(affs, out, block_size=(b, b, b), threshold=threshold, context=c,
                                             workers=args.workers, fragments=method, progress=False)
                    sec = time.perf_counter() - t0
                    seg = read_seg(out)
                    s, m = variation_of_information(seg, whole, ignore_gt=())
                    gs, gm = variation_of_information(seg, gt)
                    ctx = summ["contexts"]
                    rows.append({"method": method, "case": f"block-wise {b}^3, context {c}", "seconds": sec,
                                 "vi_vs_whole": s + m, "split_vs_whole": s, "merge_vs_whole": m, "vi_vs_gt": gs + gm,
                                 "contexts_read": [ctx["min"], ctx["max"]], "pieces": summ["graph"]["pieces"],
                                 "fragments": summ["graph"]["fragments"]})
                    print(f"{method} {rows[-1]['case']}: VI vs whole {s + m:.4f} (split {s:.4f}, merge {m:.4f}), "
                          f"VI vs gt {gs + gm:.3f}, {sec:.1f} s, contexts read {ctx['min']}-{ctx['max']}", flush=True)
    print(f"\n{args.target}, affinities of {Path(args.checkpoint).name}, threshold {threshold:.2f}, "
          f"{args.workers} workers\n")
    print("| fragments | segmentation | VI vs whole-volume (bits) | VI vs ground truth (bits) | contexts read "
          "| seconds |")
    print("|---|---|---:|---:|---|---:|")
    for r in rows:
        ctx = "–" if "contexts_read" not in r else f"{r['contexts_read'][0]}–{r['contexts_read'][1]}"
        sec = "–" if r["seconds"] is None else f"{r['seconds']:.1f}"
        print(f"| {r['method']} | {r['case']} | {r['vi_vs_whole']:.4f} | {r['vi_vs_gt']:.3f} | {ctx} | {sec} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"checkpoint": args.checkpoint, "threshold": threshold,
                                               "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
