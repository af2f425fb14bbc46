"""Per-block pieces of block-wise segmentation: fragments with context, and region-adjacency edges.

Fragments: the distance-transform watershed of :mod:`.fragments`, computed on the block's core grown by
``context`` voxels and cropped to the core. A fragment is named after its seed, ``1 + the global linear index``
(row-major over the whole volume) of its seed's first voxel, so a fragment that crosses block faces gets the same
id in every block that sees its seed, without any coordination between workers. Where the context holds the
whole volume the fragments are exactly the whole-volume ones; with less, they differ only where the distance
transform or the flooding reaches farther than the context (objects wider than it, seeds outside the read).

Edges follow waterz's region graph (``region_graph.hpp``): every pair of 6-neighbours (v, v - e_c) with
different fragments adds the affinity of channel c at v to the edge {fragment(v), fragment(v - e_c)}. An edge is
stored as (u, v, sum of affinities, count) with u < v, so the edges of all blocks add up exactly to the
whole-volume region graph (mean affinity = sum / count, as waterz's ``MeanAffinity`` scores it). A pair inside a
core belongs to that block (:func:`core_edges`); a pair across a face belongs to the block on its upper side,
which pairs its own first layer with the last layer of its lower neighbour (:func:`face_edges`), read from the
small per-block slabs that :func:`boundary_slabs` saves.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from neuroadda.segmentation.ascent import certified_radius, distance_map, forest, margin
from neuroadda.segmentation.fragments import fragment_seeds


def as_float_affinities(affs: np.ndarray) -> np.ndarray:
    """(3, z, y, x) float32 in [0, 1] from float or uint8 (/255, as :func:`..agglomerate._check_affs`)."""
    affs = np.asarray(affs)
    if affs.dtype == np.uint8:
        return affs.astype(np.float32) / np.float32(255.0)
    return np.ascontiguousarray(affs, dtype=np.float32)


def _seeded_watershed(boundary_free: np.ndarray, origin, volume_shape, threshold, sigma, min_distance) -> np.ndarray:
    """uint64 fragments of one region (2-D or 3-D) starting at ``origin`` in a volume of ``volume_shape``,
    ids = 1 + global linear index of each seed's first voxel."""
    from skimage.segmentation import watershed

    seeds = fragment_seeds(boundary_free, threshold, sigma, min_distance)
    if seeds is None:  # no interior here: one fragment, named after the region's first voxel
        return np.full(boundary_free.shape, np.ravel_multi_index(tuple(origin), volume_shape) + 1, np.uint64)
    dist, peaks = seeds
    markers, n = ndimage.label(peaks)
    where = np.nonzero(peaks)
    linear = np.ravel_multi_index(tuple(w + o for w, o in zip(where, origin)), volume_shape).astype(np.uint64)
    names = np.full(n + 1, np.iinfo(np.uint64).max, np.uint64)
    np.minimum.at(names, markers[where], linear + np.uint64(1))
    return names[watershed(-dist, markers)]


def block_fragments(affs_read: np.ndarray, read: tuple[slice, slice, slice], core: tuple[slice, slice, slice],
                    volume_shape, *, per_slice: bool = False, threshold: float = 0.5, sigma: float = 1.0,
                    min_distance: int = 2) -> np.ndarray:
    """uint64 fragments of the ``core`` box (global slices) from the (3, Z, Y, X) affinities of the ``read`` box
    (global slices holding the core), as :func:`..fragments.watershed_fragments` makes them but named by seed."""
    affs = as_float_affinities(affs_read)
    origin = [s.start for s in read]
    crop = tuple(slice(c.start - r.start, c.stop - r.start) for c, r in zip(core, read))
    if not per_slice:
        return _seeded_watershed(affs.mean(0), origin, volume_shape, threshold, sigma, min_distance)[crop]
    mean_xy = affs[1:].mean(0)
    out = np.zeros(tuple(c.stop - c.start for c in core), np.uint64)
    for z in range(crop[0].start, crop[0].stop):  # per slice, as watershed_fragments(per_slice=True)
        frag = _seeded_watershed(mean_xy[z], origin[1:], volume_shape[1:], threshold, sigma, min_distance)
        out[z - crop[0].start] = frag[crop[1:]] + np.uint64((origin[0] + z) * volume_shape[1] * volume_shape[2])
    return out


def pair_edges(a: np.ndarray, b: np.ndarray, aff: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges between label arrays ``a`` and ``b`` (same shape, neighbours element by element) with affinity
    ``aff``: (pairs (k, 2) uint64 with u < v, sums float64, counts int64), one row per distinct pair.
    Pairs with equal labels or a 0 label (background, as waterz skips it) are left out."""
    a, b, aff = (np.asarray(x).ravel() for x in (a, b, aff))
    keep = (a != b) & (a != 0) & (b != 0)
    a, b, aff = a[keep].astype(np.uint64), b[keep].astype(np.uint64), aff[keep].astype(np.float64)
    return sum_edges(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1), aff, np.ones(len(aff), np.int64))


def sum_edges(pairs: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Add up rows with the same (u, v): distinct pairs in lexicographic order, their sums and counts."""
    pairs = np.asarray(pairs, np.uint64).reshape(-1, 2)
    if len(pairs) == 0:
        return pairs, np.zeros(0, np.float64), np.zeros(0, np.int64)
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    pairs, sums, counts = pairs[order], np.asarray(sums, np.float64)[order], np.asarray(counts, np.int64)[order]
    new = np.ones(len(pairs), bool)
    new[1:] = np.any(pairs[1:] != pairs[:-1], axis=1)
    starts = np.flatnonzero(new)
    return pairs[starts], np.add.reduceat(sums, starts), np.add.reduceat(counts, starts)


def concat_edges(parts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate (pairs, sums, counts) triples and add up repeated pairs."""
    parts = list(parts)
    if not parts:
        return sum_edges(np.zeros((0, 2), np.uint64), [], [])
    return sum_edges(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                     np.concatenate([p[2] for p in parts]))


def core_edges(frag: np.ndarray, affs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges of the neighbour pairs inside one array: ``frag`` (z, y, x) ids, ``affs`` (3, z, y, x) in [0, 1]."""
    parts = []
    for c in range(3):
        hi = [slice(None)] * 3
        lo = [slice(None)] * 3
        hi[c], lo[c] = slice(1, None), slice(None, -1)
        parts.append(pair_edges(frag[tuple(hi)], frag[tuple(lo)], affs[c][tuple(hi)]))
    return concat_edges(parts)


def boundary_slabs(frag: np.ndarray, affs: np.ndarray) -> dict[str, np.ndarray]:
    """What the face pass needs from one block: per axis c, its first and last layer of fragments and the
    channel-c affinities of its first layer (the pairs with the lower neighbour)."""
    out = {}
    for c in range(3):
        out[f"first{c}"] = np.take(frag, 0, axis=c)
        out[f"last{c}"] = np.take(frag, -1, axis=c)
        out[f"aff{c}"] = np.take(affs[c], 0, axis=c)
    return out


def face_edges(first_ids: np.ndarray, lower_last_ids: np.ndarray, aff: np.ndarray):
    """Edges across one face: the block's first layer against its lower neighbour's last layer (one fragment
    on both sides adds nothing, as inside a core)."""
    return pair_edges(first_ids, lower_last_ids, aff)


def block_ascent(affs_read: np.ndarray, read, core, volume_shape, *, per_slice: bool = False,
                 threshold: float = 0.5, sigma: float = 1.0, min_distance: int = 2, max_distance: float = 32.0):
    """The ascent fragments (:mod:`.ascent`) of the ``core`` box from the (3, Z, Y, X) affinities of the ``read``
    box (global slices): (names uint64 of the core's shape, joins (k, 2) uint64). When the read is too small for
    them to be exact (a boundary may lie beyond it), the context (voxels around the core) that is enough, an int.

    Chains are followed beyond the core as far as the read keeps them exact, so that most end at their root and
    few pieces of a fragment leave the block to be joined."""
    affs = as_float_affinities(affs_read)
    kw = dict(threshold=threshold, sigma=sigma, min_distance=min_distance, max_distance=max_distance)
    if not per_slice:
        return _ascent_region(affs.mean(0), read, core, volume_shape, **kw)
    plane = int(volume_shape[1]) * int(volume_shape[2])
    mean_xy = affs[1:].mean(0)
    names, joins = [], []
    for z in range(core[0].start, core[0].stop):
        got = _ascent_region(mean_xy[z - read[0].start], read[1:], core[1:], volume_shape[1:], **kw)
        if isinstance(got, int):
            return got
        names.append(got[0] + np.uint64(z * plane))
        joins.append(got[1] + np.uint64(z * plane))
    return np.stack(names), np.concatenate(joins)


def _ascent_region(boundary_free, read, core, volume_shape, *, threshold, sigma, min_distance, max_distance):
    """:func:`block_ascent` of one 2-D or 3-D region."""
    mask, edt, dist = distance_map(boundary_free, threshold, sigma, max_distance)
    grow = margin(sigma, min_distance)
    follow = certified_radius(edt, read, volume_shape, core, max_distance) - grow
    if follow < 0:
        near = tuple(slice(max(c.start - grow, r.start) - r.start, min(c.stop + grow, r.stop) - r.start)
                     for c, r in zip(core, read))
        return grow + int(np.ceil(min(float(edt[near].max()), max_distance))) + 8
    span = tuple(slice(max(0, c.start - follow), min(int(n), c.stop + follow)) for c, n in zip(core, volume_shape))
    names, joins = forest(dist, mask, tuple(slice(s.start - r.start, s.stop - r.start) for s, r in zip(span, read)),
                          [r.start for r in read], volume_shape, min_distance)
    names = names[tuple(slice(c.start - s.start, c.stop - s.start) for c, s in zip(core, span))]
    return names, joins[np.isin(joins[:, 0], np.unique(names))]
