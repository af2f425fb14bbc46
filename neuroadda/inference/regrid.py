"""Bring a prediction made on the grid where a target met a backbone back to the target's own grid.

Affinities (c, z, y, x) stored at one voxel size are resampled channel by channel to another, one output block
at a time (each block reads only the input region it needs), so memory is bounded by the block, not the volume.
Intensities use :func:`neuroadda.data.volume.resize` (area averaging where the grid shrinks, linear where it
grows); uint8 outputs are rounded.
"""

from __future__ import annotations

import itertools

import numpy as np

from neuroadda.data.volume import Volume

BLOCK = (64, 256, 256)


class _Channel:
    """One channel of a (c, z, y, x) array as a lazy (z, y, x) reader."""

    def __init__(self, arr, c: int):
        self._a, self._c = arr, c
        self.shape, self.dtype, self.ndim, self.attrs = tuple(arr.shape[1:]), np.dtype(arr.dtype), 3, {}

    def __getitem__(self, idx) -> np.ndarray:
        return np.asarray(self._a[(self._c,) + tuple(idx)])


def regrid(src, voxel_size, out, out_voxel_size, *, block=BLOCK) -> None:
    """Resample ``src`` (c, z, y, x) at ``voxel_size`` nm into ``out`` (c, Z, Y, X) at ``out_voxel_size`` nm.

    ``out``'s spatial shape is the target's own (it may differ by a voxel from the rounded grid shape: the
    resampled view is cropped or edge-padded to it)."""
    shape = tuple(int(n) for n in out.shape[1:])
    dtype = np.dtype(out.dtype)
    for c in range(int(src.shape[0])):
        view = Volume(_Channel(src, c), "prediction", voxel_size, resample_to=out_voxel_size)
        for origin in itertools.product(*(range(0, n, b) for n, b in zip(shape, block))):
            box = tuple(slice(o, min(o + b, n)) for o, b, n in zip(origin, block, shape))
            inside = tuple(slice(min(s.start, m - 1), min(s.stop, m)) for s, m in zip(box, view.shape))
            part = view.read(inside)
            pad = [(0, (s.stop - s.start) - p) for s, p in zip(box, part.shape)]
            part = np.pad(part, pad, mode="edge") if any(p for _, p in pad) else part
            if dtype == np.uint8 and part.dtype != np.uint8:
                part = np.clip(np.rint(part), 0, 255)
            out[(c,) + box] = part.astype(dtype, copy=False)
