"""OME-Zarr (NGFF 0.5, zarr v3) images through ome-zarr-py: written with a multiscale pyramid, read at any level.

Layout written by :func:`create_image`: a group with the multiscales metadata (``attrs["ome"]``: axes with
units, the ``scale`` transform = voxel size in nanometres, 1 for a channel axis) and the level-0 array at
``<group>/0``; :func:`add_levels` adds the coarser levels ``<group>/1``, ``<group>/2``, ... (each with its
scale and the translation that keeps voxel centres in place) to the metadata. neuroadda's own attributes
(threshold, checkpoint, ...) sit beside ``ome`` in the group attributes. napari (napari-ome-zarr) and
neuroglancer (``zarr3://``) open such a group directly.

:func:`read_image` takes any OME-Zarr image group (NGFF 0.4 on zarr v2, or 0.5 on v3): every dataset of the
first multiscale with its (z, y, x) voxel size relative to the first, and ``voxel_size_nm`` of the first from its
scale transform and the axis units.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import zarr

from neuroadda.errors import InputError

_NM_PER_UNIT = {"nanometer": 1.0, "micrometer": 1e3, "millimeter": 1e6, "angstrom": 0.1, "picometer": 1e-3,
                "meter": 1e9}


def is_ome_group(node: Any) -> bool:
    """True for a zarr group carrying OME multiscales metadata (v0.5 under ``ome``, v0.4 at the top)."""
    if not isinstance(node, zarr.Group):
        return False
    attrs = dict(node.attrs)
    return "multiscales" in attrs.get("ome", {}) or "multiscales" in attrs


def create_image(path: str | os.PathLike, shape: Sequence[int], dtype, *, voxel_size_nm: Sequence[float],
                 chunks: Sequence[int], channel_axis: bool = False, attrs: Mapping[str, Any] | None = None,
                 compressors=None) -> zarr.Array:
    """Create an empty OME-Zarr image at ``path`` (replacing one there) and return its level-0 array.

    ``shape`` is (z, y, x), or (c, z, y, x) with ``channel_axis``; ``voxel_size_nm`` is (z, y, x)."""
    from ome_zarr.writer import write_multiscales_metadata

    shape = tuple(int(s) for s in shape)
    spatial = [float(v) for v in voxel_size_nm]
    if len(spatial) != 3 or len(shape) != 3 + channel_axis:
        raise InputError(f"{path}: OME-Zarr image needs (z, y, x) voxel size and a {3 + channel_axis}-D shape, "
                         f"got {spatial} and {shape}")
    group = zarr.open_group(os.fspath(path), mode="w", zarr_format=3)
    axes = [{"name": a, "type": "space", "unit": "nanometer"} for a in "zyx"]
    scale = spatial
    if channel_axis:
        axes, scale = [{"name": "c", "type": "channel"}] + axes, [1.0] + spatial
    kwargs = {} if compressors is None else {"compressors": compressors}
    arr = group.create_array("0", shape=shape, chunks=tuple(int(c) for c in chunks), dtype=np.dtype(dtype),
                             fill_value=0, dimension_names=[a["name"] for a in axes], **kwargs)
    write_multiscales_metadata(group, datasets=[{"path": "0", "coordinateTransformations": [
        {"type": "scale", "scale": scale}]}], axes=axes, name=os.path.basename(os.fspath(path).rstrip("/")))
    if attrs:
        group.attrs.update({k: v for k, v in attrs.items() if k != "ome"})
    return arr


def read_image(group: zarr.Group, where: str) -> tuple[list[tuple[zarr.Array, tuple]], dict]:
    """([(level array, (z, y, x) voxel size relative to level 0)], attributes) of an OME-Zarr image group, finest
    level first; attributes hold the group's own keys plus ``voxel_size_nm`` (z, y, x) of level 0 from its scale
    transform when the units are known lengths."""
    attrs = dict(group.attrs)
    meta = attrs.get("ome", attrs)
    try:
        ms = meta["multiscales"][0]
        datasets = list(ms["datasets"])
        arrays = [group[ds["path"]] for ds in datasets]
    except (KeyError, IndexError, TypeError) as e:
        raise InputError(f"{where}: OME-Zarr multiscales metadata without readable datasets ({e})") from None
    for ds, arr in zip(datasets, arrays):
        if not isinstance(arr, zarr.Array):
            raise InputError(f"{where}: OME-Zarr dataset '{ds['path']}' is not an array")
    scales = [_scale(ms, ds) for ds in datasets]
    levels = [(arrays[0], (1.0, 1.0, 1.0))]
    if scales[0] is not None:  # coarser levels only where their scales say how much coarser
        levels += [(a, tuple(float(v) for v in sc / scales[0])) for a, sc in zip(arrays[1:], scales[1:])
                   if sc is not None and np.all(sc >= scales[0])]
    out = {k: v for k, v in attrs.items() if k not in ("ome", "multiscales")}
    vs = _voxel_size(ms, datasets[0])
    if vs is not None and "voxel_size_nm" not in out:
        out["voxel_size_nm"] = vs
    return levels, out


def add_levels(path: str | os.PathLike, factors: Sequence[Sequence[int]], *, chunks: Sequence[int],
               compressors=None) -> list[zarr.Array]:
    """Create (empty) levels 1.. of the OME-Zarr image at ``path``, level k downsampled by ``factors[k]``
    ((z, y, x) integers; ``factors[0]`` is level 0's (1, 1, 1)), and list every level in its multiscales metadata.
    Level k's shape is level 0's divided by its factors, rounded up; ``chunks`` (z, y, x) are clipped to it.
    Returns the new arrays, coarsest last."""
    from ome_zarr.writer import write_multiscales_metadata

    group = zarr.open_group(os.fspath(path), mode="r+")
    meta = dict(group.attrs)["ome"]["multiscales"][0]
    base = group["0"]
    channel = base.ndim == 4
    scale0 = np.asarray(next(t["scale"] for t in meta["datasets"][0]["coordinateTransformations"]
                             if t["type"] == "scale"), np.float64)
    datasets, arrays = [meta["datasets"][0]], []
    kwargs = {} if compressors is None else {"compressors": compressors}
    for k, f in enumerate(factors[1:], start=1):
        f = np.asarray(([1] if channel else []) + [int(v) for v in f], np.float64)
        shape = tuple(int(n) for n in np.ceil(np.asarray(base.shape) / f))
        ch = ((base.shape[0],) if channel else ()) + tuple(min(int(c), n) for c, n in zip(chunks, shape[-3:]))
        have = group.get(str(k))
        if isinstance(have, zarr.Array) and tuple(have.shape) == shape and have.dtype == base.dtype:
            arrays.append(have)  # a resumed run: keep what its finished blocks wrote
        else:
            arrays.append(group.create_array(str(k), shape=shape, chunks=ch, dtype=base.dtype, fill_value=0,
                                             dimension_names=base.metadata.dimension_names, overwrite=True, **kwargs))
        datasets.append({"path": str(k), "coordinateTransformations": [
            {"type": "scale", "scale": (scale0 * f).tolist()},
            {"type": "translation", "translation": (scale0 * (f - 1) / 2).tolist()}]})
    write_multiscales_metadata(group, datasets=datasets, axes=meta["axes"], name=meta.get("name"))
    return arrays


def _scale(ms: dict, ds: dict) -> np.ndarray | None:
    """(z, y, x) of the dataset's (and the multiscale's) scale transforms, units aside; None without z, y, x."""
    axes = ms.get("axes") or []
    names = [a["name"] if isinstance(a, dict) else str(a) for a in axes]
    if not all(a in names for a in "zyx"):
        return None
    scale = np.ones(len(names))
    for t in list(ds.get("coordinateTransformations", [])) + list(ms.get("coordinateTransformations", [])):
        if t.get("type") == "scale" and len(t.get("scale", [])) == len(names):
            scale = scale * np.asarray(t["scale"], np.float64)
    return np.asarray([scale[names.index(a)] for a in "zyx"])


def _voxel_size(ms: dict, ds: dict) -> list[float] | None:
    """(z, y, x) nm from the dataset's (and the multiscale's) scale transforms, if z, y, x are length axes."""
    scale = _scale(ms, ds)
    if scale is None:
        return None
    axes = ms.get("axes") or []
    names = [a["name"] if isinstance(a, dict) else str(a) for a in axes]
    out = []
    for k, a in enumerate("zyx"):
        i = names.index(a)
        unit = axes[i].get("unit") if isinstance(axes[i], dict) else None
        factor = _NM_PER_UNIT.get(unit) if unit else None
        if factor is None:  # no unit, or not a length: the scale says nothing about nanometres
            return None
        out.append(float(scale[k] * factor))
    return out
