"""Block-wise vs whole-volume segmentation on real affinities: VI between the two (bits), per block size and
context, in one run.

Affinities: the shipped demo backbone ``datasets/backbones/gala-train.pt`` predicts the whole ``neuroproof``
crop (250^3, FIB-SEM). Whole: ``neuroadda segment`` (one process, waterz on the whole array). Block-wise:
``neuroadda segment --block-size B B B --context C`` with 2 local workers, at the same threshold. The VI is
computed between the two segmentations with nothing ignored (split + merge, bits; 0 = the same partition).
Also reported: each segmentation's VI against the neuroproof ground truth (label 0 ignored).

    python bench/segment_agreement.py                            # blocks 64 and 128, contexts 16 32 48 (~10 min)
    python bench/segment_agreement.py --blocks 128 --contexts 48 --json out.json
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


def read_seg(path: Path) -> np.ndarray:
    node = zarr.open(str(path), mode="r")
    arr = node if isinstance(node, zarr.Array) else node["0"]  # plain zarr array or OME-Zarr group (level 0)
    return np.asarray(arr[...])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=str(resource_root() / "datasets" / "backbones" / "gala-train.pt"))
    ap.add_argument("--target", default="neuroproof")
    ap.add_argument("--blocks", nargs="+", type=int, default=[64, 128])
    ap.add_argument("--contexts", nargs="+", type=int, default=[16, 32, 48])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    vol = open_volume(args.target, require_labels=True)
    gt = np.asarray(vol.labels.read(tuple(slice(0, n) for n in vol.shape)))
    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        affs = predict_volume(args.checkpoint, args.target, d / "affs.zarr", progress=False)
        t0 = time.perf_counter()
        _, threshold = segment_zarr(affs, d / "whole.zarr")
        whole_s = time.perf_counter() - t0
        whole = read_seg(d / "whole.zarr")
        vs, vm = variation_of_information(whole, gt)
        rows.append({"case": "whole volume", "seconds": whole_s, "vi_vs_whole": 0.0, "vi_vs_gt": vs + vm})
        for b in args.blocks:
            for c in args.contexts:
                out = d / f"b{b}_c{c}.zarr"
                t0 = time.perf_counter()
                segment_blockwise(affs, out, block_size=(b, b, b), threshold=threshold, context=c,
                                  workers=args.workers, progress=False)
                sec = time.perf_counter() - t0
                seg = read_seg(out)
                s, m = variation_of_information(seg, whole, ignore_gt=())
                gs, gm = variation_of_information(seg, gt)
                rows.append({"case": f"block-wise {b}^3, context {c}", "seconds": sec, "vi_vs_whole": s + m,
                             "split_vs_whole": s, "merge_vs_whole": m, "vi_vs_gt": gs + gm})
                print(f"{rows[-1]['case']}: VI vs whole {s + m:.4f} (split {s:.4f}, merge {m:.4f}), "
                      f"VI vs gt {gs + gm:.3f}, {sec:.1f} s", flush=True)
    print(f"\n{args.target}, affinities of {Path(args.checkpoint).name}, threshold {threshold:.2f}, "
          f"{args.workers} workers\n")
    print("| segmentation | VI vs whole-volume (bits) | VI vs ground truth (bits) | seconds |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['case']} | {r['vi_vs_whole']:.4f} | {r['vi_vs_gt']:.3f} | {r['seconds']:.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"threshold": threshold, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
