"""Block-wise segmentation (``neuroadda segment --block-size``) of a 1024^3 uint8 affinity volume: peak RSS per
worker, and time per voxel against whole-volume waterz (``neuroadda.segmentation.segment``) at 512^3, in one run.

The affinities are synthetic and made block by block on disk (zarr, 64^3 chunks, uint8), never whole in memory:
labels are the cells of a grid of side ``--cell`` voxels bent by smooth sinusoidal displacements (an analytic
function of the global position), every voxel within one voxel of another cell is membrane, an affinity is
low (0.15) where either voxel of its pair is membrane and high (0.85) elsewhere, plus Gaussian noise (sd 0.1)
seeded by the block's grid position. The 512^3 volume is the corner of the 1024^3 one (same values).

    python bench/segment.py                      # 1024^3 block-wise + 512^3 whole and block-wise (~25 min, 2 cores)
    python bench/segment.py --size 256 --whole-size 128   # quick check
    python bench/segment.py --json out.json      # also write the rows as JSON
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import zarr

from neuroadda.workflows.scheduler import Cluster, run_stage

LOW, HIGH, NOISE = 0.15, 0.85, 0.10


def synthetic_labels(box, cell: int) -> np.ndarray:
    """uint64 cell ids of the global box (tuple of slices): a bent grid, an analytic function of position."""
    z, y, x = np.meshgrid(*[np.arange(s.start, s.stop, dtype=np.float32) for s in box], indexing="ij", sparse=True)
    amp, wl = cell * 0.35, cell * 3.1
    zz = (z + amp * np.sin(y / wl) * np.cos(x / (1.3 * wl))) // cell
    yy = (y + amp * np.sin(x / (0.9 * wl) + z / wl)) // cell
    xx = (x + amp * np.cos(z / (1.1 * wl) - y / (1.7 * wl))) // cell
    return ((zz.astype(np.int64) + 8) * 2**40 + (yy.astype(np.int64) + 8) * 2**20 + (xx.astype(np.int64) + 8))


class MakeAffinities:
    """One block of the synthetic uint8 affinities (3, z, y, x) (see the module docstring)."""

    def __init__(self, path: str, size: int, cell: int):
        self.path, self.size, self.cell = path, size, cell

    def __call__(self, info) -> None:
        box = info.box
        grown = tuple(slice(max(0, s.start - 2), min(self.size, s.stop + 1)) for s in box)
        lab = synthetic_labels(grown, self.cell)
        membrane = np.zeros(lab.shape, bool)
        for c in range(3):
            diff = np.diff(lab, axis=c) != 0
            lo, hi = [slice(None)] * 3, [slice(None)] * 3
            lo[c], hi[c] = slice(None, -1), slice(1, None)
            membrane[tuple(lo)] |= diff
            membrane[tuple(hi)] |= diff
        core = tuple(slice(s.start - g.start, s.stop - g.start) for s, g in zip(box, grown))
        rng = np.random.default_rng([7, *info.grid_pos])
        affs = np.empty((3,) + info.box_shape, np.uint8)
        for c in range(3):
            prev = [slice(a.start - 1, a.stop - 1) if d == c else a for d, a in enumerate(core)]
            if box[c].start == 0:  # no lower neighbour at the volume's face
                prev[c] = slice(core[c].start, core[c].stop)
            low = membrane[core] | membrane[tuple(prev)]
            a = np.where(low, LOW, HIGH) + rng.normal(0, NOISE, low.shape)
            affs[c] = np.clip(np.rint(a * 255), 0, 255).astype(np.uint8)
        zarr.open_array(self.path, mode="r+")[(slice(None),) + box] = affs


def make_volume(path: Path, size: int, cell: int, workers: int) -> None:
    if path.exists() and zarr.open_array(str(path), mode="r").attrs.get("made") == [size, cell]:
        return
    shutil.rmtree(path, ignore_errors=True)
    arr = zarr.create_array(store=str(path), shape=(3, size, size, size), chunks=(3, 64, 64, 64), dtype=np.uint8,
                            fill_value=0, zarr_format=3)
    arr.attrs.update({"threshold": 0.5, "voxel_size_nm": [8.0, 8.0, 8.0]})
    work = path.with_name(path.name + ".make")
    shutil.rmtree(work, ignore_errors=True)
    t0 = time.perf_counter()
    run_stage("make", (size,) * 3, (128,) * 3, MakeAffinities(str(path), size, cell), work_dir=work,
              cluster=Cluster("local", workers))
    arr.attrs["made"] = [size, cell]
    shutil.rmtree(work)
    print(f"made {size}^3 uint8 affinities in {time.perf_counter() - t0:.0f} s", file=sys.stderr)


def whole_child(path: str, size: int, threshold: float, out: str) -> None:
    """Child process: read the size^3 corner into memory and run whole-volume waterz on it."""
    from neuroadda.segmentation import segment

    t0 = time.perf_counter()
    affs = np.asarray(zarr.open_array(path, mode="r")[:, :size, :size, :size])
    read = time.perf_counter() - t0
    t0 = time.perf_counter()
    seg = segment(affs, threshold)
    seconds = time.perf_counter() - t0
    np.save(out, seg)
    print(json.dumps({"seconds": seconds, "read_seconds": read, "segments": int(len(np.unique(seg))),
                      "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


def corner(path: Path, size: int) -> Path:
    """The size^3 corner of the big volume as its own zarr (copied chunk-wise)."""
    out = path.with_name(f"affs_{size}.zarr")
    if out.exists():
        return out
    src = zarr.open_array(str(path), mode="r")
    dst = zarr.create_array(store=str(out), shape=(3, size, size, size), chunks=(3, 64, 64, 64), dtype=np.uint8,
                            zarr_format=3, attributes=dict(src.attrs))
    for z in range(0, size, 128):
        dst[:, z:z + 128] = src[:, z:z + 128, :size, :size]
    return out


def blockwise(affs: Path, out: Path, args) -> dict:
    from neuroadda.workflows.segment_blockwise import segment_blockwise

    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(str(out) + ".work", ignore_errors=True)
    t0 = time.perf_counter()
    s = segment_blockwise(affs, out, block_size=(args.block,) * 3, context=args.context, workers=args.workers,
                          threshold=args.threshold)
    s["seconds"] = time.perf_counter() - t0
    return s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--whole-size", type=int, default=512)
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--context", type=int, default=8)
    ap.add_argument("--cell", type=int, default=24, help="object size in voxels (default: %(default)s)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--dir", default="/tmp/neuroadda_bench_segment", help="where the volumes go (kept for reruns)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--whole-child", nargs=4, metavar=("PATH", "SIZE", "T", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.whole_child:
        p, n, t, o = args.whole_child
        whole_child(p, int(n), float(t), o)
        return 0
    d = Path(args.dir)
    d.mkdir(parents=True, exist_ok=True)
    big = d / f"affs_{args.size}.zarr"
    make_volume(big, args.size, args.cell, args.workers)
    small = corner(big, args.whole_size)

    proc = subprocess.run([sys.executable, __file__, "--whole-child", str(big), str(args.whole_size),
                           str(args.threshold), str(d / "whole.npy")], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"whole-volume waterz failed:\n{proc.stderr[-3000:]}")
    whole = json.loads(proc.stdout.strip().splitlines()[-1])
    small_bw = blockwise(small, d / f"seg_{args.whole_size}.zarr", args)
    big_bw = small_bw if args.size == args.whole_size else blockwise(big, d / f"seg_{args.size}.zarr", args)
    driver = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # before the VI check's 2 volumes

    from neuroadda.data.io import open_array
    from neuroadda.metrics.vi import variation_of_information

    seg_small = np.asarray(open_array(d / f"seg_{args.whole_size}.zarr", None)[(slice(None),) * 3])
    vi = variation_of_information(seg_small, np.load(d / "whole.npy"))
    vi = float(sum(vi)) if isinstance(vi, tuple) else float(getattr(vi, "total", vi))

    def per_voxel(seconds, n):
        return seconds / n**3

    ref = per_voxel(whole["seconds"], args.whole_size)
    rows = [
        {"case": f"whole-volume waterz {args.whole_size}^3", "seconds": whole["seconds"],
         "ns_per_voxel": 1e9 * ref, "ratio": 1.0, "peak_rss_gb": whole["peak_rss_bytes"] / 1e9,
         "segments": whole["segments"]},
    ]
    for n, s in ((args.whole_size, small_bw),) + (((args.size, big_bw),) if big_bw is not small_bw else ()):
        peak = max(st["peak_rss_bytes"] for st in s["stages"].values())
        rows.append({"case": f"block-wise {n}^3 ({args.block}^3 blocks, context {args.context}, "
                             f"{args.workers} workers)",
                     "seconds": s["seconds"], "ns_per_voxel": 1e9 * per_voxel(s["seconds"], n),
                     "ratio": per_voxel(s["seconds"], n) / ref, "peak_rss_gb": peak / 1e9,
                     "segments": s["graph"]["segments"], "fragments": s["graph"]["fragments"],
                     "pieces": s["graph"]["pieces"], "contexts": s["contexts"],
                     "edges": s["graph"]["edges"], "graph_seconds": s["graph"]["seconds"],
                     "stage_block_seconds": {k: v["block_seconds"] for k, v in s["stages"].items()}})
    print(f"\n{'case':<62} {'wall s':>8} {'ns/voxel':>9} {'ratio':>6} {'peak RSS GB':>12} {'segments':>9}")
    for r in rows:
        print(f"{r['case']:<62} {r['seconds']:>8.1f} {r['ns_per_voxel']:>9.1f} {r['ratio']:>6.2f} "
              f"{r['peak_rss_gb']:>12.2f} {r['segments']:>9}")
    print(f"peak RSS of the driver (global graph of {big_bw['graph']['fragments']} fragments, "
          f"{big_bw['graph']['edges']} edges, {big_bw['graph']['seconds']:.0f} s): {driver:.2f} GB")
    print(f"VI block-wise vs whole-volume at {args.whole_size}^3: {vi:.2e} bits")
    print(f"contexts read at {args.size}^3: {big_bw['contexts']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "driver_peak_rss_gb": driver, "vi_small": vi,
                                               "args": vars(args), "cpus": os.cpu_count()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
