"""N5 and neuroglancer precomputed volumes, read lazily through tensorstore, with the voxel size from their metadata.

One engine for both: tensorstore (Google's, from the team behind neuroglancer and the H01 release) reads
precomputed and N5 chunk by chunk from a local folder (``file://``) or an object store (``gs://``,
``s3://``, ``https://``), with a bounded chunk cache. zarr-python 3 reads neither format, and cloud-volume reads
precomputed only, with a heavier dependency tree; zarr and OME-Zarr stay on zarr-python (:mod:`.io`, :mod:`.ome`).

Axes. Both formats list axes fastest first (x, y, z; precomputed adds a channel axis); every reader here presents
(z, y, x) like the rest of neuroadda, with the first voxel at index 0 (a precomputed ``voxel_offset`` is dropped).
Voxel size (nm, z y x): a precomputed scale's ``resolution``; an N5 dataset's ``resolution`` (with ``units``) or
``pixelResolution`` (``{"dimensions", "unit"}``), the conventions of BigDataViewer, Paintera and the n5-viewer.

Specs: a local precomputed folder (holding ``info``) or N5 container (``.n5`` or ``attributes.json``) given as
``PATH[:KEY]`` (KEY = the dataset inside an N5 container), or a URL ``precomputed://KVSTORE`` /
``n5://KVSTORE`` with KVSTORE any tensorstore key-value store URL (``file:///data/vol``, ``gs://bucket/vol``).
A precomputed volume with several scales is a :class:`neuroadda.data.arrays.Pyramid`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from neuroadda.data.arrays import Pyramid, is_url
from neuroadda.errors import InputError

DRIVERS = {"precomputed": "neuroglancer_precomputed", "n5": "n5"}
CACHE_BYTES = 64 * 2**20  # chunk cache per opened volume: neighbouring reads share chunks
_NM = {"nm": 1.0, "nanometer": 1.0, "um": 1e3, "µm": 1e3, "micrometer": 1e3, "mm": 1e6, "millimeter": 1e6,
       "pm": 1e-3, "angstrom": 0.1, "m": 1e9, "meter": 1e9}


def kvstore_url(where: str | Path) -> str:
    """A tensorstore key-value store URL for a local folder or a URL (a trailing '/' marks a directory)."""
    url = str(where) if is_url(str(where)) else Path(where).resolve().as_uri()
    return url.rstrip("/") + "/"


class TsArray:
    """A (z, y, x) (or (c, z, y, x)) view of a tensorstore with the reader interface of :mod:`.io`: ``shape``,
    ``dtype``, ``ndim``, ``attrs`` and numpy slicing (contiguous slices, clipped to the array like numpy's)."""

    def __init__(self, store, attrs: dict[str, Any], name: str):
        self._a, self.attrs, self.name = store, attrs, name
        self.shape = tuple(int(n) for n in store.shape)
        self.dtype, self.ndim = np.dtype(store.dtype.numpy_dtype), len(self.shape)

    def __getitem__(self, idx) -> np.ndarray:
        if not isinstance(idx, tuple):
            idx = (idx,)
        idx = tuple(slice(*s.indices(n)[:2]) if isinstance(s, slice) else s for s, n in zip(idx, self.shape))
        try:
            return np.asarray(self._a[idx].read().result())
        except ValueError as e:  # tensorstore's I/O and decoding errors
            raise InputError(f"{self.name}: cannot read {idx} ({e})") from None


def _context():
    import tensorstore as ts

    return ts.Context({"cache_pool": {"total_bytes_limit": CACHE_BYTES}})


def _open(spec: dict, name: str):
    import tensorstore as ts

    try:
        return ts.open(spec, read=True, context=_context()).result()
    except ValueError as e:
        raise InputError(f"{name}: cannot open as {spec['driver']} ({str(e).splitlines()[0]})") from None


def _read_json(url: str, key: str, name: str) -> dict | None:
    import tensorstore as ts

    try:
        got = ts.KvStore.open(url).result().read(key).result()
    except ValueError as e:
        raise InputError(f"{name}: cannot read {key} ({str(e).splitlines()[0]})") from None
    if got.state != "value":
        return None
    try:
        return json.loads(bytes(got.value))
    except json.JSONDecodeError as e:
        raise InputError(f"{name}: {key} is not valid JSON ({e.msg})") from None


def open_precomputed(url: str, name: str | None = None):
    """A neuroglancer precomputed volume at kvstore ``url``: one :class:`TsArray` per scale, (z, y, x) for one
    channel, (c, z, y, x) for several; a :class:`neuroadda.data.arrays.Pyramid` when there are several scales."""
    import tensorstore as ts

    name = name or url
    info = _read_json(url, "info", name)
    if info is None or not info.get("scales"):
        raise InputError(f"{name}: no neuroglancer precomputed 'info' with scales")
    channels = int(info.get("num_channels", 1))
    levels, res0 = [], None
    for i, sc in enumerate(info["scales"]):
        store = _open({"driver": DRIVERS["precomputed"], "kvstore": url, "scale_index": i}, name)
        store = store[ts.d[:].translate_to[0]].T  # (channel, z, y, x) from 0
        if channels == 1:
            store = store[0]
        res = [float(r) for r in sc["resolution"]][::-1]
        res0 = res0 or res
        attrs = {"voxel_size_nm": res, "precomputed": {"type": info.get("type"), "scale": sc.get("key"),
                                                      "encoding": sc.get("encoding")}}
        levels.append((TsArray(store, attrs, name), tuple(r / r0 for r, r0 in zip(res, res0))))
    if info.get("type") == "segmentation":
        levels[0][0].attrs["labels"] = True
    return levels[0][0] if len(levels) == 1 else Pyramid(levels, dict(levels[0][0].attrs))


def _n5_voxel_size(attrs: dict, ndim: int) -> list[float] | None:
    """(z, y, x) nm from an N5 dataset's attributes (x, y, z order on disk), if it states one with known units."""
    pr = attrs.get("pixelResolution")
    if isinstance(pr, dict) and len(pr.get("dimensions", [])) == ndim:
        f = _NM.get(str(pr.get("unit", "nm")).lower())
        return None if f is None else [float(v) * f for v in pr["dimensions"]][::-1]
    res = attrs.get("resolution")
    if isinstance(res, list) and len(res) == ndim:
        units = attrs.get("units") or ["nm"] * ndim
        fs = [_NM.get(str(u).lower()) for u in units]
        return None if None in fs else [float(v) * f for v, f in zip(res, fs)][::-1]
    return None


_N5_OWN = ("dimensions", "blockSize", "dataType", "compression", "resolution", "pixelResolution", "units", "axes",
           "n5")


def open_n5(url: str, name: str | None = None) -> TsArray:
    """The N5 dataset at kvstore ``url`` (a folder whose attributes.json has ``dimensions``), axes reversed to
    (z, y, x); ``voxel_size_nm`` from its attributes (see the module docstring)."""
    name = name or url
    meta = _read_json(url, "attributes.json", name)
    if meta is None or "dimensions" not in meta:
        raise InputError(f"{name}: not an N5 dataset (no attributes.json with 'dimensions')")
    store = _open({"driver": DRIVERS["n5"], "kvstore": url}, name).T
    attrs = {k: v for k, v in meta.items() if k not in _N5_OWN}
    vs = _n5_voxel_size(meta, len(meta["dimensions"]))
    if vs is not None:
        attrs["voxel_size_nm"] = vs
    return TsArray(store, attrs, name)


def n5_datasets(root: Path) -> list[str]:
    """Dataset keys below a local N5 container (folders whose attributes.json has 'dimensions')."""
    out = []
    for p in sorted(root.rglob("attributes.json")):
        try:
            if "dimensions" in json.loads(p.read_text()):
                out.append(str(p.parent.relative_to(root)))
        except (OSError, json.JSONDecodeError):
            continue
    return out


def open_url(spec: str):
    """``precomputed://KVSTORE`` or ``n5://KVSTORE`` -> a lazy reader (see the module docstring)."""
    scheme, rest = spec.split("://", 1)
    if scheme not in DRIVERS:
        raise InputError(f"{spec}: unknown volume URL scheme '{scheme}://' (expected precomputed:// or n5://, "
                         "or a local PATH[:KEY])")
    url = kvstore_url(rest if is_url(rest) else Path(rest))
    return open_precomputed(url, spec) if scheme == "precomputed" else open_n5(url, spec)
