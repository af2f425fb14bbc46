"""Volumes: a dataset name or ``PATH[:KEY]`` -> lazy raw (and labels) arrays with voxel size and metadata.

Data flows one way: dataset card -> :class:`LabelledVolume` -> patches -> model. Nothing here loads a
whole volume; :meth:`Volume.read` fetches one box, resampled to the requested voxel size if asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from neuroadda.data.cards import DatasetCard, all_cards, card_for_file, get_card, missing_files_hint
from neuroadda.data.grid import grid_shape, meet, pick_level, same_grid
from neuroadda.data.io import Cropped, is_single_array, is_url, open_array, split_spec
from neuroadda.data.regions import Box, box_shape
from neuroadda.data.tstore import open_url
from neuroadda.errors import InputError
from neuroadda.vocab import LABELS_KINDS

_VOXEL_ATTRS = ("resolution_nm", "voxel_size_nm", "voxel_size", "resolution")
LABEL_ZERO = {"boundary": "boundary", "unlabelled": "unlabelled", "unlabeled": "unlabelled"}


def parse_label_zero(value, where: str) -> str:
    """What label 0 means, from a ``label_zero`` attribute or flag: 'boundary' (0 separates objects: an edge
    from an object into 0 is a cut) or 'unlabelled' (0 is unknown: edges touching it are ignored); absent =
    'boundary'. Only these words (and the spelling 'unlabeled') are accepted: free text such as
    "boundary / unlabeled: ignore" steers the loss either way and is refused (InputError naming ``where``)."""
    if value is None:
        return "boundary"
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    key = str(value).strip().lower()
    if key in LABEL_ZERO:
        return LABEL_ZERO[key]
    raise InputError(f"{where} = {str(value)!r} is ambiguous: label_zero must be 'boundary' (0 separates objects; "
                     "edges into 0 are cuts) or 'unlabelled' (0 is unknown; edges touching 0 are ignored); "
                     "give --label-zero boundary|unlabelled")


class Volume:
    """A lazy (z, y, x) array, optionally seen at another voxel size.

    Args:
        array: reader with ``shape``, ``dtype`` and numpy slicing (see :mod:`neuroadda.data.io`).
        name: ``file[:key]`` used in messages.
        voxel_size: (z, y, x) nm of the stored array.
        resample_to: (z, y, x) nm to present instead (None = as stored). Raw is resampled with area/trilinear
            interpolation, labels (``is_labels``) with nearest neighbour. From a multiscale ``array``
            (:class:`neuroadda.data.arrays.Pyramid`) the stored level :func:`neuroadda.data.grid.pick_level` names is
            read (``level``), not level 0.
    """

    def __init__(self, array, name: str, voxel_size, *, resample_to=None, is_labels: bool = False):
        self.array, self.name, self.is_labels = array, name, is_labels
        self.stored_voxel_size = tuple(float(v) for v in voxel_size)
        self.voxel_size = tuple(float(v) for v in (resample_to or voxel_size))
        self.scale = tuple(s / t for s, t in zip(self.stored_voxel_size, self.voxel_size))
        self.stored_shape = tuple(int(n) for n in array.shape)
        self.shape = grid_shape(self.stored_shape, self.stored_voxel_size, self.voxel_size)
        self.dtype = np.dtype(array.dtype)
        self.attrs: dict[str, Any] = dict(getattr(array, "attrs", {}))
        self.level, self._src, src_voxel_size = read_level(array, self.stored_voxel_size, self.voxel_size)
        self._src_shape = tuple(int(n) for n in self._src.shape)
        self.scale = tuple(s / t for s, t in zip(src_voxel_size, self.voxel_size))

    @property
    def resampled(self) -> bool:
        return any(abs(f - 1.0) > 1e-6 for f in self.scale) or self._src_shape != self.shape

    def __getitem__(self, box) -> np.ndarray:
        if not isinstance(box, tuple) or len(box) != 3 or not all(isinstance(s, slice) for s in box):
            raise TypeError("Volume supports only 3 slices, e.g. vol[0:16, 0:96, 0:96]")
        return self.read(box)

    def read(self, box: Box) -> np.ndarray:
        """Read one box given in this volume's (possibly resampled) voxel grid."""
        box = tuple(slice(*s.indices(n)[:2]) for s, n in zip(box, self.shape))
        if not self.resampled:
            return np.asarray(self._src[box])
        out_shape = box_shape(box)
        src = tuple(slice(int(np.floor(s.start / f)),
                          min(n, max(int(np.ceil(s.stop / f)), int(np.floor(s.start / f)) + 1)))
                    for s, f, n in zip(box, self.scale, self._src_shape))
        block = np.asarray(self._src[src])
        return resize(block, out_shape, labels=self.is_labels)


def read_level(array, voxel_size, seen_at) -> tuple[int, Any, tuple[float, ...]]:
    """(level index, its reader, its voxel size in nm) to read ``array`` stored at ``voxel_size`` from when it is
    seen at ``seen_at``: a coarser stored level of a :class:`neuroadda.data.arrays.Pyramid` where one fits
    (:func:`neuroadda.data.grid.pick_level`), else ``array`` itself (level 0)."""
    levels = getattr(array, "levels", None)
    voxel_size = tuple(float(v) for v in voxel_size)
    if not levels or same_grid(voxel_size, seen_at):
        return 0, array, voxel_size
    sizes = [tuple(v * f for v, f in zip(voxel_size, factors)) for _, factors in levels]
    i = pick_level(sizes, seen_at)
    return i, (levels[i][0] if i else array), sizes[i]


def resize(block: np.ndarray, shape: tuple[int, ...], *, labels: bool) -> np.ndarray:
    """Resize a (z, y, x) block: nearest for labels; for intensities, area averaging on the axes that shrink
    (anti-aliased) and then linear interpolation on the axes that grow."""
    if tuple(block.shape) == tuple(shape):
        return block
    if labels:
        idx = [np.minimum((np.arange(n) + 0.5) * (m / n), m - 1).astype(np.int64) for n, m in zip(shape, block.shape)]
        return block[np.ix_(*idx)]
    t = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))[None, None]
    shrunk = tuple(min(n, m) for n, m in zip(shape, block.shape))
    if shrunk != tuple(block.shape):
        t = F.interpolate(t, size=shrunk, mode="area")
    if shrunk != tuple(shape):
        t = F.interpolate(t, size=tuple(shape), mode="trilinear", align_corners=False)
    return t[0, 0].numpy()


@dataclass
class LabelledVolume:
    """Raw image and (optional) instance labels of one dataset, as the pipeline sees them."""

    name: str
    raw: Volume
    labels: Volume | None
    voxel_size: tuple[float, float, float]
    labels_kind: str = "3d_instance"
    label_zero: str = "boundary"
    card: DatasetCard | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.raw.shape


def _voxel_size_from_attrs(attrs: dict) -> tuple[float, float, float] | None:
    for k in _VOXEL_ATTRS:
        v = attrs.get(k)
        if v is not None and np.size(v) == 3:
            return tuple(float(x) for x in np.ravel(v))
    return None


def _check_array(arr, name: str, *, labels: bool) -> None:
    if arr.ndim != 3:
        raise InputError(f"{name}: expected a 3-D (z, y, x) volume, got {arr.ndim}-D shape {tuple(arr.shape)}")
    if min(arr.shape) == 0:
        raise InputError(f"{name}: empty volume, shape {tuple(arr.shape)}")
    kind = np.dtype(arr.dtype).kind
    if labels and kind not in "iu":
        raise InputError(f"{name}: labels must be integers, got dtype {np.dtype(arr.dtype)}")
    if not labels and kind not in "iuf":
        raise InputError(f"{name}: raw must be numeric, got dtype {np.dtype(arr.dtype)}")


def is_dataset_name(spec: str) -> bool:
    return spec in all_cards() or not (Path(split_spec(spec)[0]).exists() or any(c in spec for c in "/.:"))


def volume_available(spec: str) -> bool:
    """Whether ``spec`` is a known dataset name or an existing PATH[:KEY] (nothing is opened): a candidate model
    named otherwise is a label without training data at hand."""
    if spec in all_cards():
        return True
    return not is_dataset_name(spec) and Path(split_spec(spec)[0]).exists()


def open_volume(
    spec: str,
    *,
    labels: str | None = None,
    raw_key: str = "raw",
    labels_key: str | None = "labels",
    require_labels: bool = False,
    voxel_size: tuple[float, float, float] | None = None,
    resample_to: tuple[float, float, float] | None = None,
    label_zero: str | None = None,
) -> LabelledVolume:
    """Open a dataset name or ``PATH[:KEY]`` lazily.

    Args:
        spec: a card name from ``datasets/`` or ``PATH[:KEY]`` (HDF5, zarr, TIFF, .npy); KEY overrides ``raw_key``.
        labels: optional separate ``PATH[:KEY]`` for the labels; otherwise ``labels_key`` in the same container
            (missing labels are an error only with ``require_labels``).
        voxel_size: (z, y, x) nm of the stored data, overriding the card/attributes.
        resample_to: present both arrays at this voxel size (nm).
        label_zero: 'boundary' or 'unlabelled', overriding the card / the labels' ``label_zero`` attribute.

    A file that belongs to a dataset card (the bundled crops given by path) is opened through its card.
    """
    zero = None if label_zero is None else parse_label_zero(label_zero, "--label-zero")
    if is_dataset_name(spec):
        card = get_card(spec)
        return _open_card(card, require_labels=require_labels, voxel_size=voxel_size, resample_to=resample_to,
                          label_zero=zero)
    if is_url(spec):  # precomputed:// or n5://: one array
        path, raw_arr, raw_name = None, open_url(spec), spec
    else:
        path, key = split_spec(spec)
        card = card_for_file(path, key) if labels is None else None
        if card is not None:
            return _open_card(card, require_labels=require_labels, voxel_size=voxel_size, resample_to=resample_to,
                              label_zero=zero)
        raw_arr = open_array(path, key or raw_key)
        raw_name = f"{path}:{key or raw_key}" if not is_single_array(path) else str(path)
    lab_arr, lab_name = None, None
    if labels is not None:
        lab_arr, lab_name = open_spec(labels, labels_key), labels
    elif labels_key is not None and path is not None and not is_single_array(path):
        try:
            lab_arr, lab_name = open_array(path, labels_key), f"{path}:{labels_key}"
        except InputError:
            if require_labels:
                raise
    if require_labels and lab_arr is None:
        raise InputError(f"{spec}: labels required (give --labels PATH[:KEY])")
    attrs = {**getattr(lab_arr, "attrs", {}), **raw_arr.attrs} if lab_arr is not None else raw_arr.attrs
    vs = voxel_size or _voxel_size_from_attrs(attrs)
    info = {"voxel_size_source": "given" if voxel_size else ("attributes" if vs else UNKNOWN_VOXEL_SIZE)}
    kind = str(attrs.get("labels_kind", "3d_instance"))
    if zero is None:  # label 0's meaning matters only where labels become training targets
        zero = parse_label_zero(attrs.get("label_zero"), f"{lab_name} attribute label_zero") \
            if lab_arr is not None else "boundary"
    return _assemble(str(spec), raw_arr, raw_name, lab_arr, lab_name, vs or (1.0, 1.0, 1.0), kind, zero,
                     None, resample_to, info)


def open_spec(spec: str, default_key: str | None):
    """The lazy array at a URL (``precomputed://``, ``n5://``) or ``PATH[:KEY]`` (KEY defaults to ``default_key``)."""
    if is_url(spec):
        return open_url(spec)
    path, key = split_spec(spec)
    return open_array(path, key or default_key)


def _open_card(card: DatasetCard, *, require_labels, voxel_size, resample_to, label_zero=None) -> LabelledVolume:
    def path_of(ref):
        p = card.file_path(ref.file)
        if not p.exists():
            raise InputError(f"dataset '{card.name}': file {p} is missing ({missing_files_hint(card)})")
        return p

    def crop(arr, name):
        return arr if card.crop is None else Cropped(arr, card.crop, f"dataset '{card.name}' ({name})")

    raw_p = path_of(card.raw)
    raw_arr = crop(open_array(raw_p, card.raw.key), raw_p)
    lab_arr = lab_name = None
    if card.labels is not None:
        lab_p = path_of(card.labels)
        lab_arr = crop(open_array(lab_p, card.labels.key), lab_p)
        lab_name = f"{lab_p}:{card.labels.key}" if card.labels.key else str(lab_p)
    elif require_labels:
        raise InputError(f"dataset '{card.name}' has no labels")
    raw_name = f"{raw_p}:{card.raw.key}" if card.raw.key else str(raw_p)
    return _assemble(card.name, raw_arr, raw_name, lab_arr, lab_name, voxel_size or card.voxel_size_nm,
                     card.labels_kind or "3d_instance", label_zero or card.label_zero, card, resample_to,
                     {"voxel_size_source": "given" if voxel_size else "dataset card"})


def _assemble(name, raw_arr, raw_name, lab_arr, lab_name, vs, kind, zero, card, resample_to, info):
    if kind not in LABELS_KINDS:
        raise InputError(f"{raw_name}: labels_kind must be 3d_instance or 2d_instance_per_slice, got '{kind}'")
    _check_array(raw_arr, raw_name, labels=False)
    if lab_arr is not None:
        _check_array(lab_arr, lab_name, labels=True)
        if tuple(lab_arr.shape) != tuple(raw_arr.shape):
            raise InputError(f"{lab_name}: labels shape {tuple(lab_arr.shape)} does not match raw shape "
                             f"{tuple(raw_arr.shape)} of {raw_name}")
    raw = Volume(raw_arr, raw_name, vs, resample_to=resample_to)
    lab = Volume(lab_arr, lab_name, vs, resample_to=resample_to, is_labels=True) if lab_arr is not None else None
    return LabelledVolume(name, raw, lab, raw.voxel_size, kind, zero, card, info)


def restrict(vol: LabelledVolume, box: Box) -> LabelledVolume:
    """A lazy view of ``box`` (on ``vol``'s grid) of ``vol``, as a volume of its own (no copy, no resampling)."""
    def view(v: Volume | None) -> Volume | None:
        if v is None:
            return None
        return Volume(Cropped(v, [(s.start, s.stop) for s in box], v.name), v.name, v.voxel_size, is_labels=v.is_labels)

    raw = view(vol.raw)
    return LabelledVolume(vol.name, raw, view(vol.labels), vol.voxel_size, vol.labels_kind, vol.label_zero, vol.card,
                          {**vol.info, "region": [[s.start, s.stop] for s in box]})


class GridView:
    """Boxes of ``volume``'s grid read and resized to voxel size ``to`` (what a model that meets the volume there
    sees of each box): raw interpolated, labels nearest. From a multiscale volume each box is read from the stored
    level :func:`read_level` names for ``to`` (``level``), covering the same physical region."""

    def __init__(self, volume: Volume, to):
        self.volume, self.voxel_size = volume, tuple(float(v) for v in to)
        self.level, self._src, self._src_voxel_size = read_level(volume.array, volume.stored_voxel_size, to)

    def read(self, box: Box) -> np.ndarray:
        if not self.level:
            a = self.volume.read(box)
            return resize(a, grid_shape(a.shape, self.volume.voxel_size, self.voxel_size), labels=self.volume.is_labels)
        box = tuple(slice(*s.indices(n)[:2]) for s, n in zip(box, self.volume.shape))
        r = [v / w for v, w in zip(self.volume.voxel_size, self._src_voxel_size)]  # volume voxel -> level voxel
        src = tuple(slice(min(int(np.floor(s.start * f + 1e-9)), n - 1), min(n, max(int(np.ceil(s.stop * f - 1e-9)),
                                                                                    int(np.floor(s.start * f)) + 1)))
                    for s, f, n in zip(box, r, self._src.shape))
        out = grid_shape(box_shape(box), self.volume.voxel_size, self.voxel_size)
        return resize(np.asarray(self._src[src]), out, labels=self.volume.is_labels)


def model_view(vol: LabelledVolume, model_voxel_size):
    """``vol.raw`` as a model trained at ``model_voxel_size`` sees it, box by box (boxes stay on ``vol``'s
    grid): a :class:`GridView` where the grids meet elsewhere, else ``vol.raw`` itself."""
    seen = seen_by(vol, model_voxel_size)
    return vol.raw if seen is vol else GridView(vol.raw, seen.voxel_size)


UNKNOWN_VOXEL_SIZE = "assumed isotropic 1 nm"


def known_voxel_size(vol: LabelledVolume) -> bool:
    """False when no card, attribute or flag gave the volume's voxel size (it is then used as stored)."""
    return vol.info.get("voxel_size_source") != UNKNOWN_VOXEL_SIZE


def seen_by(vol: LabelledVolume, backbone_voxel_size) -> LabelledVolume:
    """``vol`` on the grid a backbone trained at ``backbone_voxel_size`` sees it on (:func:`neuroadda.data.grid.meet`):
    a lazy view resampled once from the stored arrays (no copy), or ``vol`` itself when the grids agree or its
    voxel size is unknown."""
    if backbone_voxel_size is None or not known_voxel_size(vol):
        return vol
    return on_grid(vol, meet(vol.voxel_size, backbone_voxel_size))


def on_grid(vol: LabelledVolume, grid) -> LabelledVolume:
    """``vol`` seen at voxel size ``grid`` (nm): a lazy view resampled once from the stored arrays, or ``vol``
    itself when it is already there or its voxel size is unknown."""
    if not known_voxel_size(vol) or same_grid(grid, vol.voxel_size):
        return vol

    def view(v: Volume | None) -> Volume | None:
        return None if v is None else Volume(v.array, v.name, v.stored_voxel_size, resample_to=grid,
                                             is_labels=v.is_labels)

    raw = view(vol.raw)
    return LabelledVolume(vol.name, raw, view(vol.labels), raw.voxel_size, vol.labels_kind, vol.label_zero, vol.card,
                          {**vol.info, "seen_at": list(grid), "stored_at": list(vol.raw.stored_voxel_size)})


def check_patch_fits(vol: LabelledVolume, patch_size, box: Box | None = None) -> None:
    """Raise InputError if ``patch_size`` (z, y, x) is larger than the volume (or ``box``)."""
    shape = vol.shape if box is None else box_shape(box)
    if any(p > n for p, n in zip(patch_size, shape)):
        where = "volume" if box is None else "training region"
        raise InputError(f"{vol.raw.name}: patch {tuple(patch_size)} is larger than the {where} {tuple(shape)} "
                         f"(at {vol.voxel_size} nm voxels)")


def open_labels(spec: str, *, key: str = "labels", voxel_size=None, resample_to=None) -> LabelledVolume:
    """Ground truth given as a dataset name or ``PATH[:KEY]`` (KEY defaults to ``labels``).

    The returned volume's ``labels`` holds the ground truth (``raw`` is the same array, unused)."""
    if is_dataset_name(spec):
        vol = open_volume(spec, require_labels=True, voxel_size=voxel_size, resample_to=resample_to)
        return vol
    arr = open_spec(spec, key)
    path, k = (None, None) if is_url(spec) else split_spec(spec)
    name = spec if path is None or is_single_array(path) else f"{path}:{k or key}"
    vs = voxel_size or _voxel_size_from_attrs(arr.attrs)
    kind = str(arr.attrs.get("labels_kind", "3d_instance"))
    zero = "boundary"  # VI ignores ground-truth 0 whatever it means
    info = {"voxel_size_source": "given" if voxel_size else ("attributes" if vs else UNKNOWN_VOXEL_SIZE)}
    _check_array(arr, name, labels=True)
    lab = Volume(arr, name, vs or (1.0, 1.0, 1.0), resample_to=resample_to if vs else None, is_labels=True)
    return LabelledVolume(spec, lab, lab, lab.voxel_size, kind, zero, None, info)
