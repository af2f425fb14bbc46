"""Nearest-neighbour affinities from instance labels (pure numpy).

Convention (the one waterz and gunpowder use): channel c in (z, y, x) holds, at voxel v, the affinity
between v and its lower neighbour v - e_c. The first plane along that axis has no neighbour and is masked.
"""

from __future__ import annotations

import numpy as np

from neuroadda.vocab import TWO_D

OFFSETS = ((-1, 0, 0), (0, -1, 0), (0, 0, -1))


def _offset_pairs(labels: np.ndarray, offset) -> tuple[np.ndarray, np.ndarray, tuple[slice, ...]]:
    """Views (a, b) = (labels[v], labels[v + offset]) over the voxels v whose partner lies inside, and the
    slice of v they occupy."""
    here, there = [], []
    for o, n in zip(offset, labels.shape):
        o = int(o)
        here.append(slice(max(0, -o), n - max(0, o)))
        there.append(slice(max(0, o), n + min(0, o)))
    return labels[tuple(here)], labels[tuple(there)], tuple(here)


def affinities_from_labels(
    labels: np.ndarray,
    *,
    label_zero: str = "boundary",
    labels_kind: str = "3d_instance",
    offsets=OFFSETS,
) -> tuple[np.ndarray, np.ndarray]:
    """Affinities and loss mask from instance labels.

    Args:
        labels: (z, y, x) integer instance labels; 0 = boundary or unlabelled.
        label_zero: ``"boundary"``: an edge from an object into 0 is a cut (affinity 0) and only edges with
            both ends 0 are ignored; ``"unlabelled"``: every edge touching 0 is ignored.
        labels_kind: ``"2d_instance_per_slice"`` masks out every channel with a z component (objects never
            continue in z).
        offsets: (dz, dy, dx) per channel; channel c at voxel v is the affinity between v and v + offsets[c].
            The default is the nearest neighbours below (waterz's convention); further offsets are the
            long-range auxiliary affinities used as an extra training signal.

    Returns:
        affs: (C, z, y, x) float32 in {0, 1}; mask: (C, z, y, x) float32 in {0, 1} (1 = use in the loss).
    """
    if labels.ndim != 3:
        raise ValueError(f"labels must be (z, y, x), got shape {labels.shape}")
    if label_zero not in ("boundary", "unlabelled"):
        raise ValueError(f"label_zero must be 'boundary' or 'unlabelled', got {label_zero!r}")
    affs = np.zeros((len(offsets),) + labels.shape, np.float32)
    mask = np.zeros((len(offsets),) + labels.shape, np.float32)
    for c, off in enumerate(offsets):
        if off[0] != 0 and labels_kind == TWO_D:
            continue
        a, b, where = _offset_pairs(labels, off)
        affs[(c,) + where] = (a == b) & (a != 0)
        if label_zero == "boundary":
            mask[(c,) + where] = (a != 0) | (b != 0)
        else:
            mask[(c,) + where] = (a != 0) & (b != 0)
    return affs, mask
