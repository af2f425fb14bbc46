"""Lazy readers for 3-D arrays in HDF5, zarr (v2/v3, OME-Zarr images), N5, neuroglancer precomputed, TIFF stacks
and .npy files.

Every reader returns an object with ``.shape``, ``.dtype``, ``.attrs`` (dict) and numpy-style slicing
that reads only the requested region; a multiscale image (OME-Zarr, precomputed) is a
:class:`~neuroadda.data.arrays.Pyramid` whose level 0 is read by default. N5 and precomputed go through
tensorstore (:mod:`.tstore`). Errors are :class:`InputError` naming the file and key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from neuroadda.data.arrays import Pyramid, is_url
from neuroadda.errors import InputError

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".n5h5")
TIFF_SUFFIXES = (".tif", ".tiff")


def split_spec(spec: str) -> tuple[Path, str | None]:
    """``"PATH[:KEY]"`` -> (path, key). The key may contain '/', the path may not end in ':'."""
    p = Path(spec)
    if p.exists() or ":" not in spec:
        return p, None
    path, key = spec.rsplit(":", 1)
    return Path(path), (key.strip("/") or None)


def container_kind(path: Path) -> str:
    """'hdf5', 'zarr', 'n5', 'precomputed', 'tiff', 'tiffdir' or 'npy' from the path's suffix or content."""
    suffix = path.suffix.lower()
    if suffix in HDF5_SUFFIXES:
        return "hdf5"
    if suffix in TIFF_SUFFIXES:
        return "tiff"
    if suffix == ".npy":
        return "npy"
    if suffix == ".zarr" or (path / "zarr.json").exists() or (path / ".zgroup").exists() \
            or (path / ".zarray").exists():
        return "zarr"
    if suffix == ".n5" or (path / "attributes.json").is_file():
        return "n5"
    if (path / "info").is_file():
        return "precomputed"
    if path.is_dir() and any(q.suffix.lower() in TIFF_SUFFIXES for q in path.iterdir()):
        return "tiffdir"
    raise InputError(f"{path}: unknown volume format (expected .h5/.hdf5, .zarr, .n5, a neuroglancer precomputed "
                     "folder, .tif/.tiff, a folder of TIFF slices, or .npy)")


def is_single_array(path: Path) -> bool:
    """True where ``path`` is one array (no KEY inside): TIFF, .npy, a precomputed volume, an N5 dataset, a plain
    folder of slices."""
    try:
        kind = container_kind(path)
    except InputError:
        return True
    if kind == "n5":
        from neuroadda.data.tstore import n5_datasets

        return n5_datasets(path) == ["."]
    return kind in ("tiff", "tiffdir", "npy", "precomputed")


class TiffStack:
    """A (z, y, x) TIFF volume read lazily one z-plane at a time (multi-page file or folder of slices)."""

    def __init__(self, path: Path):
        import tifffile

        self.path = path
        self.attrs: dict[str, Any] = {}
        if path.is_dir():
            self._files = sorted(q for q in path.iterdir() if q.suffix.lower() in TIFF_SUFFIXES)
            first = tifffile.imread(self._files[0])
            nz = len(self._files)
            self._tif = None
        else:
            self._files = None
            self._tif = tifffile.TiffFile(path)
            pages = self._tif.pages
            first = pages[0].asarray()
            nz = len(pages)
        if first.ndim != 2:
            raise InputError(f"{path}: TIFF planes must be 2-D (y, x), got shape {first.shape}")
        self.shape = (nz,) + first.shape
        self.dtype = first.dtype
        self.ndim = 3

    def _plane(self, z: int) -> np.ndarray:
        import tifffile

        return tifffile.imread(self._files[z]) if self._files is not None else self._tif.pages[z].asarray()

    def __getitem__(self, idx) -> np.ndarray:
        if not isinstance(idx, tuple):
            idx = (idx,)
        idx = idx + (slice(None),) * (3 - len(idx))
        zs = range(*idx[0].indices(self.shape[0])) if isinstance(idx[0], slice) else [idx[0]]
        planes = [self._plane(z)[idx[1], idx[2]] for z in zs]
        out = np.stack(planes) if planes else np.zeros((0,) + self.shape[1:], self.dtype)[:, idx[1], idx[2]]
        return out if isinstance(idx[0], slice) else out[0]


class NpyArray:
    """A memory-mapped .npy file (read lazily by the OS)."""

    def __init__(self, path: Path):
        self._a = np.load(path, mmap_mode="r")
        self.shape, self.dtype, self.ndim, self.attrs = self._a.shape, self._a.dtype, self._a.ndim, {}

    def __getitem__(self, idx) -> np.ndarray:
        return np.asarray(self._a[idx])


def _hdf5_keys(group) -> list[str]:
    import h5py

    keys: list[str] = []
    group.visititems(lambda name, obj: keys.append(name) if isinstance(obj, h5py.Dataset) else None)
    return keys


def _zarr_keys(group) -> list[str]:
    return sorted(name for name, _ in group.arrays()) + [
        f"{g}/{k}" for g, sub in group.groups() for k in _zarr_keys(sub)]


def open_array(path: Path, key: str | None):
    """Open one array lazily. ``key`` is required for HDF5 and zarr groups, ignored for TIFF/.npy."""
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    kind = container_kind(path)
    if kind in ("tiff", "tiffdir"):
        try:
            return TiffStack(path)
        except InputError:
            raise
        except Exception as e:  # tifffile raises many kinds
            raise InputError(f"{path}: cannot read TIFF ({e})") from None
    if kind == "npy":
        return NpyArray(path)
    if kind in ("n5", "precomputed"):
        return _open_tensorstore(path, key, kind)
    if kind == "hdf5":
        import h5py

        try:
            f = h5py.File(path, "r")
        except OSError as e:
            raise InputError(f"{path}: cannot open as HDF5 ({e})") from None
        if key is None or key not in f or not isinstance(f[key], h5py.Dataset):
            avail = ", ".join(_hdf5_keys(f)[:12]) or "none"
            what = "no key given" if key is None else f"no dataset '{key}'"
            raise InputError(f"{path}: {what} (datasets in the file: {avail})")
        return _H5(f[key], dict(f.attrs))
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as e:
        raise InputError(f"{path}: cannot open as zarr ({e})") from None
    if isinstance(node, zarr.Array):
        return _Zarr(node, {})
    from neuroadda.data.ome import is_ome_group, read_image

    if is_ome_group(node) and (key is None or key == "raw" and key not in node):  # an OME-Zarr image, asked for
        # as a whole or under the default raw key: every level, voxel size from the metadata
        levels, attrs = read_image(node, str(path))
        if len(levels) == 1:
            return _Zarr(levels[0][0], attrs)
        return Pyramid([(_Zarr(a, {}), f) for a, f in levels], attrs)
    if key is None or key not in node or not isinstance(node[key], zarr.Array):
        avail = ", ".join(_zarr_keys(node)[:12]) or "none"
        what = "no key given" if key is None else f"no array '{key}'"
        raise InputError(f"{path}: {what} (arrays in the store: {avail})")
    return _Zarr(node[key], dict(node.attrs))


def _open_tensorstore(path: Path, key: str | None, kind: str):
    """A local N5 dataset (``path`` itself, or ``path/key``) or precomputed volume through :mod:`.tstore`."""
    from neuroadda.data import tstore

    if kind == "precomputed":
        return tstore.open_precomputed(tstore.kvstore_url(path), str(path))
    datasets = tstore.n5_datasets(path)
    if datasets == ["."]:  # the path is a dataset itself
        return tstore.open_n5(tstore.kvstore_url(path), str(path))
    if key is None or key not in datasets:
        avail = ", ".join(datasets[:12]) or "none"
        what = "no key given" if key is None else f"no dataset '{key}'"
        raise InputError(f"{path}: {what} (datasets in the N5 container: {avail})")
    return tstore.open_n5(tstore.kvstore_url(path / key), f"{path}:{key}")


class _H5:
    """Thin wrapper so every reader exposes the same attributes."""

    def __init__(self, ds, parent_attrs: dict):
        self._ds, self.shape, self.dtype, self.ndim = ds, ds.shape, ds.dtype, ds.ndim
        self.attrs = {k: _plain(v) for k, v in {**parent_attrs, **dict(ds.attrs)}.items()}

    def __getitem__(self, idx) -> np.ndarray:
        return self._ds[idx]


class _Zarr:
    def __init__(self, arr, parent_attrs: dict):
        self._a, self.shape, self.dtype, self.ndim = arr, tuple(arr.shape), np.dtype(arr.dtype), arr.ndim
        self.attrs = {**parent_attrs, **dict(arr.attrs)}

    def __getitem__(self, idx) -> np.ndarray:
        return np.asarray(self._a[idx])


class Cropped:
    """A fixed sub-box of another reader (a dataset card's ``crop``): same interface, shape of the box."""

    def __init__(self, arr, box: tuple[tuple[int, int], ...], name: str):
        full = tuple(int(n) for n in arr.shape)
        if len(box) != len(full) or any(not 0 <= a < b <= n for (a, b), n in zip(box, full)):
            raise InputError(f"{name}: crop {[list(b) for b in box]} does not lie inside the stored shape {full}")
        self._a, self._box = arr, tuple((int(a), int(b)) for a, b in box)
        self.shape = tuple(b - a for a, b in self._box)
        self.dtype, self.ndim, self.attrs = arr.dtype, len(self.shape), dict(getattr(arr, "attrs", {}))

    def __getitem__(self, idx) -> np.ndarray:
        if not isinstance(idx, tuple):
            idx = (idx,)
        idx = idx + (slice(None),) * (self.ndim - len(idx))
        if not all(isinstance(s, slice) and s.step in (None, 1) for s in idx):
            raise TypeError("a cropped array supports only contiguous slices")
        shifted = tuple(slice(a + s.indices(n)[0], a + s.indices(n)[1])
                        for s, (a, _), n in zip(idx, self._box, self.shape))
        return np.asarray(self._a[shifted])


def _plain(v):
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


def short_name(spec: str) -> str:
    """A short display name: dataset names as they are, ``/a/b/vol.h5:raw`` -> ``vol.h5:raw``,
    ``precomputed://gs://bucket/em/`` -> ``em``."""
    if is_url(spec):
        return spec.rstrip("/").rsplit("/", 1)[-1]
    path, key = split_spec(spec) if ("/" in spec or "." in spec) else (None, None)
    if path is None:
        return spec
    return path.name + (f":{key}" if key else "")
