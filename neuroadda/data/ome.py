"""OME-Zarr (NGFF 0.5, zarr v3) images through ome-zarr-py: one multiscale level written, any level-0 read.

Layout written by :func:`create_image`: a group with the multiscales metadata (``attrs["ome"]``: axes with
units, the ``scale`` transform = voxel size in nanometres, 1 for a channel axis) and the level-0 array at
``<group>/0``; neuroadda's own attributes (threshold, checkpoint, ...) sit beside ``ome`` in the group
attributes. napari (napari-ome-zarr) and neuroglancer (``zarr3://``) open such a group directly.

:func:`read_image` takes any OME-Zarr image group (NGFF 0.4 on zarr v2, or 0.5 on v3): the first dataset of the
first multiscale, with ``voxel_size_nm`` from its scale transform and the axis units.
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


def read_image(group: zarr.Group, where: str) -> tuple[zarr.Array, dict]:
    """(level-0 array, attributes) of an OME-Zarr image group; attributes hold the group's own keys plus
    ``voxel_size_nm`` (z, y, x) from the scale transform when the units are known lengths."""
    attrs = dict(group.attrs)
    meta = attrs.get("ome", attrs)
    try:
        ms = meta["multiscales"][0]
        ds = ms["datasets"][0]
        arr = group[ds["path"]]
    except (KeyError, IndexError, TypeError) as e:
        raise InputError(f"{where}: OME-Zarr multiscales metadata without a readable first dataset ({e})") from None
    if not isinstance(arr, zarr.Array):
        raise InputError(f"{where}: OME-Zarr dataset '{ds['path']}' is not an array")
    out = {k: v for k, v in attrs.items() if k not in ("ome", "multiscales")}
    vs = _voxel_size(ms, ds)
    if vs is not None and "voxel_size_nm" not in out:
        out["voxel_size_nm"] = vs
    return arr, out


def _voxel_size(ms: dict, ds: dict) -> list[float] | None:
    """(z, y, x) nm from the dataset's (and the multiscale's) scale transforms, if z, y, x are length axes."""
    axes = ms.get("axes") or []
    names = [a["name"] if isinstance(a, dict) else str(a) for a in axes]
    if not all(a in names for a in "zyx"):
        return None
    scale = np.ones(len(names))
    for t in list(ds.get("coordinateTransformations", [])) + list(ms.get("coordinateTransformations", [])):
        if t.get("type") == "scale" and len(t.get("scale", [])) == len(names):
            scale = scale * np.asarray(t["scale"], np.float64)
    out = []
    for a in "zyx":
        i = names.index(a)
        unit = axes[i].get("unit") if isinstance(axes[i], dict) else None
        factor = _NM_PER_UNIT.get(unit) if unit else None
        if factor is None:  # no unit, or not a length: the scale says nothing about nanometres
            return None
        out.append(float(scale[i] * factor))
    return out
