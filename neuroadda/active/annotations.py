"""The annotation round trip: export selected samples for a human, read the labels back (or use ground truth).

Each sample is written as ``NAME.h5`` (dataset ``raw`` plus where it came from) and ``NAME.tif`` (one page per
z slice); with a proposal (the backbone's own segmentation of the sample) also as dataset ``proposal`` and
``NAME_proposal.tif``, for the annotator to correct instead of painting from nothing. The annotator adds a
``labels`` dataset to the .h5, or returns ``NAME_labels.tif``; only those are read back, never the proposal. In
benchmark ("oracle") runs the target's own ground truth stands in for the human.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from neuroadda.data.regions import Box, box_shape, format_box, normalize_box
from neuroadda.errors import InputError


def _attr_value(v: Any):
    """A value h5py can store as an attribute; dicts, None and non-numeric lists become JSON strings."""
    if isinstance(v, (dict, type(None))):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        try:
            arr = np.asarray(v)
        except ValueError:  # ragged
            return json.dumps(v)
        return arr if arr.dtype.kind in "biuf" and arr.size else json.dumps(v)
    return v if isinstance(v, (str, bool, int, float, np.generic, np.ndarray)) else json.dumps(v)


def _replace_atomically(path: Path, write) -> None:
    """Call ``write(tmp)`` on ``.NAME.tmp`` in the same folder, then rename it to ``path``."""
    from neuroadda.report import atomic_path

    with atomic_path(path) as tmp:
        write(tmp)


def export_samples(raw, boxes: list[Box], out_dir, *, names: list[str], voxel_size,
                   attrs: dict[str, Any] | None = None, proposals: list[np.ndarray] | None = None) -> list[Path]:
    """Write each box of ``raw`` as ``out_dir/NAME.h5`` and ``out_dir/NAME.tif`` for annotation.

    Args:
        raw: anything with ``read(box) -> (z, y, x) array`` (e.g. :class:`neuroadda.data.volume.Volume`).
        boxes: (z, y, x) slices in ``raw``'s voxel grid.
        names: one file stem per box, e.g. ``sample_00``.
        voxel_size: (z, y, x) nm of ``raw``'s grid.
        attrs: extra JSON-serialisable attributes for every .h5 (the position attributes win on a clash).
        proposals: optional (z, y, x) label arrays, one per box, of the box's shape (the backbone's segmentation).

    The .h5 holds dataset ``raw`` (gzip), ``proposal`` (gzip, uint32) when given, and attributes
    ``offset_voxels``, ``shape``, ``offset_nm``, ``voxel_size_nm`` and ``instructions``. Every file is written
    atomically. Returns the .h5 paths.
    """
    import h5py
    import tifffile

    if len(boxes) != len(names):
        raise ValueError(f"got {len(boxes)} boxes but {len(names)} names")
    if proposals is not None and len(proposals) != len(boxes):
        raise ValueError(f"got {len(boxes)} boxes but {len(proposals)} proposals")
    vs = np.asarray([float(v) for v in voxel_size], dtype=np.float64)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, (box, name) in enumerate(zip(boxes, names)):
        box = normalize_box(box, getattr(raw, "shape", None))
        arr = np.ascontiguousarray(raw.read(box))
        prop = None if proposals is None else np.ascontiguousarray(proposals[k], dtype=np.uint32)
        if prop is not None and prop.shape != arr.shape:
            raise ValueError(f"{name}: proposal shape {prop.shape} differs from the sample's {arr.shape}")
        offset = np.asarray([s.start for s in box], dtype=np.int64)
        meta = {k: _attr_value(v) for k, v in (attrs or {}).items()}
        meta.update(offset_voxels=offset, shape=np.asarray(arr.shape, dtype=np.int64), offset_nm=offset * vs,
                    voxel_size_nm=vs, instructions=f"add a uint32/uint64 dataset 'labels' of the same shape "
                                                   f"(0 = unlabelled/boundary), or return {name}_labels.tif"
                                                   + ("; 'proposal' (the backbone's segmentation) is a start to "
                                                      "correct, never read back" if prop is not None else ""))

        def write_h5(tmp: Path, arr=arr, meta=meta, prop=prop) -> None:
            with h5py.File(tmp, "w") as f:
                f.create_dataset("raw", data=arr, compression="gzip")
                if prop is not None:
                    f.create_dataset("proposal", data=prop, compression="gzip")
                for key, v in meta.items():
                    f.attrs[key] = v

        h5_path = out_dir / f"{name}.h5"
        _replace_atomically(h5_path, write_h5)
        _replace_atomically(out_dir / f"{name}.tif",
                            lambda tmp, arr=arr: tifffile.imwrite(tmp, arr, photometric="minisblack"))
        if prop is not None:
            _replace_atomically(out_dir / f"{name}_proposal.tif",
                                lambda tmp, prop=prop: tifffile.imwrite(tmp, prop, photometric="minisblack"))
        paths.append(h5_path)
    return paths


def _check_labels(arr: np.ndarray, where: str, expected_shape=None) -> np.ndarray:
    """Shape, dtype, sign and emptiness checks shared by annotations and oracle labels -> uint64 array."""
    arr = np.asarray(arr)
    if expected_shape is not None and arr.shape != tuple(expected_shape):
        expected_shape = tuple(int(n) for n in expected_shape)
        squeeze = lambda s: tuple(n for n in s if n != 1)  # noqa: E731
        if squeeze(arr.shape) != squeeze(expected_shape):
            raise InputError(f"{where}: expected (z, y, x) = {expected_shape} like the exported sample, "
                             f"got {tuple(arr.shape)}")
        arr = arr.reshape(expected_shape)  # e.g. a 2-D TIFF for a 1-slice sample
    if arr.dtype.kind not in "iu":
        raise InputError(f"{where}: labels must be integer ids, got {arr.dtype}")
    if arr.dtype.kind == "i" and arr.size and arr.min() < 0:
        raise InputError(f"{where}: labels must be non-negative ids, got negative values (min {arr.min()})")
    if not arr.any():
        raise InputError(f"{where}: all labels are 0 (unlabelled): nothing to train on")
    return arr.astype(np.uint64, copy=False)


def _read_h5_labels(path: Path) -> np.ndarray | None:
    """The ``labels`` dataset of ``path``, or None if it has none."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            ds = f.get("labels")
            return ds[()] if isinstance(ds, h5py.Dataset) else None
    except OSError as e:
        raise InputError(f"{path}: cannot open as HDF5 ({e})") from None


def _read_file(path: Path) -> np.ndarray:
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        import tifffile

        return tifffile.imread(path)
    except Exception as e:  # numpy and tifffile raise many kinds
        raise InputError(f"{path}: cannot read ({e.__class__.__name__}: {e})") from None


def read_annotation(labels_dir, name: str, expected_shape) -> np.ndarray:
    """The annotated labels of sample ``name`` as uint64 of ``expected_shape`` (z, y, x).

    Looks in ``labels_dir`` for, in order: ``NAME.h5`` with a ``labels`` dataset, ``NAME_labels.tif``/``.tiff``,
    ``NAME_labels.npy``, ``NAME.npy``. Any problem is an :class:`InputError` naming the file.
    """
    labels_dir = Path(labels_dir)
    if not labels_dir.is_dir():
        raise InputError(f"{labels_dir}: labels folder not found")
    h5_path = labels_dir / f"{name}.h5"
    h5_without_labels = False
    if h5_path.is_file():
        arr = _read_h5_labels(h5_path)
        if arr is not None:
            return _check_labels(arr, f"{h5_path}:labels", expected_shape)
        h5_without_labels = True
    others = [f"{name}_labels.tif", f"{name}_labels.tiff", f"{name}_labels.npy", f"{name}.npy"]
    for fname in others:
        path = labels_dir / fname
        if path.is_file():
            return _check_labels(_read_file(path), str(path), expected_shape)
    seen = f"; {h5_path.name} exists but has no 'labels' dataset" if h5_without_labels else ""
    raise InputError(f"{labels_dir}: no annotation for '{name}' (looked for {h5_path.name} with a 'labels' "
                     f"dataset, {', '.join(others)}){seen}")


def oracle_labels(vol, box: Box) -> np.ndarray:
    """Ground truth of ``vol`` (a LabelledVolume) in ``box`` as uint64, standing in for a human (benchmarks)."""
    if vol.labels is None:
        raise InputError(f"{vol.name} has no labels: oracle mode needs ground truth; "
                         "give --labels DIR with annotations")
    box = normalize_box(box, vol.labels.shape)
    return _check_labels(vol.labels.read(box), f"{vol.labels.name} {format_box(box)}")


def sample_labels(vol, boxes: list[Box], names: list[str], labels_dir=None) -> list[np.ndarray]:
    """Labels for every sample: ground truth when ``labels_dir`` is None, else the annotations in it."""
    if len(boxes) != len(names):
        raise ValueError(f"got {len(boxes)} boxes but {len(names)} names")
    if labels_dir is None:
        return [oracle_labels(vol, box) for box in boxes]
    shapes = [box_shape(normalize_box(box, vol.shape)) for box in boxes]
    return [read_annotation(labels_dir, name, shape) for name, shape in zip(names, shapes)]
