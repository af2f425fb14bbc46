"""Masked affinity losses (pure torch functions, testable alone).

All take ``logits``, ``target`` and ``mask`` of shape (B, C, z, y, x), target and mask in {0, 1}; voxels with
mask 0 are ignored, and a channel without any masked-in voxel is left out of the channel mean. Every reduction
is a tensor operation (no Python branch on a tensor value), so nothing waits for the device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_DIMS = (0, 2, 3, 4)  # everything but the channel


def _channel_mean(per_channel: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``per_channel`` (C,) over the channels where ``valid`` (C,) is true; 0 (with a gradient) if none."""
    valid = valid.to(per_channel.dtype)
    return (per_channel * valid).sum() / valid.sum().clamp_min(1.0)


def masked_bce(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, *,
               balanced: bool = True) -> torch.Tensor:
    """Binary cross-entropy over voxels with ``mask`` = 1, per affinity channel, averaged over channels.

    ``balanced``: positives and negatives weigh 1/2 each within every channel (class-balanced), so thin
    boundaries (few negatives) are not drowned by object interiors; a channel with only one class present
    uses that class alone. Plain mean over the masked voxels otherwise. Returns a scalar."""
    per_voxel = F.binary_cross_entropy_with_logits(logits, target, reduction="none") * mask
    n = mask.sum(_DIMS)
    if not balanced:
        return _channel_mean(per_voxel.sum(_DIMS) / n.clamp_min(1.0), n > 0)
    pos_w, neg_w = mask * target, mask * (1 - target)
    n_pos, n_neg = pos_w.sum(_DIMS), neg_w.sum(_DIMS)
    l_pos = (per_voxel * pos_w).sum(_DIMS) / n_pos.clamp_min(1.0)
    l_neg = (per_voxel * neg_w).sum(_DIMS) / n_neg.clamp_min(1.0)
    has_pos, has_neg = (n_pos > 0).to(logits.dtype), (n_neg > 0).to(logits.dtype)
    per_channel = (l_pos * has_pos + l_neg * has_neg) / (has_pos + has_neg).clamp_min(1.0)
    return _channel_mean(per_channel, n > 0)


def masked_dice(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, *, on: str = "affinity",
                eps: float = 1e-6) -> torch.Tensor:
    """Soft Dice loss per channel inside ``mask``, averaged over channels: ``1 - 2|p t| / (|p|^2 + |t|^2)``
    with p = sigmoid(logits) (``on="affinity"``: the class "same object", as torch-em trains affinities) or
    p = 1 - sigmoid(logits), t = 1 - target (``on="boundary"``). Squared norms in the denominator, as in
    torch-em's dice score and Milletari et al. 2016."""
    p = torch.sigmoid(logits)
    t = target
    if on == "boundary":
        p, t = 1 - p, 1 - t
    elif on != "affinity":
        raise ValueError(f"dice target must be 'affinity' or 'boundary', got {on!r}")
    p, t = p * mask, t * mask
    inter = (p * t).sum(_DIMS)
    denom = (p * p).sum(_DIMS) + (t * t).sum(_DIMS)
    return _channel_mean(1 - 2 * inter / denom.clamp_min(eps), mask.sum(_DIMS) > 0)


def masked_boundary_dice(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                         eps: float = 1.0) -> torch.Tensor:
    """Soft Dice loss on boundaries (1 - affinity) inside ``mask``, pooled over channels; -> scalar."""
    p = (1 - torch.sigmoid(logits)) * mask
    t = (1 - target) * mask
    inter = (p * t).sum()
    return 1 - (2 * inter + eps) / (p.sum() + t.sum() + eps)


def affinity_loss(logits, target, mask, *, bce: str = "balanced", dice_weight: float = 0.0,
                  dice_target: str = "boundary", aux_weight: float = 1.0, n_main: int = 3) -> torch.Tensor:
    """The training loss: (balanced / plain / no) masked BCE + ``dice_weight`` x Dice.

    ``dice_target``: "boundary" (the pooled boundary Dice of :func:`masked_boundary_dice`) or "affinity"
    (per-channel Dice on affinities, :func:`masked_dice`). Channels beyond the first ``n_main`` (long-range
    auxiliary affinities) enter with weight ``aux_weight`` relative to the nearest-neighbour ones."""
    if logits.shape[1] > n_main:
        main = affinity_loss(logits[:, :n_main], target[:, :n_main], mask[:, :n_main], bce=bce,
                             dice_weight=dice_weight, dice_target=dice_target, n_main=n_main)
        aux = affinity_loss(logits[:, n_main:], target[:, n_main:], mask[:, n_main:], bce=bce,
                            dice_weight=dice_weight, dice_target=dice_target, n_main=logits.shape[1])
        return (main + aux_weight * aux) / (1 + aux_weight)
    loss = logits.sum() * 0.0
    if bce != "none":
        loss = loss + masked_bce(logits, target, mask, balanced=(bce == "balanced"))
    if dice_weight > 0:
        dice = masked_dice(logits, target, mask, on="affinity") if dice_target == "affinity" \
            else masked_boundary_dice(logits, target, mask)
        loss = loss + dice_weight * dice
    return loss
