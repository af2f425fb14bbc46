"""Patch embeddings from a backbone's encoder, computed in a Lightning predict loop (GPU when present)."""

from __future__ import annotations

import warnings

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from neuroadda.data.patches import RawPatchDataset

POOLINGS = ("mean", "max", "meanmax", "meanstd")


def pool_features(feats: torch.Tensor, pooling: str = "mean") -> torch.Tensor:
    """(B, C, z, y, x) activations -> (B, C) ("mean", "max") or (B, 2C) ("meanmax", "meanstd").

    "meanstd" appends each channel's spatial standard deviation: a second-order (texture) statistic."""
    flat = feats.flatten(2).float()
    if pooling == "mean":
        return flat.mean(-1)
    if pooling == "max":
        return flat.amax(-1)
    if pooling == "meanmax":
        return torch.cat([flat.mean(-1), flat.amax(-1)], 1)
    if pooling == "meanstd":
        return torch.cat([flat.mean(-1), flat.std(-1)], 1)
    raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")


class EmbedModule(pl.LightningModule):
    """Thin wrapper: ``predict_step`` -> pooled activations of encoder ``levels`` (default: bottleneck only)."""

    def __init__(self, net, pooling: str = "mean", levels=(-1,)):
        super().__init__()
        self.net, self.pooling, self.levels = net, pooling, tuple(levels)

    def predict_step(self, batch, batch_idx):
        feats = self.net.encoder_features(batch)
        return torch.cat([pool_features(feats[i], self.pooling) for i in self.levels], 1).cpu()


def embed_patches(net, vol, origins, patch_size, normalizer, *, pooling: str = "mean", levels=(-1,),
                  batch_size: int = 8, progress: bool = True, desc: str = "embed") -> np.ndarray:
    """Embed the patches of ``vol`` at ``origins`` -> (N, D) float64 (D = pooled channels of ``levels``)."""
    loader = DataLoader(RawPatchDataset(vol, origins, patch_size, normalizer), batch_size=batch_size)
    trainer = pl.Trainer(accelerator="auto", devices=1, logger=False, enable_progress_bar=progress,
                         enable_model_summary=False, enable_checkpointing=False)
    net.eval()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        out = trainer.predict(EmbedModule(net, pooling, levels), loader)
    return torch.cat(out).double().numpy()


def standardize(blocks: list[np.ndarray], *, pca: int | None = None) -> list[np.ndarray]:
    """Put embeddings from one backbone's space on a common scale.

    Each feature is z-scored with the mean and sd of all ``blocks`` pooled (features with sd ~0 are dropped);
    with ``pca`` the pooled, standardized sample is projected on its first ``pca`` principal axes.
    Returns the blocks in the same order."""
    pooled = np.concatenate(blocks, 0)
    mu, sd = pooled.mean(0), pooled.std(0)
    keep = sd > 1e-8 * max(1.0, float(sd.max(initial=0.0)))
    z = [(b[:, keep] - mu[keep]) / sd[keep] for b in blocks]
    if pca:
        allz = np.concatenate(z, 0)
        _, _, vt = np.linalg.svd(allz - allz.mean(0), full_matrices=False)
        z = [b @ vt[: min(pca, vt.shape[0])].T for b in z]
    return z
