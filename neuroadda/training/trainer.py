"""The Lightning Trainer every training run uses, built from a ``train`` / ``finetune`` config section."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch

from neuroadda.config import TrainConfig
from neuroadda.tracking import make_logger
from neuroadda.training.resume import checkpoint_callback


def trainer_for(tc: TrainConfig, out_dir: Path, *, progress: bool = True, has_val: bool = True, logger=None,
                norm: str = "instance") -> pl.Trainer:
    """A Lightning Trainer (accelerator 'auto' uses CUDA when present) with the resumable checkpoint callback,
    gradient clipping and deterministic kernels where torch has them. ``logger``: a Lightning logger (default:
    CSV or none, from ``tc.logger``); ``norm``: the network's normalisation ('batch' gets sync batch norm when
    training on several GPUs)."""
    if logger is None:
        logger = make_logger(tc.logger, out_dir, name=Path(out_dir).name)
    ckpt = checkpoint_callback(out_dir, tc.checkpoint_every)
    callbacks = [c for c in (ckpt, _progress_bar() if progress else None) if c is not None]
    several = tc.num_nodes > 1 or (isinstance(tc.devices, int) and tc.devices > 1)
    on_gpu = torch.cuda.is_available() and tc.accelerator in ("auto", "gpu", "cuda")
    sync_bn = several and norm == "batch" and on_gpu  # small per-device batches: statistics over all GPUs
    return pl.Trainer(
        callbacks=callbacks, max_steps=tc.max_steps, accelerator=tc.accelerator, devices=tc.devices,
        num_nodes=tc.num_nodes, strategy=tc.strategy, sync_batchnorm=sync_bn, precision=tc.precision,
        logger=logger, enable_checkpointing=ckpt is not None, enable_progress_bar=progress, enable_model_summary=False,
        val_check_interval=min(tc.val_every_n_steps, tc.max_steps) if has_val else None,
        check_val_every_n_epoch=None, limit_val_batches=1.0 if has_val else 0,
        log_every_n_steps=min(10, tc.max_steps), num_sanity_val_steps=0, default_root_dir=str(out_dir),
        gradient_clip_val=tc.grad_clip, deterministic="warn")


def _progress_bar():
    """Lightning's tqdm bar redrawn every 10 steps (every step costs a redraw and, in a batch log, a line)."""
    from pytorch_lightning.callbacks import TQDMProgressBar

    return TQDMProgressBar(refresh_rate=10)
