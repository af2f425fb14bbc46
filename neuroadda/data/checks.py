"""Checks that labels can be trained and scored on, run where labels are opened for training, before any work.

Labels with no object (all 0) or a single object give no boundary to learn from and no VI to choose the waterz
threshold by; without these checks such a volume trains for the whole schedule and then fails. The labels are
read lazily, z-slab by z-slab, and reading stops as soon as enough distinct objects are seen (a real volume
stops within its first slab; only an empty one is read to the end).
"""

from __future__ import annotations

import numpy as np

from neuroadda.errors import InputError

MAX_SLAB_VOXELS = 1 << 22  # voxels read at a time (32 MB of uint64)


def object_ids(labels, box=None, *, limit: int = 2, max_voxels: int = MAX_SLAB_VOXELS) -> list[int]:
    """Up to ``limit`` distinct non-zero ids in ``labels`` (a :class:`~neuroadda.data.volume.Volume` or a (z, y, x)
    array) inside ``box`` (3 slices; default everything), in the order they are met."""
    box = _norm(box, labels.shape)
    read = labels.read if hasattr(labels, "read") else (lambda b: np.asarray(labels[b]))
    plane = max(1, (box[1].stop - box[1].start) * (box[2].stop - box[2].start))
    step = max(1, max_voxels // plane)
    found: list[int] = []
    for z in range(box[0].start, box[0].stop, step):
        block = np.asarray(read((slice(z, min(z + step, box[0].stop)), box[1], box[2]))).ravel()
        rest = block[block != 0]
        for known in found:
            rest = rest[rest != known]
        while rest.size and len(found) < limit:
            found.append(int(rest[0]))
            rest = rest[rest != rest[0]]
        if len(found) >= limit:
            break
    return found


def _norm(box, shape) -> tuple[slice, slice, slice]:
    return tuple(slice(*s.indices(n)[:2]) for s, n in zip(box or (slice(None),) * 3, tuple(shape)))


def _where(box, shape) -> str:
    return "" if box is None else " in " + " x ".join(f"{s.start}:{s.stop}" for s in _norm(box, shape))


def require_objects(labels, name: str, box=None, *, minimum: int = 2, what: str = "labels") -> None:
    """InputError naming ``name`` (file:key) unless ``labels`` (inside ``box``) hold at least ``minimum`` objects."""
    ids = object_ids(labels, box, limit=minimum)
    if len(ids) >= minimum:
        return
    found = "no object (every voxel is 0)" if not ids else f"a single object (id {ids[0]})"
    need = "an object" if minimum == 1 else f"at least {minimum} objects"
    raise InputError(f"{name}: {what}{_where(box, labels.shape)} hold {found}; "
                     f"training and threshold choice need {need}")


def require_sample_objects(labels: list, names: list[str]) -> None:
    """Fine-tuning labels: every sample holds an object (its VI picks the threshold), all together at least two."""
    seen: set[int] = set()
    for lab, name in zip(labels, names):
        ids = object_ids(lab, limit=2)
        if not ids:
            raise InputError(f"{name}: the labels of this sample hold no object (every voxel is 0); annotate the "
                             "neurons in it, or pick other samples")
        seen.update(ids)
    if len(seen) < 2:
        raise InputError(f"{', '.join(names)}: the samples' labels hold a single object (id {min(seen)}) in all; "
                         "fine-tuning needs at least 2 objects separated by boundaries")
