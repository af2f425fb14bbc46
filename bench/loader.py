"""Benchmark: training input (augmented patches/s from HDF5 and zarr) vs the time of one training step.

Run from the repository root:

    python bench/loader.py [--quick] [--repeats 3] [--json OUT]

Data: raw + labels of datasets/data/drosophila_medulla_fibsem_neuroproof/training_sample2.h5 (250^3; HDF5
gzip, chunks raw 32^3 / labels 16x16x32) and the same arrays copied into a zarr v3 store in a temp dir
(default zstd, chunks ``--zarr-chunks``). Both are read exactly as ``neuroadda pretrain`` reads them:
``open_volume`` -> ``AffinityDataModule`` (default ``PretrainConfig``: patch 16x96x96, batch 2, flips +
rot90 + intensity augmentation, affinity targets) -> its ``PatchDataset``.

Rows
  dataset[i]: items one after another in this process with one torch thread (what a loader worker does);
      also its CPU time per patch, the number least moved by other jobs on the machine.
  DataLoader, W workers: batches from the datamodule's loader (W = data.num_workers, the training setting)
      and from a DataLoader with more workers; worker start-up and the first batch are not timed.
  training step: AffinityModule (default AffinityUNet) forward + masked loss + backward + AdamW step +
      LR scheduler step on a real batch, after warm-up steps.
Each configuration is timed as a mean over a window (``--patches`` patches, ``--steps`` steps) once per
repeat, interleaved; the table keeps the best window of ``--repeats``. The ratio is (time to produce one
batch) / (time of one step).
Exit status 1 if HDF5 and zarr give different patches or the ratio at the training setting is above
``--max-ratio``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from neuroadda.config import PretrainConfig  # noqa: E402
from neuroadda.data.datamodule import AffinityDataModule  # noqa: E402
from neuroadda.data.volume import open_volume  # noqa: E402
from neuroadda.models.unet import build_unet  # noqa: E402
from neuroadda.training.module import AffinityModule  # noqa: E402

NEUROPROOF = ROOT / "datasets/data/drosophila_medulla_fibsem_neuroproof/training_sample2.h5"


def write_zarr(h5_path: Path, out: Path, chunks) -> Path:
    """Copy ``raw`` and ``labels`` (and the file attributes) of ``h5_path`` into a zarr v3 group at ``out``."""
    import h5py
    import zarr

    with h5py.File(h5_path, "r") as f:
        g = zarr.open_group(str(out), mode="w", zarr_format=3)
        g.attrs.update({k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in f.attrs.items()})
        for key in ("raw", "labels"):
            ds = f[key]
            a = g.create_array(key, shape=ds.shape, dtype=ds.dtype, chunks=tuple(chunks))
            a[...] = ds[...]
    return out


def take(it, n: int) -> None:
    for _ in range(n):
        next(it)


class Source:
    """One volume read through the training datamodule, plus the loaders timed on it."""

    def __init__(self, name: str, spec: str, cfg: PretrainConfig, workers: list[int]):
        self.name, self.cfg = name, cfg
        vol = open_volume(spec, require_labels=True, resample_to=cfg.data.voxel_size)
        self.dm = AffinityDataModule(vol, cfg.data, cfg.augment, cfg.train, seed=cfg.seed)
        self.train_loader = self.dm.train_dataloader()  # exactly what Lightning iterates
        self.ds = self.train_loader.dataset
        self.workers = workers
        self.next_item = 0  # each timing reads fresh items (no chunk-cache reuse between repeats)

    def items(self, n: int) -> tuple[float, float]:
        """(wall, CPU) seconds per patch, ``n`` patches one after another in this process with one torch
        thread, as in a DataLoader worker; CPU time is this process's and hardly moves with machine load."""
        start, self.next_item = self.next_item, self.next_item + n
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            t0, c0 = time.perf_counter(), time.process_time()
            for i in range(start, start + n):
                self.ds[i]
            return (time.perf_counter() - t0) / n, (time.process_time() - c0) / n
        finally:
            torch.set_num_threads(threads)

    def loader(self, workers: int, n_batches: int) -> float:
        """Seconds per batch over ``n_batches`` after the first one (start-up and first batch not timed)."""
        from torch.utils.data import DataLoader

        bs = self.cfg.train.batch_size
        if workers == self.cfg.data.num_workers:
            dl = self.train_loader
        else:
            dl = DataLoader(self.ds, batch_size=bs, shuffle=False, num_workers=workers,
                            collate_fn=self.train_loader.collate_fn)  # the training collate
        it = iter(dl)
        next(it)
        t0 = time.perf_counter()
        take(it, n_batches)
        dt = (time.perf_counter() - t0) / n_batches
        del it
        return dt


class Trainer:
    """The training step of ``neuroadda pretrain`` without Lightning's loop: loss, backward, AdamW, scheduler."""

    def __init__(self, cfg: PretrainConfig, voxel_size, batch):
        net = build_unet(cfg.model, voxel_size)
        self.module = AffinityModule(net=net.hparams, bce=cfg.loss.bce, dice_weight=cfg.loss.dice_weight,
                                     lr=cfg.train.lr, weight_decay=cfg.train.weight_decay,
                                     max_steps=cfg.train.max_steps).train()
        opt = self.module.configure_optimizers()
        self.opt, self.sched = opt["optimizer"], opt["lr_scheduler"]["scheduler"]
        self.batch, self.net_hparams = batch, net.hparams

    def step(self) -> float:
        t0 = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        loss = self.module._loss(self.batch)
        loss.backward()
        self.opt.step()
        self.sched.step()
        return time.perf_counter() - t0


def same_patches(a: Source, b: Source, n: int = 4) -> bool:
    return all(torch.equal(x[k], y[k]) for i in range(n) for x, y in [(a.ds[i], b.ds[i])] for k in x)


def run(args) -> tuple[list[dict], dict]:
    cfg = PretrainConfig()
    train_w = cfg.data.num_workers
    workers = sorted({train_w, *args.workers})
    tmp = tempfile.TemporaryDirectory(prefix="bench_loader_")
    t0 = time.perf_counter()
    zpath = write_zarr(args.h5, Path(tmp.name) / "training_sample2.zarr", args.zarr_chunks)
    print(f"zarr copy: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    zc = "x".join(map(str, args.zarr_chunks))
    sources = [Source("HDF5 (gzip; raw 32^3, labels 16x16x32 chunks)", str(args.h5), cfg, workers),
               Source(f"zarr v3 (zstd; {zc} chunks)", str(zpath), cfg, workers)]
    same = same_patches(*sources)
    print(f"HDF5 and zarr patches identical: {same}", file=sys.stderr)

    batch = next(iter(sources[0].train_loader))
    trainer = Trainer(cfg, sources[0].dm.vol.voxel_size, batch)
    for _ in range(args.warmup):
        trainer.step()

    bs = cfg.train.batch_size
    best: dict[tuple, float] = {}

    def keep(key, seconds):
        best[key] = min(best.get(key, float("inf")), seconds)

    for r in range(args.repeats):  # interleaved: every configuration once per repeat
        for s in sources:
            wall, cpu = s.items(args.patches)
            keep((s.name, "items"), wall * bs)
            keep((s.name, "cpu"), cpu)
            for w in workers:
                keep((s.name, w), s.loader(w, max(1, args.patches // bs)))
        keep(("step",), sum(trainer.step() for _ in range(args.steps)) / args.steps)
        print(f"  repeat {r + 1}/{args.repeats} done", file=sys.stderr, flush=True)

    step = best[("step",)]
    rows = []
    for s in sources:
        rows.append({"source": s.name, "how": "dataset[i], 1 process, 1 torch thread", "workers": None,
                     "batch_s": best[(s.name, "items")], "cpu_s_per_patch": best[(s.name, "cpu")]})
        for w in workers:
            how = "DataLoader" + (" (training setting)" if w == train_w else "")
            rows.append({"source": s.name, "how": how, "workers": w, "batch_s": best[(s.name, w)]})
    for r in rows:
        r["patches_per_s"] = bs / r["batch_s"]
        r["ratio"] = r["batch_s"] / step
    rows.append({"source": "-", "how": f"training step (fwd + loss + bwd + AdamW), batch {bs}", "workers": None,
                 "batch_s": step, "patches_per_s": bs / step, "ratio": 1.0})
    env = {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
           "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "machine": platform.machine(),
           "repeats": args.repeats, "patches": args.patches, "steps": args.steps, "warmup": args.warmup,
           "patch_size": list(cfg.data.patch_size), "batch_size": bs, "train_num_workers": train_w,
           "net": trainer.net_hparams, "zarr_chunks": list(args.zarr_chunks), "same_patches": same}
    for mod in ("monai", "h5py", "zarr", "pytorch_lightning"):
        env[mod] = __import__(mod).__version__
    tmp.cleanup()
    return rows, env


def print_table(rows: list[dict]) -> None:
    print("| source | how | workers | patches/s | ms per batch | batch time / step time | CPU ms per patch |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        w = "" if r["workers"] is None else str(r["workers"])
        cpu = f"{r['cpu_s_per_patch'] * 1e3:.1f}" if "cpu_s_per_patch" in r else ""
        print(f"| {r['source']} | {r['how']} | {w} | {r['patches_per_s']:.1f} | {r['batch_s'] * 1e3:.1f} | "
              f"{r['ratio']:.3f} | {cpu} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer patches and steps (~1 min)")
    ap.add_argument("--repeats", type=int, default=3, help="best of N, interleaved (default 3)")
    ap.add_argument("--patches", type=int, help="patches per timing (default 40, --quick 12)")
    ap.add_argument("--steps", type=int, help="training steps averaged per repeat (default 4, --quick 2)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed training steps first (default 3)")
    ap.add_argument("--workers", type=int, nargs="*", default=[2],
                    help="DataLoader workers to time besides data.num_workers (default 2)")
    ap.add_argument("--zarr-chunks", type=int, nargs=3, default=[16, 64, 64], metavar=("Z", "Y", "X"))
    ap.add_argument("--h5", type=Path, default=NEUROPROOF, help="HDF5 file with raw and labels")
    ap.add_argument("--max-ratio", type=float, default=0.5,
                    help="fail if batch time / step time at the training setting exceeds this (default 0.5)")
    ap.add_argument("--json", type=Path, help="also write the rows and the environment as JSON")
    args = ap.parse_args(argv)
    args.patches = args.patches or (12 if args.quick else 40)
    args.steps = args.steps or (2 if args.quick else 4)
    if not args.h5.exists():
        print(f"{args.h5} not found", file=sys.stderr)
        return 2

    rows, env = run(args)
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps({"env": env, "rows": rows}, indent=2))
    bad = [r for r in rows if r["workers"] == env["train_num_workers"] and r["ratio"] > args.max_ratio]
    if not env["same_patches"]:
        print("HDF5 and zarr datasets gave different patches", file=sys.stderr)
    if bad:
        print(f"loader slower than {args.max_ratio} x step at the training setting: {bad}", file=sys.stderr)
    return 1 if bad or not env["same_patches"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
