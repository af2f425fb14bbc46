"""Benchmark: neuroadda's predict path vs MONAI sliding_window_inference on the whole volume; peak RSS.

Run from the repository root:

    python bench/predict.py [--quick] [--repeats 3] [--checkpoint model.pt] [--json OUT]
                            [--mem-shape 1024] [--mem-cap-gb 4] [--skip-speed] [--skip-mem]

Speed: the raw volume of datasets/data/drosophila_medulla_fibsem_neuroproof/training_sample2.h5 (250^3 uint8;
--quick: a 64 x 192 x 192 crop) is written as zarr (chunks 64^3, voxel size 10 nm) in a temp dir. Model: a
backbone checkpoint written with ``save_backbone`` (AffinityUNet, channels (16, 32, 64, 128), patch
(16, 96, 96), seed 0) unless --checkpoint. Timed best of k, methods interleaved in every repeat:
  monai:           ``sliding_window_inference`` on the whole normalized volume as one in-memory tensor
                   (same roi, overlap 0.25, sw_batch_size 2, mode gaussian), then sigmoid.
  predict_volume:  what ``neuroadda predict`` runs: load checkpoint, open zarr, fit normalizer, blocks, zarr write.
  predict_blockwise: the bare block loop (default block shape) from the opened zarr volume into a float32 zarr.
  predict_blockwise (64, 128, 128) blocks: forced small blocks, to show the multi-block overhead (not gated).
Every output must equal MONAI's within 1e-3 (max abs diff over all voxels); predict_volume must reach >= 0.90
of MONAI's voxels/s.

Memory: ``neuroadda predict --uint8`` as a subprocess on a synthetic smooth uint8 zarr of --mem-shape^3
(written slab by slab; never whole in memory) with a tiny model (channels (2, 2), no residual units: the memory
of the block loop does not depend on the model much, and a real one takes hours on 2 CPU cores). Peak RSS is
polled from /proc and read from getrusage(RUSAGE_CHILDREN); it must stay under --mem-cap-gb.
Exits non-zero when a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import monai  # noqa: E402
import torch  # noqa: E402
import zarr  # noqa: E402
from monai.inferers import sliding_window_inference  # noqa: E402

from neuroadda.data.normalize import fit_normalizer  # noqa: E402
from neuroadda.data.volume import open_volume  # noqa: E402
from neuroadda.inference import open_prediction_zarr, predict_blockwise  # noqa: E402
from neuroadda.models.checkpoint import load_backbone, save_backbone  # noqa: E402
from neuroadda.models.unet import AffinityUNet, auto_strides  # noqa: E402
from neuroadda.workflows.predict import predict_volume  # noqa: E402

NEUROPROOF = ROOT / "datasets/data/drosophila_medulla_fibsem_neuroproof/training_sample2.h5"
VOXEL = (10.0, 10.0, 10.0)
PATCH = (16, 96, 96)
OVERLAP, SW_BATCH, TOL, MIN_RATIO = 0.25, 2, 1e-3, 0.90
SMALL_BLOCK = (64, 128, 128)


def make_checkpoint(path: Path, channels, *, num_res_units: int = 1, patch=PATCH) -> Path:
    torch.manual_seed(0)
    net = AffinityUNet(channels, auto_strides(VOXEL, len(channels) - 1), num_res_units=num_res_units)
    meta = {"kind": "backbone", "source": "bench", "voxel_size": list(VOXEL), "patch_size": list(patch),
            "normalization": "zscore", "threshold": 0.5, "labels_kind": "3d_instance", "seed": 0}
    return save_backbone(path, net, meta)


def write_zarr(path: Path, data: np.ndarray) -> str:
    arr = zarr.create_array(store=str(path), shape=data.shape, chunks=(64, 64, 64), dtype=data.dtype,
                            attributes={"voxel_size_nm": list(VOXEL)})
    arr[:] = data
    return str(path)


def speed(args, tmp: Path) -> tuple[list[dict], bool]:
    import h5py

    with h5py.File(NEUROPROOF, "r") as f:
        raw = f["raw"][tuple(slice(0, s) for s in args.shape)]
    spec = write_zarr(tmp / "raw.zarr", raw)
    ckpt = Path(args.checkpoint) if args.checkpoint else make_checkpoint(tmp / "model.pt", (16, 32, 64, 128))
    net, meta = load_backbone(ckpt)
    roi = tuple(meta["patch_size"])
    vol = open_volume(spec, labels_key=None)
    norm = fit_normalizer(vol.raw, meta.get("normalization", "zscore"))
    x = torch.from_numpy(norm(raw))[None, None]
    n = raw.size

    def monai_whole():
        with torch.inference_mode():
            return torch.sigmoid(sliding_window_inference(x, roi, SW_BATCH, net, overlap=OVERLAP, mode="gaussian"))[0]

    def blockwise(block):
        def run():
            out = open_prediction_zarr(tmp / f"bw{block}.zarr", (3,) + raw.shape)
            predict_blockwise(net, vol.raw, out, roi_size=roi, block_shape=block, overlap=OVERLAP,
                              sw_batch_size=SW_BATCH, normalize=norm, progress=False)
            return out
        return run

    def full():
        return zarr.open_array(predict_volume(ckpt, spec, tmp / "pv.zarr", overlap=OVERLAP, progress=False), mode="r")

    methods = {"monai sliding_window_inference (whole volume in memory)": monai_whole,
               "neuroadda predict_volume (full predict path)": full,
               "neuroadda predict_blockwise (default blocks)": blockwise(None),
               f"neuroadda predict_blockwise {SMALL_BLOCK} blocks": blockwise(SMALL_BLOCK)}
    times = {k: [] for k in methods}
    results = {}
    for rep in range(args.repeats):
        for name, f in methods.items():
            t = time.perf_counter()
            results[name] = f()
            times[name].append(time.perf_counter() - t)
            print(f"rep {rep} {name}: {times[name][-1]:.2f} s", file=sys.stderr, flush=True)
    ref = results[next(iter(methods))].numpy()
    rows, ok = [], True
    base = n / min(times[next(iter(methods))])
    for i, name in enumerate(methods):
        diff = 0.0 if i == 0 else float(np.abs(np.asarray(results[name][:]) - ref).max())
        best = min(times[name])
        row = dict(method=name, shape=list(raw.shape), seconds=best, all_seconds=times[name], voxels_per_s=n / best,
                   ratio=n / best / base, max_abs_diff=diff)
        row["ok"] = diff < TOL and (row["ratio"] >= MIN_RATIO or "predict_volume" not in name)
        ok &= row["ok"]
        rows.append(row)
    return rows, ok


def synthetic_zarr(path: Path, size: int) -> str:
    """Smooth uint8 blobs plus noise, written one 64-slice slab at a time."""
    arr = zarr.create_array(store=str(path), shape=(size,) * 3, chunks=(64, 64, 64), dtype="uint8",
                            attributes={"voxel_size_nm": list(VOXEL)})
    rng = np.random.default_rng(0)
    yy, xx = np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32), indexing="ij")
    for z0 in range(0, size, 64):
        z = np.arange(z0, min(z0 + 64, size), dtype=np.float32)[:, None, None]
        s = np.sin(z / 7.0) * np.sin(yy / 11.0) + np.cos(xx / 9.0 + z / 13.0)
        s = 128 + 50 * s + rng.normal(0, 10, s.shape).astype(np.float32)
        arr[z0:z0 + len(z)] = np.clip(s, 0, 255).astype(np.uint8)
    return str(path)


def memory(args, tmp: Path) -> tuple[list[dict], bool]:
    size, cap = args.mem_shape, args.mem_cap_gb * 1e9
    need = size ** 3 * 4  # input (1 B) + uint8 output (3 B), before compression
    free = shutil.disk_usage(tmp).free
    if free < 1.2 * need:
        print(f"not enough disk in {tmp}: {free / 1e9:.1f} GB free, ~{need / 1e9:.1f} GB needed", file=sys.stderr)
        return [], False
    t = time.perf_counter()
    spec = synthetic_zarr(tmp / "big.zarr", size)
    print(f"wrote {size}^3 input in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    ckpt = make_checkpoint(tmp / "tiny.pt", (2, 2), num_res_units=0)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    cmd = [sys.executable, "-m", "neuroadda.cli.main", "predict", "--checkpoint", str(ckpt), "--input", spec,
           "--out", str(tmp / "big_affs.zarr"), "--uint8", "--quiet", "--device", "cpu"]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    polled = 0
    while proc.poll() is None:
        try:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    polled = max(polled, int(line.split()[1]) * 1024)
        except OSError:
            pass
        time.sleep(0.05)
    seconds = time.perf_counter() - t
    log = proc.stdout.read()
    rusage = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux
    peak = max(polled, rusage)
    out = zarr.open_array(str(tmp / "big_affs.zarr"), mode="r") if proc.returncode == 0 else None
    sane = out is not None and out.shape == (3,) + (size,) * 3 and out.dtype == np.uint8 \
        and np.ptp(out[:, size // 2, :64, :64]) > 0
    row = dict(shape=[size] * 3, input_uint8_gb=size ** 3 / 1e9, input_float32_gb=size ** 3 * 4 / 1e9,
               output_float32_gb=3 * size ** 3 * 4 / 1e9, cap_gb=cap / 1e9, peak_rss_gb=peak / 1e9,
               polled_rss_gb=polled / 1e9, rusage_rss_gb=rusage / 1e9, seconds=seconds,
               voxels_per_s=size ** 3 / seconds,
               returncode=proc.returncode)
    row["ok"] = bool(proc.returncode == 0 and sane and peak < cap)
    if proc.returncode != 0:
        print(log[-3000:], file=sys.stderr)
    return [row], row["ok"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="64x192x192 crop, 2 repeats; memory case 512^3 under 1 GB")
    ap.add_argument("--repeats", type=int, default=None, help="best of (default 3, --quick 2)")
    ap.add_argument("--shape", type=int, nargs=3, default=None, help="crop of the 250^3 volume (default: whole)")
    ap.add_argument("--checkpoint", default=None, help="backbone model.pt (default: a fresh default AffinityUNet)")
    ap.add_argument("--mem-shape", type=int, default=None, help="edge of the memory-case volume (1024, quick 512)")
    ap.add_argument("--mem-cap-gb", type=float, default=None, help="peak RSS cap (4, quick 1)")
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--tmp", default=None, help="temp dir parent (needs ~4 B/voxel of the memory case)")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-mem", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    args.repeats = args.repeats or (2 if args.quick else 3)
    args.shape = tuple(args.shape or ((64, 192, 192) if args.quick else (250, 250, 250)))
    args.mem_shape = args.mem_shape or (512 if args.quick else 1024)
    args.mem_cap_gb = args.mem_cap_gb or (1.0 if args.quick else 4.0)
    torch.set_num_threads(args.threads)

    ok, speed_rows, mem_rows = True, [], []
    with tempfile.TemporaryDirectory(prefix="bench_predict_", dir=args.tmp) as d:
        if not args.skip_speed:
            speed_rows, good = speed(args, Path(d))
            ok &= good
        if not args.skip_mem:
            mem_rows, good = memory(args, Path(d))
            ok &= good

    if speed_rows:
        shp = "x".join(map(str, args.shape))
        print(f"\nAffinity prediction, neuroproof raw {shp} (zarr), roi {PATCH}, overlap {OVERLAP}, "
              f"sw_batch_size {SW_BATCH}, {args.threads} threads, best of {args.repeats}\n")
        print("| method | seconds | voxels/s | ratio vs monai | max abs diff vs monai | ok |")
        print("|---|---:|---:|---:|---:|---|")
        for r in speed_rows:
            print(f"| {r['method']} | {r['seconds']:.2f} | {r['voxels_per_s'] / 1e6:.3f} M | {r['ratio']:.3f} | "
                  f"{r['max_abs_diff']:.1e} | {'yes' if r['ok'] else 'NO'} |")
    if mem_rows:
        r = mem_rows[0]
        print(f"\nPeak RSS of `neuroadda predict --uint8` (subprocess, tiny model), cap {r['cap_gb']:.1f} GB\n")
        print("| volume | uint8 in | as float32 | float32 affinities | peak RSS | peak / cap | seconds | ok |")
        print("|---|---:|---:|---:|---:|---:|---:|---|")
        print(f"| {'x'.join(map(str, r['shape']))} | {r['input_uint8_gb']:.2f} GB | {r['input_float32_gb']:.2f} GB | "
              f"{r['output_float32_gb']:.2f} GB | {r['peak_rss_gb']:.2f} GB | {r['peak_rss_gb'] / r['cap_gb']:.2f} | "
              f"{r['seconds']:.0f} | {'yes' if r['ok'] else 'NO'} |")
    if args.json:
        meta = dict(python=platform.python_version(), torch=torch.__version__, monai=monai.__version__,
                    zarr=zarr.__version__, numpy=np.__version__, machine=platform.machine(), cpus=os.cpu_count(),
                    threads=args.threads)
        args.json.write_text(json.dumps(dict(meta=meta, speed=speed_rows, memory=mem_rows), indent=2))
    if not ok:
        print("CHECK FAILED (see the ok column)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
