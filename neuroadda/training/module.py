"""Thin LightningModule: an affinity network (our :class:`AffinityUNet`, or any network of the
:class:`~neuroadda.models.checkpoint.Backbone` record) trained with the masked affinity loss."""

from __future__ import annotations

import math
from functools import partial

import pytorch_lightning as pl
import torch

from neuroadda.models.losses import affinity_loss
from neuroadda.models.unet import AffinityUNet


class AffinityModule(pl.LightningModule):
    """Args: the network (an ``nn.Module``: (B, 1, z, y, x) -> affinity logits) or ``AffinityUNet`` kwargs to
    build one, loss settings, optimiser settings."""

    def __init__(self, net: dict | torch.nn.Module, bce: str = "balanced", dice_weight: float = 0.0,
                 dice_target: str = "boundary", aux_weight: float = 1.0, lr: float = 1e-3, weight_decay: float = 1e-4,
                 max_steps: int = 1000, schedule: str = "warmup-cosine"):
        super().__init__()
        self.save_hyperparameters(ignore=["net"] if isinstance(net, torch.nn.Module) else None)
        self.net = net if isinstance(net, torch.nn.Module) else AffinityUNet(**net)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _loss(self, batch) -> torch.Tensor:
        logits = self(batch["image"])  # eval mode (validation) returns the 3 nearest-neighbour channels only
        c = logits.shape[1]
        h = self.hparams
        return affinity_loss(logits, batch["affs"][:, :c], batch["mask"][:, :c], bce=h.bce, dice_weight=h.dice_weight,
                             dice_target=h.dice_target, aux_weight=h.aux_weight)

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["image"].shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("val/loss", loss, prog_bar=True, batch_size=batch["image"].shape[0])

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        factor = partial(warmup_cosine, total=self.hparams.max_steps) if self.hparams.schedule == "warmup-cosine" \
            else (lambda step: 1.0)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def warmup_cosine(step: int, total: int, warmup_frac: float = 0.05) -> float:
    """LR factor: linear warm-up over the first 5% of steps, then cosine decay to 5% of the peak."""
    warm = max(1, int(total * warmup_frac))
    if step < warm:
        return (step + 1) / warm
    t = min(1.0, (step - warm) / max(1, total - warm))
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t))
