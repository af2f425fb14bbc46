"""The candidate pool: non-overlapping boxes tiling a volume, minus a held-out evaluation slab."""

from __future__ import annotations

import itertools

import numpy as np

from neuroadda.data.regions import Box, box_shape, split_regions


def candidate_pool(shape, candidate_size, *, holdout_fraction: float = 0.4,
                   holdout_axis: int | None = None) -> tuple[list[Box], Box]:
    """Split (z, y, x) ``shape`` into candidate boxes and a held-out evaluation slab.

    The holdout is the last ``holdout_fraction`` of ``holdout_axis`` (default: the longest axis, the first one
    on ties, as :func:`neuroadda.data.regions.split_regions`). The rest is tiled from the origin into
    non-overlapping boxes of ``candidate_size`` in C order (z slowest); partial tiles at the edges are dropped,
    so no candidate intersects the holdout. ``holdout_fraction`` = 0 gives an empty holdout slice at the end.

    Returns (candidates, holdout).
    """
    shape = tuple(int(n) for n in shape)
    size = tuple(int(c) for c in candidate_size)
    if len(shape) != 3 or len(size) != 3:
        raise ValueError(f"shape and candidate_size must be (z, y, x), got {shape} and {size}")
    if min(size) < 1 or min(shape) < 1:
        raise ValueError(f"shape {shape} and candidate_size {size} must be positive")
    if not 0.0 <= holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}")
    axis = int(np.argmax(shape)) if holdout_axis is None else int(holdout_axis)
    if axis not in (0, 1, 2):
        raise ValueError(f"holdout_axis must be 0, 1 or 2, got {holdout_axis}")
    train, held = split_regions(shape, holdout_fraction, axis)
    holdout = held if held is not None else tuple(slice(n, n) if i == axis else slice(0, n)
                                                  for i, n in enumerate(shape))
    avail = list(box_shape(train))
    starts = [range(0, a - c + 1, c) for a, c in zip(avail, size)]
    cands = [tuple(slice(o, o + c) for o, c in zip(origin, size)) for origin in itertools.product(*starts)]
    if not cands:
        raise ValueError(f"no candidate of size {size} fits in the non-held-out region {tuple(avail)} "
                         f"of volume {shape} (holdout_fraction={holdout_fraction} on axis {axis})")
    return cands, tuple(holdout)
