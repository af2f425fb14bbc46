"""Periodic Lightning checkpoints and resuming from the last one (a killed, preempted or requeued run
continues from its last saved step instead of step 0). Checkpoints load with ``weights_only=True``."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

CKPT_DIR = "checkpoints"


def checkpoint_callback(out_dir: str | Path, every: int):
    """Save ``out_dir/checkpoints/last.ckpt`` every ``every`` training steps (None when ``every`` is 0)."""
    if every <= 0:
        return None
    from pytorch_lightning.callbacks import ModelCheckpoint

    return ModelCheckpoint(dirpath=str(Path(out_dir) / CKPT_DIR), filename="last", every_n_train_steps=every,
                           save_top_k=1, monitor=None, save_last=False, enable_version_counter=False)


def last_checkpoint(out_dir: str | Path) -> Path | None:
    p = Path(out_dir) / CKPT_DIR / "last.ckpt"
    return p if p.is_file() else None


def resumed_step(out_dir: str | Path) -> int:
    """The global step of ``out_dir``'s last checkpoint (0 without one): datasets skip step x batch items so a
    resumed run sees the patches the killed one had not reached yet."""
    ckpt = last_checkpoint(out_dir)
    return int(torch.load(ckpt, map_location="cpu", weights_only=True).get("global_step", 0)) if ckpt else 0


def fit(trainer, module, out_dir: str | Path, **fit_kwargs) -> int:
    """``trainer.fit`` from ``out_dir``'s last checkpoint when there is one; returns the step resumed from
    (0 = fresh)."""
    import warnings

    ckpt = last_checkpoint(out_dir)
    step = resumed_step(out_dir)
    if ckpt is not None:
        print(f"resuming from {ckpt} (step {step})", flush=True)
    with warnings.catch_warnings():
        # the datasets continue their item sequence themselves (offset = step x batch), see resumed_step
        warnings.filterwarnings("ignore", ".*resuming from a checkpoint that ended before the epoch ended.*")
        # our loaders are in-process and epoch-less by design; fine-tuning has no validation loop
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*number of training batches.*")
        warnings.filterwarnings("ignore", ".*validation_step.*val_dataloader.*")
        trainer.fit(module, ckpt_path=str(ckpt) if ckpt else None, weights_only=True, **fit_kwargs)
    return step


def clear(out_dir: str | Path) -> None:
    """Remove the periodic checkpoints once the final model is written."""
    shutil.rmtree(Path(out_dir) / CKPT_DIR, ignore_errors=True)
