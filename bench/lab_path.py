"""A lab's whole path on a 1024^3 volume served as neuroglancer precomputed: select-source (3 demo backbones),
select-samples (pool subsampled by default, and full), block-wise predict and segment with their OME-Zarr
pyramids. Wall time and peak RSS per process for every step, and select-samples' time against block-wise predict
of the same volume per voxel scored (the physical floor: scoring is one forward pass per scored candidate).

The target is real EM tiled: the neuroproof FIB-SEM crop (250^3, 10 nm, ``datasets/data``) mirrored along every
axis to ``--size``^3 and written slab by slab with tensorstore as a two-scale precomputed volume (10 and 20 nm,
64^3 chunks, raw encoding), never whole in memory. Every step runs as its own process (the ``neuroadda`` CLI);
its peak RSS and that of its daisy workers come from ``getrusage`` (self and reaped children). Results are
written after every step to ``--json`` (a killed run started again skips finished steps with ``--resume``).

    python bench/lab_path.py --json docs/results/lab_path/lab_path_1024.json      # 1024^3 (hours on 2 busy cores)
    python bench/lab_path.py --size 256 --json /tmp/lab_256.json                  # quick check
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

REPO = Path(__file__).resolve().parents[1]
CROP = REPO / "datasets/data/drosophila_medulla_fibsem_neuroproof/training_sample2.h5"
SOURCES = ("gala-train", "isbi2012", "vnc-gerhard2013")
CANDIDATE = (16, 96, 96)  # configs/adapt.yaml's active.candidate_size
STEP_KEYS = ("source", "samples", "predict", "segment", "samples-blockwise", "samples-full")


def mirror_index(n: int, period_of: int) -> np.ndarray:
    """Indices 0..n-1 folded into 0..period_of-1 by mirroring (…, 0, 1, …, m-1, m-2, …, 1, 0, 1, …)."""
    p = 2 * (period_of - 1)
    j = np.arange(n) % p
    return np.where(j < period_of, j, p - j)


def make_target(path: Path, size: int) -> dict:
    """The tiled neuroproof crop as a precomputed volume at ``path`` (scales 10 and 20 nm)."""
    import h5py
    import tensorstore as ts

    from neuroadda.data.pyramid import downsample_mean

    if (path / "info").exists() and json.loads((path / "made.json").read_text() if (path / "made.json").exists()
                                               else "{}").get("size") == size:
        return json.loads((path / "made.json").read_text())
    shutil.rmtree(path, ignore_errors=True)
    t0 = time.perf_counter()
    with h5py.File(CROP, "r") as f:
        crop = np.asarray(f["raw"])
    iz, iy, ix = (mirror_index(size, n) for n in crop.shape)
    stores = []
    for k, res in enumerate((10, 20)):
        n = size // 2**k
        stores.append(ts.open({"driver": "neuroglancer_precomputed", "kvstore": path.resolve().as_uri() + "/",
                               "multiscale_metadata": {"type": "image", "data_type": "uint8", "num_channels": 1},
                               "scale_metadata": {"size": [n, n, n], "resolution": [res] * 3, "encoding": "raw",
                                                  "chunk_size": [64, 64, 64], "voxel_offset": [0, 0, 0]},
                               "create": True, "open": k > 0}).result())
    slab = 64
    for z in range(0, size, slab):
        block = crop[np.ix_(iz[z:z + slab], iy, ix)]
        stores[0][:, :, z:z + slab, 0] = block.T
        half = downsample_mean(block, (2, 2, 2), (slab // 2, size // 2, size // 2))
        stores[1][:, :, z // 2:(z + slab) // 2, 0] = half.T
    made = {"size": size, "seconds": time.perf_counter() - t0, "bytes_level0": size**3,
            "source": str(CROP.relative_to(REPO)), "scales_nm": [10, 20]}
    (path / "made.json").write_text(json.dumps(made))
    return made


def child(argv: list[str]) -> int:
    """Run one ``neuroadda`` command in this process; print its peak RSS and that of its reaped children."""
    from neuroadda.cli.main import main

    t0 = time.perf_counter()
    rc = main(argv)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print("LAB_PATH_STEP " + json.dumps({"rc": rc, "seconds_in_process": time.perf_counter() - t0,
                                         "peak_rss_bytes": own, "children_peak_rss_bytes": kids}))
    return rc


def run_step(name: str, argv: list[str], log) -> dict:
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    proc = subprocess.run([sys.executable, __file__, "--child", *argv], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    log.write(f"\n### {name}: neuroadda {' '.join(argv)}\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}\n")
    log.flush()
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("LAB_PATH_STEP ")]
    if proc.returncode != 0 or not line:
        raise SystemExit(f"step {name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    rec = json.loads(line[-1].split(" ", 1)[1])
    return {"step": name, "argv": argv, "seconds": wall, "peak_rss_gb": rec["peak_rss_bytes"] / 1e9,
            "workers_peak_rss_gb": rec["children_peak_rss_bytes"] / 1e9, "load_before": load0,
            "load_after": os.getloadavg()[0]}


def ome_levels(path: Path) -> list[list[int]]:
    """The level shapes ome-zarr-py reads from an OME-Zarr image."""
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    node = next(iter(Reader(parse_url(str(path)))()))
    return [list(map(int, d.shape)) for d in node.data]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dir", default="/tmp/neuroadda_bench_lab_path", help="where the volumes go (kept)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--resume", action="store_true", help="keep the steps already in --json")
    ap.add_argument("--steps", nargs="+", default=None, choices=STEP_KEYS,
                    help="run only these steps (default: all, in the order listed)")
    ap.add_argument("--predict-from", default=None, metavar="JSON",
                    help="where this run has no predict step: take block-wise predict's seconds per voxel from "
                         "another run's results (same machine, same block size)")
    ap.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child)
    d = Path(args.dir) / str(args.size)
    d.mkdir(parents=True, exist_ok=True)
    out = Path(args.json) if args.json else d / "lab_path.json"
    res = json.loads(out.read_text()) if args.resume and out.exists() else {}
    res.update({"size": args.size, "workers": args.workers, "cpus": os.cpu_count()})
    res.setdefault("steps", {})

    def save():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(res, indent=1))
        tmp.replace(out)

    target = d / "target.precomputed"
    res["target"] = make_target(target, args.size)
    spec = "precomputed://" + target.resolve().as_uri()
    bb = REPO / "datasets/backbones"
    w = str(args.workers)
    n = args.size
    steps = [
        ("select-source", ["select-source", "--target", spec, "--sources", *SOURCES, "--quiet",
                           *[a for s in SOURCES for a in ("--backbone", f"{s}={bb / (s + '.pt')}")],
                           "--out", str(d / "select")]),
        ("select-samples (default subsample)", ["select-samples", "--target", spec, "--backbone",
                                                str(bb / "gala-train.pt"), "--n", "4", "--quiet",
                                                "--out", str(d / "samples")]),
        ("predict (block-wise)", ["predict", "--checkpoint", str(bb / "gala-train.pt"), "--input", spec, "--uint8",
                                  "--out", str(d / "affs.ome.zarr"), "--block-size", "128", "256", "256",
                                  "--workers", w, "--quiet"]),
        ("segment (block-wise)", ["segment", "--affinities", str(d / "affs.ome.zarr"), "--out",
                                  str(d / "seg.ome.zarr"), "--block-size", "128", "128", "128", "--workers", w,
                                  "--quiet"]),
        ("select-samples (default subsample, block-wise)", [
            "select-samples", "--target", spec, "--backbone", str(bb / "gala-train.pt"), "--n", "4", "--quiet",
            "--no-proposals", "--block-size", "256", "256", "256", "--workers", w, "--out", str(d / "samples_bw")]),
        ("select-samples (full pool)", ["select-samples", "--target", spec, "--backbone", str(bb / "gala-train.pt"),
                                        "--n", "4", "--max-candidates", "0", "--quiet", "--no-proposals",
                                        "--out", str(d / "samples_full")]),
    ]
    with open(out.with_suffix(".log"), "a") as log:
        for key, (name, argv) in zip(STEP_KEYS, steps):
            if name in res["steps"] or args.steps and key not in args.steps:
                continue
            dest = argv[argv.index("--out") + 1]
            for p in (dest, dest + ".work", dest + ".tmp"):  # every step measured from scratch
                shutil.rmtree(p, ignore_errors=True)
            print(f"{time.strftime('%H:%M:%S')} {name} ...", file=sys.stderr, flush=True)
            rec = run_step(name, argv, log)
            if name.startswith("select-samples"):
                s = json.loads((Path(argv[argv.index("--out") + 1]) / "samples.json").read_text())
                rec.update({"pool_size": s["pool_size"], "scored": len(s["scores"]),
                            "scored_voxels": len(s["scores"]) * int(np.prod(CANDIDATE)),
                            "picks": [x["box"] for x in s["samples"]]})
            if name.startswith(("predict", "segment")):
                rec["levels"] = ome_levels(Path(argv[argv.index("--out") + 1]))
            if name == "select-source":
                sel = json.loads((d / "select" / "selection.json").read_text())
                rec["ranking"] = [(r["source"], r["score"]) for r in sel["ranking"]]
            res["steps"][name] = rec
            save()
            print(f"{time.strftime('%H:%M:%S')} {name}: {rec['seconds']:.0f} s, peak RSS {rec['peak_rss_gb']:.2f} "
                  f"GB (workers {rec['workers_peak_rss_gb']:.2f} GB)", file=sys.stderr, flush=True)
    st = res["steps"]
    if "predict (block-wise)" in st:
        pred, where = st["predict (block-wise)"]["seconds"] / n**3, "this run"
    elif args.predict_from:
        other = json.loads(Path(args.predict_from).read_text())
        pred = other["steps"]["predict (block-wise)"]["seconds"] / other["size"]**3
        where = f"{Path(args.predict_from).name} ({other['size']}^3)"
    else:
        save()
        return 0
    res["predict_seconds_per_voxel"] = {"value": pred, "from": where}
    res["ratios"] = {name: (r["seconds"] / r["scored_voxels"]) / pred for name, r in st.items()
                     if name.startswith("select-samples")}
    res["ratios_note"] = ("select-samples seconds per scored voxel / block-wise predict seconds per voxel of the "
                          f"whole volume, predict from {where} (<= 1.5 is the target)")
    save()
    print(json.dumps(res["ratios"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
