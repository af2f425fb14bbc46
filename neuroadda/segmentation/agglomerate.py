"""Affinities -> segmentation with waterz (watershed fragments, then mean-affinity agglomeration).

Affinity convention, shared with :mod:`neuroadda.data.affinities` and checked against waterz's C++ source
(``basic_watershed.hpp``: ``negz = aff[0][z][y][x]``, ``posz = aff[0][z+1][y][x]``; ``region_graph.hpp`` pairs
``aff[d][p]`` with the voxel ``p - e_d``): channel c in (z, y, x) at voxel v is the affinity between v and
v - e_c. Threshold t merges regions while their edge score 1 - mean affinity is below t, so a higher threshold
gives fewer, larger segments.

waterz prints its progress with C++ ``std::cout`` on file descriptor 1 (and with Python ``print``); every call runs
inside :func:`silence_c_stdout` so that nothing reaches the CLI's stdout (which may carry JSON).
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import sys
from collections.abc import Iterable, Iterator

import numpy as np

from neuroadda.errors import InputError
from neuroadda.vocab import DEFAULT_FRAGMENTS, FRAGMENTS


class AffinityInputError(InputError, ValueError):
    """Affinities, fragments or thresholds that cannot be agglomerated."""


def _flush_c_stdio() -> None:
    """Flush C stdio buffers (std::cout is synced with them), so buffered output goes where fd 1 points now."""
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError, TypeError):  # no libc handle (e.g. Windows): nothing buffered we can reach
        pass


@contextlib.contextmanager
def silence_c_stdout() -> Iterator[None]:
    """Send everything written to file descriptor 1 (C, C++) and to ``sys.stdout`` to /dev/null; restore on exit."""
    with contextlib.suppress(AttributeError, ValueError):
        sys.stdout.flush()
    _flush_c_stdio()
    saved = os.dup(1)
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 1)
        finally:
            os.close(devnull)
        try:
            # waterz also print()s from Cython: silence sys.stdout too, in case it is not fd 1 (redirected, captured)
            with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
                yield
        finally:
            with contextlib.suppress(AttributeError, ValueError):
                sys.stdout.flush()
            _flush_c_stdio()
            os.dup2(saved, 1)
    finally:
        os.close(saved)


def _check_affs(affs: np.ndarray) -> np.ndarray:
    """(3, z, y, x) float32 C-contiguous affinities in [0, 1] (uint8 is divided by 255)."""
    affs = np.asarray(affs)
    if affs.ndim != 4 or affs.shape[0] != 3 or 0 in affs.shape:
        raise AffinityInputError(f"affinities must have shape (3, z, y, x) with z, y, x > 0, got {affs.shape}")
    if affs.dtype == np.uint8:
        return np.ascontiguousarray(affs, dtype=np.float32) / np.float32(255.0)
    if not np.issubdtype(affs.dtype, np.floating):
        raise AffinityInputError("affinities must be floating point in [0, 1] or uint8 (0-255), "
                                 f"got dtype {affs.dtype}")
    affs = np.ascontiguousarray(affs, dtype=np.float32)
    lo, hi = float(affs.min()), float(affs.max())
    if not (0.0 <= lo and hi <= 1.0):  # also catches NaN
        raise AffinityInputError(f"affinities must lie in [0, 1], got values in [{lo}, {hi}]")
    return affs


def _check_thresholds(thresholds: Iterable[float]) -> list[float]:
    try:
        ts = sorted(float(t) for t in thresholds)
    except (TypeError, ValueError) as e:
        raise AffinityInputError(f"thresholds must be numbers, got {thresholds!r}") from e
    if not ts or not all(math.isfinite(t) for t in ts):
        raise AffinityInputError(f"thresholds must be a non-empty list of finite numbers, got {thresholds!r}")
    return ts


def agglomerate(
    affs: np.ndarray,
    thresholds: Iterable[float],
    *,
    fragments: np.ndarray | None = None,
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(threshold, segmentation)`` for each threshold, in ascending order.

    Args:
        affs: (3, z, y, x) affinities, float in [0, 1] or uint8 (divided by 255).
        thresholds: any order; duplicates are kept (each yields its own copy).
        fragments: optional (z, y, x) fragments (supervoxels) to start from instead of waterz's watershed;
            0 is background.

    Each segmentation is an independent uint64 (z, y, x) array (waterz reuses one buffer); 0 = background.
    Inputs are validated on the call (ValueError / InputError), waterz runs lazily as the result is iterated.
    """
    import waterz  # compiled extension: imported on use, not with the package

    affs = _check_affs(affs)
    ts = _check_thresholds(thresholds)
    if fragments is not None:
        fragments = np.asarray(fragments)
        if fragments.shape != affs.shape[1:]:
            raise AffinityInputError(f"fragments must have shape {affs.shape[1:]}, got {fragments.shape}")
        if not np.issubdtype(fragments.dtype, np.integer) or (fragments.size and fragments.min() < 0):
            raise AffinityInputError(f"fragments must be non-negative integers, got dtype {fragments.dtype}")
        fragments = np.array(fragments, dtype=np.uint64, order="C", copy=True)  # waterz relabels it in place

    with silence_c_stdout():
        segmentations = waterz.agglomerate(affs, ts, fragments=fragments)
    return _run(segmentations, ts)


def _run(segmentations: Iterator[np.ndarray], ts: list[float]) -> Iterator[tuple[float, np.ndarray]]:
    try:
        for t in ts:
            # silence only while waterz runs: the caller may print between thresholds
            with silence_c_stdout():
                seg = next(segmentations)
                seg = np.array(seg, dtype=np.uint64, copy=True)
            yield t, seg
    finally:
        close = getattr(segmentations, "close", None)
        if close is not None:
            with silence_c_stdout():
                close()




def segment(affs: np.ndarray, threshold: float, *, fragments: str | np.ndarray | None = DEFAULT_FRAGMENTS,
            per_slice: bool = False) -> np.ndarray:
    """One uint64 (z, y, x) segmentation of ``affs`` at ``threshold`` (fragments as in :func:`segmentations`)."""
    return next(segmentations(affs, [threshold], fragments=fragments, per_slice=per_slice))[1]


def make_fragments(affs: np.ndarray, method: str, *, per_slice: bool = False) -> np.ndarray:
    """(z, y, x) uint64 fragments of (3, z, y, x) affinities by a named method (see :data:`FRAGMENTS`):
    "ascent" (the distance map of the predicted interiors climbed voxel by voxel, local enough for block-wise
    runs to reproduce it exactly, :mod:`.ascent`) or "watershed" (seeded watershed on the same map,
    :mod:`.fragments`); 2-D per slice with ``per_slice``."""
    if method == "watershed":
        from neuroadda.segmentation.fragments import watershed_fragments

        return watershed_fragments(_check_affs(affs), per_slice=per_slice)
    if method == "ascent":
        from neuroadda.segmentation.ascent import ascent_fragments

        return ascent_fragments(_check_affs(affs), per_slice=per_slice)
    raise ValueError(f"fragments must be one of {', '.join(FRAGMENTS)}, None or an array, got {method!r}")


def segmentations(affs: np.ndarray, thresholds: Iterable[float], *,
                  fragments: str | np.ndarray | None = DEFAULT_FRAGMENTS,
                  per_slice: bool = False) -> Iterator[tuple[float, np.ndarray]]:
    """:func:`agglomerate` starting from ``fragments``: a method name of :func:`make_fragments` (default
    :data:`DEFAULT_FRAGMENTS`), None (waterz's own initial watershed, slow on uncertain predictions) or a
    (z, y, x) array."""
    if isinstance(fragments, str):
        fragments = make_fragments(affs, fragments, per_slice=per_slice)
    return agglomerate(affs, thresholds, fragments=fragments)
