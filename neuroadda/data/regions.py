"""Boxes in a (z, y, x) voxel grid, written once: a box is a tuple of three slices with explicit bounds.

Everything that cuts a volume into regions (training box and validation slab, candidate tiles, random patch
origins, capped calibration regions) and every JSON round trip of a box goes through here.
"""

from __future__ import annotations

import numpy as np

Box = tuple[slice, slice, slice]


def full_box(shape) -> Box:
    """The whole of a (z, y, x) ``shape``."""
    return tuple(slice(0, int(n)) for n in shape)


def box_shape(box: Box) -> tuple[int, int, int]:
    return tuple(int(s.stop - s.start) for s in box)


def box_to_json(box: Box) -> list[list[int]]:
    """[[z0, z1], [y0, y1], [x0, x1]]."""
    return [[int(s.start), int(s.stop)] for s in box]


def box_from_json(rows) -> Box:
    return tuple(slice(int(a), int(b)) for a, b in rows)


def normalize_box(box: Box, shape=None) -> Box:
    """Slices with explicit non-negative starts/stops (``shape`` resolves None/negative bounds)."""
    if shape is not None:
        return tuple(slice(*s.indices(int(n))[:2]) for s, n in zip(box, shape))
    return tuple(slice(s.start or 0, s.stop) for s in box)


def format_box(box: Box) -> str:
    """'[z0:z1, y0:y1, x0:x1]' for messages."""
    return "[" + ", ".join(f"{s.start}:{s.stop}" for s in box) + "]"


def split_regions(shape, val_fraction: float, axis: int | None = None) -> tuple[Box, Box | None]:
    """Split (z, y, x) ``shape`` into a training box and a held-out slab: the last ``val_fraction`` of ``axis``
    (default: the longest axis, the first on ties); a positive fraction holds out at least one plane.
    ``val_fraction`` = 0 gives no held-out box."""
    full = full_box(shape)
    if val_fraction <= 0:
        return full, None
    axis = int(np.argmax(shape)) if axis is None else int(axis)
    cut = min(int(round(shape[axis] * (1 - val_fraction))), shape[axis] - 1)
    train, val = list(full), list(full)
    train[axis], val[axis] = slice(0, cut), slice(cut, shape[axis])
    return tuple(train), tuple(val)


def random_origins(box: Box, patch_size, n: int, seed: int) -> list[tuple[int, int, int]]:
    """``n`` random patch origins (z, y, x) inside ``box``, a deterministic function of ``seed``."""
    rng = np.random.default_rng(seed)
    for b, p in zip(box, patch_size):
        if b.stop - b.start < p:
            raise ValueError(f"patch {tuple(patch_size)} does not fit in region {box_to_json(box)}")
    return [tuple(int(rng.integers(b.start, b.stop - p + 1)) for b, p in zip(box, patch_size)) for _ in range(n)]


def cap_box(box: Box, max_voxels: int) -> Box:
    """Shrink ``box`` symmetrically (largest axis first) until it holds at most ``max_voxels``."""
    sizes = list(box_shape(box))
    while int(np.prod(sizes)) > max_voxels:
        i = int(np.argmax(sizes))
        sizes[i] = max(1, int(sizes[i] * 0.9))
    starts = [s.start + ((s.stop - s.start) - n) // 2 for s, n in zip(box, sizes)]
    return tuple(slice(a, a + n) for a, n in zip(starts, sizes))


def grow_box(box: Box, min_shape, shape) -> Box:
    """The smallest box holding ``box`` that is at least ``min_shape`` (z, y, x) wide on every axis where the
    volume ``shape`` allows, grown about its centre and shifted to stay inside the volume."""
    out = []
    for s, m, n in zip(box, min_shape, shape):
        size = min(max(s.stop - s.start, int(m)), int(n))
        start = s.start - (size - (s.stop - s.start)) // 2
        start = min(max(0, start), n - size)
        out.append(slice(start, start + size))
    return tuple(out)


def patch_boxes(origins, patch_size) -> list[Box]:
    """The boxes of patches of ``patch_size`` at ``origins``."""
    return [tuple(slice(int(o), int(o) + int(p)) for o, p in zip(org, patch_size)) for org in origins]

