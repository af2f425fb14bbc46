"""The candidate pool: non-overlapping boxes tiling a volume, minus a held-out evaluation slab, and a reproducible,
spatially stratified subsample of it for volumes whose pool is too large to score whole."""

from __future__ import annotations

import numpy as np

from neuroadda.data.regions import Box, box_shape, split_regions


def pool_origins(shape, candidate_size, *, holdout_fraction: float = 0.4,
                 holdout_axis: int | None = None) -> tuple[np.ndarray, Box]:
    """(origins (N, 3) int64 of the candidates in C order (z slowest), held-out slab) of :func:`candidate_pool`,
    without building one box per candidate (a 4096^3 volume has ~400,000)."""
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
    starts = [np.arange(0, a - c + 1, c, dtype=np.int64) for a, c in zip(avail, size)]
    if not all(len(s) for s in starts):
        raise ValueError(f"no candidate of size {size} fits in the non-held-out region {tuple(avail)} "
                         f"of volume {shape} (holdout_fraction={holdout_fraction} on axis {axis})")
    grid = np.meshgrid(*starts, indexing="ij")
    return np.stack([g.ravel() for g in grid], axis=1), tuple(holdout)


def boxes_at(origins: np.ndarray, candidate_size) -> list[Box]:
    """The candidate boxes of ``candidate_size`` at (N, 3) ``origins``."""
    return [tuple(slice(int(o), int(o) + int(c)) for o, c in zip(org, candidate_size)) for org in origins]


def candidate_pool(shape, candidate_size, *, holdout_fraction: float = 0.4,
                   holdout_axis: int | None = None) -> tuple[list[Box], Box]:
    """Split (z, y, x) ``shape`` into candidate boxes and a held-out evaluation slab.

    The holdout is the last ``holdout_fraction`` of ``holdout_axis`` (default: the longest axis, the first one
    on ties, as :func:`neuroadda.data.regions.split_regions`). The rest is tiled from the origin into
    non-overlapping boxes of ``candidate_size`` in C order (z slowest); partial tiles at the edges are dropped,
    so no candidate intersects the holdout. ``holdout_fraction`` = 0 gives an empty holdout slice at the end.

    Returns (candidates, holdout).
    """
    origins, holdout = pool_origins(shape, candidate_size, holdout_fraction=holdout_fraction,
                                    holdout_axis=holdout_axis)
    return boxes_at(origins, candidate_size), holdout


def _morton(cells: np.ndarray) -> np.ndarray:
    """Z-order (Morton) codes of (N, 3) non-negative integer cells: their bits interleaved, z highest."""
    code = np.zeros(len(cells), np.uint64)
    for bit in range(21):
        for axis in range(3):
            b = (cells[:, axis].astype(np.uint64) >> np.uint64(bit)) & np.uint64(1)
            code |= b << np.uint64(3 * bit + (2 - axis))
    return code


def stratified_subsample(origins: np.ndarray, candidate_size, max_candidates: int | None, seed: int) -> np.ndarray:
    """Indices (ascending) of at most ``max_candidates`` of the candidates at ``origins``: all of them when there
    are no more (None = no cap); else the candidates are ordered along the Z-order curve of their positions, cut
    into ``max_candidates`` runs of consecutive candidates (compact regions of the volume) and one is drawn from
    each run. A deterministic function of the pool, the cap and ``seed``; every part of the volume keeps its share."""
    n = len(origins)
    if max_candidates is None or n <= int(max_candidates):
        return np.arange(n)
    m = int(max_candidates)
    order = np.argsort(_morton(np.asarray(origins) // np.asarray(candidate_size, np.int64)), kind="stable")
    edges = (np.arange(m + 1, dtype=np.int64) * n) // m
    rng = np.random.default_rng([int(seed), 2**31 - 1])
    picks = edges[:-1] + (rng.random(m) * (edges[1:] - edges[:-1])).astype(np.int64)
    return np.sort(order[picks])
