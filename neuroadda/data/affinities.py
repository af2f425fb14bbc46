"""Nearest-neighbour affinities from instance labels (pure numpy).

Convention (the one waterz and gunpowder use): channel c in (z, y, x) holds, at voxel v, the affinity
between v and its lower neighbour v - e_c. The first plane along that axis has no neighbour and is masked.
"""

from __future__ import annotations

import numpy as np

OFFSETS = ((-1, 0, 0), (0, -1, 0), (0, 0, -1))


def _shifted_pairs(labels: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, tuple[slice, ...]]:
    """Views (a, b) of voxels and their lower neighbours along ``axis``, and the slice they occupy."""
    hi = [slice(None)] * 3
    lo = [slice(None)] * 3
    hi[axis] = slice(1, None)
    lo[axis] = slice(None, -1)
    return labels[tuple(hi)], labels[tuple(lo)], tuple(hi)


def affinities_from_labels(
    labels: np.ndarray,
    *,
    label_zero: str = "boundary",
    labels_kind: str = "3d_instance",
) -> tuple[np.ndarray, np.ndarray]:
    """Affinities and loss mask from instance labels.

    Args:
        labels: (z, y, x) integer instance labels; 0 = boundary or unlabelled.
        label_zero: ``"boundary"``: an edge from an object into 0 is a cut (affinity 0) and only edges with
            both ends 0 are ignored; ``"unlabelled"``: every edge touching 0 is ignored.
        labels_kind: ``"2d_instance_per_slice"`` masks the z channel out (objects never continue in z).

    Returns:
        affs: (3, z, y, x) float32 in {0, 1}; mask: (3, z, y, x) float32 in {0, 1} (1 = use in the loss).
    """
    if labels.ndim != 3:
        raise ValueError(f"labels must be (z, y, x), got shape {labels.shape}")
    if label_zero not in ("boundary", "unlabelled"):
        raise ValueError(f"label_zero must be 'boundary' or 'unlabelled', got {label_zero!r}")
    affs = np.zeros((3,) + labels.shape, np.float32)
    mask = np.zeros((3,) + labels.shape, np.float32)
    for c in range(3):
        if c == 0 and labels_kind == "2d_instance_per_slice":
            continue
        a, b, where = _shifted_pairs(labels, c)
        affs[(c,) + where] = (a == b) & (a != 0)
        if label_zero == "boundary":
            mask[(c,) + where] = (a != 0) | (b != 0)
        else:
            mask[(c,) + where] = (a != 0) & (b != 0)
    return affs, mask
