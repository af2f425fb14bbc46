"""Benchmark: one training step in a bare PyTorch loop vs inside NeuroADDA's LightningModule + Trainer.

Run from the repository root:

    python bench/train_step.py [--steps 60] [--warmup 10] [--repeats 3] [--json OUT]

Both sides train the same network (default ``PretrainConfig``: AffinityUNet 16-32-64-128, patch 16x96x96,
batch 2) with the same loss (:func:`neuroadda.models.losses.affinity_loss` with the configured settings),
AdamW and the warm-up/cosine LR schedule, on the same batches: patches of gala-train drawn by the training
DataLoader (``AffinityDataModule.train_dataloader``, so reading, normalisation, augmentation and affinity
targets are inside the timed step on both sides).

- bare: ``for batch in loader: zero_grad; loss = affinity_loss(net(x)); backward; step; sched.step``.
- lightning: ``trainer_for(cfg.train, ...)`` exactly as ``neuroadda pretrain`` builds it (progress bar,
  CSV logger, periodic resumable checkpoint every ``train.checkpoint_every`` steps) and ``Trainer.fit``.

Time per step = wall time between the end of step ``--warmup`` and the end of the last step, divided by the
number of steps in between (start-up and the first steps are not timed). The two sides run interleaved,
``--repeats`` times; the table keeps each side's best window. The last line is the throughput ratio
``lightning/bare ratio: X`` (steps/s inside Lightning over steps/s of the bare loop; 1.0 = no overhead).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pytorch_lightning as pl  # noqa: E402

from neuroadda.config import PretrainConfig  # noqa: E402
from neuroadda.data.datamodule import AffinityDataModule  # noqa: E402
from neuroadda.data.volume import open_volume  # noqa: E402
from neuroadda.models.losses import affinity_loss  # noqa: E402
from neuroadda.models.unet import build_unet  # noqa: E402
from neuroadda.training.module import AffinityModule, warmup_cosine  # noqa: E402
from neuroadda.training.trainer import trainer_for  # noqa: E402


def setup(steps: int):
    cfg = PretrainConfig()
    cfg.train.max_steps = steps
    vol = open_volume("gala-train", require_labels=True)
    net = build_unet(cfg.model, vol.voxel_size)
    dm = AffinityDataModule(vol, cfg.data, cfg.augment, cfg.train, seed=0)
    return cfg, net, dm


def bare(steps: int, warmup: int) -> float:
    """Seconds per step of a plain loop over the training DataLoader."""
    cfg, net, dm = setup(steps)
    torch.manual_seed(0)
    module = AffinityModule(net=net.hparams, **_loss_kwargs(cfg), lr=cfg.train.lr,
                            weight_decay=cfg.train.weight_decay, max_steps=steps)
    model = module.net.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, steps))
    t0 = None
    for i, batch in enumerate(dm.train_dataloader()):
        opt.zero_grad(set_to_none=True)
        loss = affinity_loss(model(batch["image"]), batch["affs"], batch["mask"], **_loss_kwargs(cfg))
        loss.backward()
        opt.step()
        sched.step()
        if i + 1 == warmup:
            t0 = time.perf_counter()
    return (time.perf_counter() - t0) / (steps - warmup)


def _loss_kwargs(cfg) -> dict:
    return {k: v for k, v in cfg.loss.model_dump().items()}


class _Clock(pl.Callback):
    def __init__(self, warmup: int):
        self.warmup, self.t0, self.t1, self.n = warmup, None, None, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.n += 1
        if self.n == self.warmup:
            self.t0 = time.perf_counter()
        self.t1 = time.perf_counter()


def lightning(steps: int, warmup: int, progress: bool) -> float:
    """Seconds per step inside ``Trainer.fit`` as ``neuroadda pretrain`` runs it (no validation loop)."""
    cfg, net, dm = setup(steps)
    torch.manual_seed(0)
    module = AffinityModule(net=net.hparams, **_loss_kwargs(cfg), lr=cfg.train.lr,
                            weight_decay=cfg.train.weight_decay, max_steps=steps)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = trainer_for(cfg.train, Path(tmp), progress=progress, has_val=False)
        clock = _Clock(warmup)
        trainer.callbacks.append(clock)
        trainer.fit(module, train_dataloaders=dm.train_dataloader())
    return (clock.t1 - clock.t0) / (steps - warmup)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-progress", action="store_true", help="Lightning without its progress bar")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    import warnings

    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    res = {"bare": [], "lightning": []}
    for r in range(a.repeats):
        res["bare"].append(bare(a.steps, a.warmup))
        res["lightning"].append(lightning(a.steps, a.warmup, not a.no_progress))
        print(f"repeat {r}: bare {res['bare'][-1] * 1e3:.1f} ms/step, lightning {res['lightning'][-1] * 1e3:.1f} "
              f"ms/step", file=sys.stderr, flush=True)
    best = {k: min(v) for k, v in res.items()}
    ratio = best["bare"] / best["lightning"]
    print(f"| loop | ms per step (best of {a.repeats}) | all repeats |\n|---|---:|---|")
    for k in ("bare", "lightning"):
        print(f"| {k} | {best[k] * 1e3:.1f} | {', '.join(f'{v * 1e3:.1f}' for v in res[k])} |")
    if a.json:
        a.json.write_text(json.dumps({"ms_per_step": {k: [v * 1e3 for v in vs] for k, vs in res.items()},
                                      "ratio": ratio, "steps": a.steps, "warmup": a.warmup,
                                      "torch": torch.__version__, "pl": pl.__version__,
                                      "machine": platform.processor() or platform.machine(),
                                      "threads": torch.get_num_threads()}, indent=2))
    print(f"lightning/bare ratio: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
