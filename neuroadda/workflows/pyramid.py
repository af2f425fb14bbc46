"""Multiscale pyramids for block-wise outputs: levels 1.. of an OME-Zarr image computed block by block on daisy
workers, each level from the one before (mean for affinities, mode for segmentations; :mod:`..data.pyramid`).

Levels follow :func:`neuroadda.data.grid.pyramid_factors` (2x steps until every axis is below 256 voxels; an
anisotropic z waits for the in-plane axes). A block is one 64^3 chunk of the level being written (so no two
workers write one chunk) and reads at most 128^3 voxels per channel of the level before: memory is bounded by
the block. Finished blocks are recorded like every stage, so a killed run resumes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import zarr

from neuroadda.data.grid import pyramid_factors
from neuroadda.data.ome import add_levels, read_image
from neuroadda.data.pyramid import downsample_mean, downsample_mode
from neuroadda.workflows.scheduler import Cluster, reset_stage, run_stage

CHUNK = 64
MAX_LEVELS = 16
MIN_SIZE = 256  # an axis is halved while it holds at least this many voxels


class _Downsample:
    """One block of level ``level``: read level ``level - 1`` under it, downsample by ``step``, write it."""

    def __init__(self, group: str, level: int, step, labels: bool):
        self.group, self.level, self.step, self.labels = group, int(level), tuple(int(s) for s in step), labels

    def __call__(self, info) -> None:
        src = zarr.open_array(os.path.join(self.group, str(self.level - 1)), mode="r")
        dst = zarr.open_array(os.path.join(self.group, str(self.level)), mode="r+")
        lead = (slice(None),) * (src.ndim - 3)
        read = tuple(slice(s.start * f, min(n, s.stop * f)) for s, f, n in zip(info.box, self.step, src.shape[-3:]))
        block = np.asarray(src[lead + read])
        fn = downsample_mode if self.labels else downsample_mean
        dst[lead + info.box] = fn(block, self.step, info.box_shape)


def stage_names(name: str) -> list[str]:
    return [f"{name}-s{k}" for k in range(1, MAX_LEVELS)]


def reset_pyramid(work_dir: Path, name: str) -> None:
    """Forget the finished blocks of every level (level 0 was rewritten)."""
    for stage in stage_names(name):
        reset_stage(work_dir, stage)


def write_pyramid(group: str | Path, *, labels: bool, work_dir: Path, cluster: Cluster, name: str,
                  progress: bool = True) -> int:
    """Add levels 1.. to the OME-Zarr image at ``group`` (level 0 written) block by block; returns the number of
    levels, level 0 included."""
    group = os.fspath(Path(group).resolve())
    levels, attrs = read_image(zarr.open_group(group, mode="r"), group)
    base = levels[0][0]
    shape = tuple(int(n) for n in base.shape[-3:])
    factors = pyramid_factors(shape, attrs.get("voxel_size_nm") or (1.0, 1.0, 1.0), min_size=MIN_SIZE)[:MAX_LEVELS]
    if len(factors) == 1:
        return 1
    arrays = add_levels(group, factors, chunks=(CHUNK,) * 3)
    for k, arr in enumerate(arrays, start=1):
        step = tuple(a // b for a, b in zip(factors[k], factors[k - 1]))
        level_shape = tuple(int(n) for n in arr.shape[-3:])
        block = tuple(int(c) for c in arr.chunks[-3:])
        run_stage(stage_names(name)[k - 1], level_shape, block, _Downsample(group, k, step, labels),
                  work_dir=work_dir, cluster=cluster, progress=progress)
    return len(factors)
