"""Downsampling one block of a multiscale pyramid by integer factors: the mean for intensities and affinities, the
mode for labels (a label-preserving rule: every output id is one of its window's ids, so no level invents one).

Windows are aligned with the volume's origin (output voxel i covers input voxels [i * f, (i + 1) * f) on each
axis); a window cut by the volume's far face is completed by repeating its last voxels (edge padding).
"""

from __future__ import annotations

import numpy as np


def _windows(block: np.ndarray, factors, out_shape) -> np.ndarray:
    """(..., Z, Y, X) -> (..., Z, Y, X, fz * fy * fx): the voxels of each output voxel's window, edge-padded."""
    f = [int(v) for v in factors]
    lead = block.ndim - 3
    want = [int(n) * k for n, k in zip(out_shape, f)]
    pad = [(0, 0)] * lead + [(0, max(0, w - n)) for w, n in zip(want, block.shape[lead:])]
    if any(p for _, p in pad):
        block = np.pad(block, pad, mode="edge")
    block = block[(Ellipsis,) + tuple(slice(0, w) for w in want)]
    shape = block.shape[:lead] + tuple(x for n, k in zip(out_shape, f) for x in (int(n), k))
    w = block.reshape(shape)
    order = list(range(lead)) + [lead, lead + 2, lead + 4, lead + 1, lead + 3, lead + 5]
    return w.transpose(order).reshape(block.shape[:lead] + tuple(int(n) for n in out_shape) + (-1,))


def downsample_mean(block: np.ndarray, factors, out_shape) -> np.ndarray:
    """Window means of a (..., z, y, x) block -> (..., *out_shape), same dtype (integers rounded)."""
    m = _windows(block, factors, out_shape).mean(axis=-1, dtype=np.float64)
    if np.dtype(block.dtype).kind in "iu":
        info = np.iinfo(block.dtype)
        m = np.clip(np.rint(m), info.min, info.max)
    return m.astype(block.dtype)


def downsample_mode(block: np.ndarray, factors, out_shape) -> np.ndarray:
    """Window modes of a (z, y, x) label block -> out_shape, same dtype; ties go to the smallest id."""
    w = np.sort(_windows(block, factors, out_shape), axis=-1)
    counts = np.zeros(w.shape, np.uint8)
    for j in range(w.shape[-1]):
        counts += w == w[..., j:j + 1]
    pick = np.argmax(counts, axis=-1)  # the first of the most frequent in ascending order: the smallest id
    return np.take_along_axis(w, pick[..., None], axis=-1)[..., 0]
