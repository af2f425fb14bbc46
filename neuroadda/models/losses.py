"""Masked affinity losses (pure torch functions, testable alone)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_bce(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, *, balanced: bool = True) -> torch.Tensor:
    """Binary cross-entropy over voxels with ``mask`` = 1, per affinity channel, averaged over channels.

    Args:
        logits, target, mask: (B, C, z, y, x); target and mask in {0, 1}.
        balanced: weigh positives and negatives 1/2 each within every channel (class-balanced), so thin
            boundaries (few negatives) are not drowned by object interiors; plain mean otherwise.

    Returns: scalar loss; channels without any masked-in voxel are skipped (0 if none is left).
    """
    per_voxel = F.binary_cross_entropy_with_logits(logits, target, reduction="none") * mask
    terms = []
    for c in range(logits.shape[1]):
        m = mask[:, c]
        if m.sum() == 0:
            continue
        if not balanced:
            terms.append(per_voxel[:, c].sum() / m.sum())
            continue
        pos, neg = m * target[:, c], m * (1 - target[:, c])
        parts = [(per_voxel[:, c] * w).sum() / w.sum() for w in (pos, neg) if w.sum() > 0]
        terms.append(sum(parts) / len(parts))
    return torch.stack(terms).mean() if terms else logits.sum() * 0.0


def masked_boundary_dice(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft Dice loss on boundaries (1 - affinity) inside ``mask``; (B, C, z, y, x) -> scalar."""
    p = (1 - torch.sigmoid(logits)) * mask
    t = (1 - target) * mask
    inter = (p * t).sum()
    return 1 - (2 * inter + eps) / (p.sum() + t.sum() + eps)


def affinity_loss(logits, target, mask, *, bce: str = "balanced", dice_weight: float = 0.0) -> torch.Tensor:
    """The training loss: (balanced) masked BCE + ``dice_weight`` x boundary Dice."""
    loss = masked_bce(logits, target, mask, balanced=(bce == "balanced"))
    if dice_weight > 0:
        loss = loss + dice_weight * masked_boundary_dice(logits, target, mask)
    return loss
