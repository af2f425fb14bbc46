"""Per-candidate uncertainty of a trained affinity network, and per-candidate bottleneck embeddings.

TTA approximation: after un-doing a flip (or in-plane rot90) of the input on the prediction, the affinity
of voxel v along a flipped axis really belongs to v + e_axis (the edge to the *lower* neighbour becomes the
edge to the upper one). We ignore this one-voxel shift: the per-voxel variance is taken between slightly
misaligned edges. The y/x channel exchange caused by an odd rot90 *is* undone exactly.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from neuroadda.data.regions import box_shape
from neuroadda.selection.embed import pool_features

METHODS = ("entropy", "tta", "mc_dropout")
_EPS = 1e-6


def binary_entropy(p):
    """Entropy in bits of Bernoulli(p), elementwise; p is clipped to [1e-6, 1 - 1e-6] (finite at 0 and 1)."""
    if isinstance(p, torch.Tensor):
        q = p.clamp(_EPS, 1 - _EPS)
        return -(q * torch.log2(q) + (1 - q) * torch.log2(1 - q))
    q = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return -(q * np.log2(q) + (1 - q) * np.log2(1 - q))


def _raw(vol):
    """Accept a Volume (``read``) or a LabelledVolume (its ``raw``)."""
    return vol if hasattr(vol, "read") else vol.raw


def _padded_inputs(vol_raw, boxes, normalizer, stride) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """Read, normalize and reflect-pad a batch of equally shaped boxes -> ((B, 1, z, y, x), unpadded shape).

    ``vol_raw.read`` may return another shape than the box's (a :class:`neuroadda.data.volume.GridView`)."""
    arrs = []
    shape = None
    for box in boxes:
        a = np.asarray(normalizer(vol_raw.read(box)), dtype=np.float32)
        shape = shape or a.shape
        pad = [(0, (-n) % s) for n, s in zip(a.shape, stride)]
        if any(p for _, p in pad):
            mode = "reflect" if min(a.shape) > 1 else "edge"  # numpy's reflect needs >= 2 voxels per axis
            a = np.pad(a, pad, mode=mode)
        arrs.append(a)
    return torch.from_numpy(np.ascontiguousarray(np.stack(arrs)[:, None])), shape


def _groups(candidates, batch_size: int):
    """Batches of indices whose boxes share a shape (so they stack), in candidate order within each shape."""
    by_shape: dict[tuple, list[int]] = {}
    for i, box in enumerate(candidates):
        by_shape.setdefault(box_shape(box), []).append(i)
    for idx in by_shape.values():
        for k in range(0, len(idx), batch_size):
            yield idx[k:k + batch_size]


def _tta_transforms(padded_shape, stride, n: int):
    """``n`` (flip dims, rot90 k) pairs, identity first; rot90 in (y, x) only when y, x sizes and strides match."""
    z, y, x = -3, -2, -1
    if padded_shape[1] == padded_shape[2] and stride[1] == stride[2]:
        ts = [((), 0), ((x,), 0), ((y,), 0), ((), 1), ((z,), 0), ((y, x), 0), ((), 3), ((z,), 1)]
    else:
        ts = [(), (x,), (y,), (z,), (y, x), (z, x), (z, y), (z, y, x)]
        ts = [(f, 0) for f in ts]
    return ts[:n]


def _apply(t: torch.Tensor, flips, k: int) -> torch.Tensor:
    if flips:
        t = torch.flip(t, flips)
    return torch.rot90(t, k, dims=(-2, -1)) if k % 4 else t


def _invert(pred: torch.Tensor, flips, k: int) -> torch.Tensor:
    """Undo :func:`_apply` on (B, 3, z, y, x) affinities (rot90 by an odd k swaps the y and x channels)."""
    if k % 4:
        pred = torch.rot90(pred, -k, dims=(-2, -1))
        if k % 2:
            pred = pred[:, [0, 2, 1]]
    return torch.flip(pred, flips) if flips else pred


def _has_dropout(net: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in net.modules())


def _progress(it, total, on: bool, desc: str):
    if not on:
        return it
    try:
        from tqdm import tqdm
    except ImportError:
        return it
    return tqdm(it, total=total, desc=desc)


def score_candidates(net, vol_raw, candidates, normalizer, *, method: str = "entropy", tta: int = 4,
                     mc_samples: int = 8, batch_size: int = 2, device=None, progress: bool = False) -> np.ndarray:
    """Uncertainty of ``net`` on each candidate box -> (n_candidates,) float64 (higher = more uncertain).

    Each box is read from ``vol_raw`` (a Volume or a LabelledVolume), normalized, reflect-padded to a multiple
    of ``net.total_stride``, predicted under ``torch.inference_mode`` and cropped back. Methods:

    - ``"entropy"``: mean binary entropy (bits, in [0, 1]) of the sigmoid affinities over voxels and channels.
    - ``"tta"``: per-voxel variance of the sigmoid affinities across ``tta`` (2-8) flips / in-plane rot90s,
      each undone on the prediction (see the module note on the one-voxel shift), mean over channels and voxels.
    - ``"mc_dropout"``: the same variance across ``mc_samples`` passes with only the dropout layers in train
      mode (the net must have dropout > 0).

    The network's train/eval flags are restored on return.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "tta" and not 2 <= int(tta) <= 8:
        raise ValueError(f"tta must be between 2 and 8 augmentations, got {tta}")
    if method == "mc_dropout":
        if int(mc_samples) < 2:
            raise ValueError(f"mc_samples must be >= 2, got {mc_samples}")
        if not _has_dropout(net):
            raise ValueError("mc_dropout needs a network with dropout layers: train it with model.dropout > 0")
    candidates = list(candidates)
    vol_raw, stride = _raw(vol_raw), tuple(net.total_stride)
    dev = torch.device(device) if device is not None else next(net.parameters()).device
    modes = {m: m.training for m in net.modules()}
    net.to(dev).eval()
    if method == "mc_dropout":
        for m in net.modules():
            if isinstance(m, nn.modules.dropout._DropoutNd):
                m.train()
    out = np.zeros(len(candidates), dtype=np.float64)
    try:
        with torch.inference_mode():
            groups = list(_groups(candidates, max(1, int(batch_size))))
            for idx in _progress(groups, len(groups), progress, f"score ({method})"):
                x, (z, y, w) = _padded_inputs(vol_raw, [candidates[i] for i in idx], normalizer, stride)
                x = x.to(dev)
                crop = (slice(None), slice(None), slice(0, z), slice(0, y), slice(0, w))
                if method == "entropy":
                    p = torch.sigmoid(net(x).float())[crop]
                    s = binary_entropy(p.double()).flatten(1).mean(1)
                else:
                    if method == "tta":
                        preds = [_invert(torch.sigmoid(net(_apply(x, f, k)).float()), f, k)[crop]
                                 for f, k in _tta_transforms(x.shape[2:], stride, int(tta))]
                    else:
                        preds = [torch.sigmoid(net(x).float())[crop] for _ in range(int(mc_samples))]
                    s = torch.stack(preds).double().var(0, unbiased=False).flatten(1).mean(1)
                out[idx] = s.cpu().numpy()
    finally:
        for m, mode in modes.items():
            m.train(mode)
    return out


def embed_candidates(net, vol_raw, candidates, normalizer, *, batch_size: int = 2, device=None,
                     pooling: str = "mean") -> np.ndarray:
    """Global-average-pooled bottleneck (``net.encode``) of each candidate -> (n, C) float64.

    Boxes are reflect-padded to a multiple of ``net.total_stride`` like :func:`score_candidates`."""
    candidates = list(candidates)
    vol_raw, stride = _raw(vol_raw), tuple(net.total_stride)
    dev = torch.device(device) if device is not None else next(net.parameters()).device
    modes = {m: m.training for m in net.modules()}
    net.to(dev).eval()
    rows: dict[int, np.ndarray] = {}
    try:
        with torch.inference_mode():
            for idx in _groups(candidates, max(1, int(batch_size))):
                x, _ = _padded_inputs(vol_raw, [candidates[i] for i in idx], normalizer, stride)
                feats = pool_features(net.encode(x.to(dev)), pooling).double().cpu().numpy()
                rows.update(zip(idx, feats))
    finally:
        for m, mode in modes.items():
            m.train(mode)
    if not rows:
        return np.zeros((0, 0))
    return np.stack([rows[i] for i in range(len(candidates))])
