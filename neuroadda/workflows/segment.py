"""``neuroadda segment``: affinities zarr -> waterz segmentation zarr (uint64, z, y, x)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from neuroadda.data.io import open_array, split_spec
from neuroadda.errors import InputError
from neuroadda.inference.blockwise import finalize_zarr, tmp_path_for
from neuroadda.vocab import DEFAULT_FRAGMENTS, TWO_D


def write_zarr(path: str | Path, data: np.ndarray, attrs: dict, chunks=(64, 64, 64)) -> Path:
    """Write ``data`` as a zarr v3 array at ``path`` atomically (temp folder, then rename)."""
    tmp = tmp_path_for(path)
    arr = zarr.create_array(store=tmp, shape=data.shape, dtype=data.dtype, overwrite=True, zarr_format=3,
                            chunks=tuple(min(c, n) for c, n in zip(chunks, data.shape)), attributes=attrs)
    arr[...] = data
    finalize_zarr(tmp, path)
    return Path(path)


def open_affinities(spec: str, threshold: float | None = None):
    """(the (3, z, y, x) affinity array at ``spec``, the threshold to use): ``threshold`` or the one
    ``neuroadda predict`` recorded. One-line InputError for a wrong shape or dtype, no threshold, or one
    outside (0, 1) — before any work."""
    affs = open_array(*split_spec(str(spec)))
    shape = tuple(int(s) for s in affs.shape)
    if len(shape) != 4 or shape[0] != 3 or min(shape) < 1:
        raise InputError(f"{spec}: affinities must be (3, z, y, x), got shape {shape}")
    if not (np.dtype(affs.dtype) == np.uint8 or np.issubdtype(affs.dtype, np.floating)):
        raise InputError(f"{spec}: affinities must be float in [0, 1] or uint8, got dtype {affs.dtype}")
    if threshold is None:
        threshold = affs.attrs.get("threshold")
        if threshold is None:
            raise InputError(f"{spec}: no threshold recorded by 'neuroadda predict'; give --threshold")
    if not 0.0 < float(threshold) < 1.0:
        raise InputError(f"threshold must be in (0, 1), got {threshold}")
    return affs, float(threshold)


def segment_zarr(affinities: str | Path, out: str | Path, *, threshold: float | None = None,
                 fragments: str | None = DEFAULT_FRAGMENTS) -> tuple[Path, float]:
    """Agglomerate the (3, z, y, x) affinities at ``affinities`` (threshold from its attrs if not given) from
    ``fragments`` (a method of :func:`..segmentation.agglomerate.make_fragments`, or None: waterz's own)."""
    from neuroadda.segmentation.agglomerate import segment

    affs, threshold = open_affinities(str(affinities), threshold)
    data = np.asarray(affs[(slice(None),) * 4])
    seg = segment(data, float(threshold), fragments=fragments,
                  per_slice=affs.attrs.get("labels_kind") == TWO_D)
    attrs = {k: affs.attrs[k] for k in ("voxel_size_nm", "input", "checkpoint", "labels_kind", "learned")
             if k in affs.attrs}
    attrs.update({"threshold": float(threshold), "affinities": str(affinities), "fragments": fragments or "waterz"})
    return write_zarr(out, seg, attrs), float(threshold)
