"""Ascent fragments: supervoxels that depend only on the affinities near each voxel, so a block grown by enough
context computes its part of them exactly, and blocks stitched by union-find give the whole-volume fragments.

Interior = mean affinity > ``threshold``; ``dist`` = the Gaussian-smoothed (``sigma`` voxels) Euclidean distance
transform of the interior, as for the watershed fragments (:mod:`.fragments`). Every voxel points to a strictly
higher voxel:

1. its highest face neighbour (6 in 3-D, 4 in 2-D; ties: the first in (axis, -1/+1) order) if that is higher than
   itself; an interior voxel looks at interior neighbours only, so it climbs inside its own object;
2. else, if a voxel of its (2 * ``min_distance`` + 1) window is higher, the highest window voxel connected to it
   through interior voxels inside the window (any window voxel for a boundary voxel; ties: the lowest index);
3. else it is a root. Roots side by side with the same ``dist`` (a plateau) are one root.

Fragments are the trees of this forest (the drainage basins of ``dist``, with the window rule merging the small
bumps that the watershed fragments' seeds skip too). A pointer depends on ``dist`` and the interior within
``min_distance + 1`` voxels, ``dist`` on the distance transform within ``4 * sigma`` voxels, and the distance
transform at a voxel on the interior out to the nearest boundary; :func:`certified` checks that a block's read
reached that far. A block's core then holds exact pieces of the fragments; a pointer (or a plateau) that leaves
the core is a *join* (piece name, global linear index of the voxel outside), resolved once all blocks are done.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def gaussian_radius(sigma: float) -> int:
    """Voxels that ``ndimage.gaussian_filter`` reads on each side (its default ``truncate=4``)."""
    return int(4.0 * float(sigma) + 0.5) if sigma > 0 else 0


def margin(sigma: float = 1.0, min_distance: int = 2) -> int:
    """How far beyond a core the distance transform must be exact for the core's pointers and joins."""
    return int(min_distance) + 1 + gaussian_radius(sigma)


def distance_map(boundary_free: np.ndarray, threshold: float = 0.5, sigma: float = 1.0,
                 max_distance: float = 32.0):
    """(interior mask, distance transform float32 capped at ``max_distance`` voxels, smoothed ``dist`` float32)
    of one region (2-D or 3-D). A region without boundary voxels is ``max_distance`` everywhere; the cap keeps
    the context a block needs bounded (an object thicker than twice the cap has a flat, single-root core)."""
    mask = boundary_free > threshold
    if mask.all():
        edt = np.full(mask.shape, max_distance, np.float32)
    else:
        edt = np.minimum(ndimage.distance_transform_edt(mask), max_distance).astype(np.float32)
    dist = ndimage.gaussian_filter(edt, sigma) if sigma > 0 else edt
    return mask, edt, dist


def certified_radius(edt: np.ndarray, read, volume_shape, core, max_distance: float = 32.0) -> int:
    """The largest g such that the capped distance transform ``edt`` of the ``read`` box (global slices) is
    exact on the ``core`` box grown by g voxels (clipped to the volume); -1 if not even on the core.

    A voxel's value is exact when it is no larger than its distance to the read's open faces (those inside the
    volume: no boundary beyond them can be nearer) or when that distance reaches the cap."""
    reach = np.full(edt.shape, np.inf, np.float32)
    dbox = np.zeros(edt.shape, np.int64)
    g = max(int(n) for n in volume_shape)
    for ax, (s, c, n) in enumerate(zip(read, core, volume_shape)):
        pos = np.arange(s.start, s.stop)
        d = np.full(len(pos), np.inf, np.float32)
        if s.start > 0:
            d = np.minimum(d, pos - s.start + 1)  # distance to the nearest voxel outside the read, below
            g = min(g, c.start - s.start)
        if s.stop < n:
            d = np.minimum(d, s.stop - pos)  # and above
            g = min(g, s.stop - c.stop)
        view = [1] * edt.ndim
        view[ax] = -1
        reach = np.minimum(reach, d.reshape(view))
        dbox = np.maximum(dbox, np.maximum(np.maximum(c.start - pos, pos - (c.stop - 1)), 0).reshape(view))
    bad = (edt > reach) & (reach < max_distance)
    if bad.any():
        g = min(g, int(dbox[bad].min()) - 1)
    return g


def _index_dtype(size: int):
    return np.int32 if size < 2**31 else np.int64


def _flat_index(box, shape, dtype=np.int64) -> np.ndarray:
    """Flat (C-order) index in an array of ``shape`` of every voxel of ``box`` (slices), as an array of the box's
    shape."""
    strides = np.cumprod((list(shape[1:]) + [1])[::-1])[::-1]
    out = np.zeros((), dtype)
    for ax, (s, st) in enumerate(zip(box, strides)):
        view = [1] * len(box)
        view[ax] = -1
        out = out + (np.arange(s.start, s.stop, dtype=dtype) * dtype(st)).reshape(view)
    return out


def _pointers(dist: np.ndarray, mask: np.ndarray, box, min_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """(flat index in ``dist`` of the voxel that each voxel of ``box`` (slices into ``dist``) points to, whether it
    is a root: it points to itself). Reads ``dist`` and ``mask`` within ``min_distance + 1`` voxels of the box."""
    shape = dist.shape
    dtype = _index_dtype(dist.size)
    sub, msub = dist[box], mask[box]
    pd = np.pad(dist, 1, constant_values=-np.inf)
    pm = np.pad(mask, 1, constant_values=False)
    strides = np.cumprod((list(shape[1:]) + [1])[::-1])[::-1]
    best, step = sub.copy(), np.zeros(sub.shape, dtype)
    for ax in range(dist.ndim):  # rule 1: the highest face neighbour, strictly higher (interior: interior only)
        for sgn in (-1, 1):
            sl = tuple(slice(b.start + 1 + (sgn if a == ax else 0), b.stop + 1 + (sgn if a == ax else 0))
                       for a, b in enumerate(box))
            ok = pd[sl] > best
            ok &= pm[sl] | ~msub
            np.copyto(best, pd[sl], where=ok)
            np.copyto(step, dtype(sgn * int(strides[ax])), where=ok)
    del pd, pm, ok
    root = step == 0
    parent = _flat_index(box, shape, dtype)
    parent += step
    del step
    r = int(min_distance)
    if r < 1:
        return parent, root
    grown = tuple(slice(max(0, b.start - r), min(n, b.stop + r)) for b, n in zip(box, shape))
    wmax = ndimage.maximum_filter(dist[grown], size=2 * r + 1, mode="constant", cval=-np.inf)
    wmax = wmax[tuple(slice(b.start - g.start, b.stop - g.start) for b, g in zip(box, grown))]
    for q in zip(*np.nonzero(root & (wmax > sub))):  # rule 2: climb to the window's highest voxel
        p = tuple(int(a) + b.start for a, b in zip(q, box))
        win = tuple(slice(max(0, c - r), min(n, c + r + 1)) for c, n in zip(p, shape))
        vals = dist[win]
        if mask[p]:  # only through interior voxels inside the window
            lab = ndimage.label(mask[win])[0]
            vals = np.where(lab == lab[tuple(c - w.start for c, w in zip(p, win))], vals, -np.inf)
        k = int(np.argmax(vals))  # the first maximum: the lowest index
        if vals.flat[k] > dist[p]:
            target = tuple(int(a) + w.start for a, w in zip(np.unravel_index(k, vals.shape), win))
            parent[q] = int(np.ravel_multi_index(target, shape))
            root[q] = False
    return parent, root


def forest(dist: np.ndarray, mask: np.ndarray, core, origin, volume_shape, min_distance: int = 2):
    """The ascent fragments of the ``core`` box (slices into ``dist``/``mask``, which cover the core grown by
    ``min_distance + 1`` voxels wherever it is inside the volume) and the joins that leave it.

    ``origin``: global position of ``dist[0, ...]``; ``volume_shape``: the whole volume's. Returns (names, the
    core's shape, uint64: 1 + the lowest global linear index among the roots and exits of the piece; joins,
    (k, 2) uint64: a piece name and the global linear index of a voxel outside the core that belongs to the same
    fragment). Memory: about 30 bytes per voxel of the arrays."""
    shape = dist.shape
    ext = tuple(slice(max(0, c.start - 1), min(n, c.stop + 1)) for c, n in zip(core, shape))
    parent, root = _pointers(dist, mask, ext, min_distance)
    cin = tuple(slice(c.start - e.start, c.stop - e.start) for c, e in zip(core, ext))
    cshape = tuple(c.stop - c.start for c in core)
    n = int(np.prod(cshape))
    whole = all(c.start == 0 and c.stop == m for c, m in zip(core, shape))
    if whole:  # flat indices in the arrays are the core's own: no chain leaves it
        end = parent.reshape(-1)
        exits = np.zeros(0, np.int64)
    else:
        pc = np.unravel_index(parent[cin].ravel(), shape)
        inside = np.ones(n, bool)
        for a, c in enumerate(core):
            inside &= (pc[a] >= c.start) & (pc[a] < c.stop)
        local = np.ravel_multi_index(tuple(np.clip(pc[a] - c.start, 0, m - 1) for a, (c, m) in
                                           enumerate(zip(core, cshape))), cshape)
        end = np.where(inside, local, np.arange(n)).astype(_index_dtype(n))
        exits = np.flatnonzero(~inside)
        exit_targets = tuple(p[exits] for p in pc)
        del pc, inside, local
    while True:  # pointer jumping: every voxel to the root or exit its chain ends at inside the core
        nxt = end[end]
        if np.array_equal(nxt, end):
            break
        end = nxt
    del nxt

    def glob(coords):  # local coordinates in dist -> global linear index
        return np.ravel_multi_index(tuple(np.asarray(x) + o for x, o in zip(coords, origin)), volume_shape)

    # plateaus: roots side by side with the same dist are one root
    d_ext = dist[ext]
    incore = np.zeros(root.shape, bool)
    incore[cin] = True
    pos_ext = np.indices(root.shape, sparse=True)
    rows, cols, joins = [], [], []
    for ax in range(dist.ndim):
        lo = tuple(slice(None, -1) if a == ax else slice(None) for a in range(dist.ndim))
        hi = tuple(slice(1, None) if a == ax else slice(None) for a in range(dist.ndim))
        eq = root[lo] & root[hi] & (d_ext[lo] == d_ext[hi])
        if not eq.any():
            continue
        a_pos = [np.broadcast_to(p, root.shape)[lo][eq] for p in pos_ext]
        b_pos = [x + (1 if a == ax else 0) for a, x in enumerate(a_pos)]
        a_in, b_in = incore[lo][eq], incore[hi][eq]

        def core_flat(ps, sel):
            return np.ravel_multi_index(tuple(p[sel] - c for p, c in zip(ps, [cc.start for cc in cin])), cshape)

        both = a_in & b_in
        rows.append(core_flat(a_pos, both))
        cols.append(core_flat(b_pos, both))
        for src, dst, sel in ((a_pos, b_pos, a_in & ~b_in), (b_pos, a_pos, b_in & ~a_in)):
            if sel.any():
                joins.append((core_flat(src, sel),
                              glob(tuple(p[sel] + e.start for p, e in zip(dst, ext)))))
    del root, incore, d_ext
    ends = np.flatnonzero(end == np.arange(n, dtype=end.dtype))
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    ncomp, comp = connected_components(coo_matrix((np.ones(len(r), np.int8), (r, c)), shape=(n, n)), directed=False)
    name = np.full(ncomp, np.iinfo(np.int64).max, np.int64)
    ends_global = glob(tuple(x + cc.start for x, cc in zip(np.unravel_index(ends, cshape), core)))
    np.minimum.at(name, comp[ends], ends_global + 1)
    names = name[comp[end]].astype(np.uint64)
    parts = [np.zeros((0, 2), np.uint64)]
    if len(exits):
        parts.append(np.stack([names[exits], glob(exit_targets).astype(np.uint64)], axis=1))
    parts += [np.stack([names[i], g.astype(np.uint64)], axis=1) for i, g in joins]
    return names.reshape(cshape), np.concatenate(parts).astype(np.uint64).reshape(-1, 2)


def ascent_fragments(affs: np.ndarray, *, threshold: float = 0.5, sigma: float = 1.0, min_distance: int = 2,
                     max_distance: float = 32.0, per_slice: bool = False) -> np.ndarray:
    """Ascent fragments (z, y, x) uint64, ids 1..k, of (3, z, y, x) affinities in [0, 1] (see the module
    docstring); ``per_slice``: 2-D in every z slice from the y/x affinities (data labelled per section)."""
    affs = np.asarray(affs)
    if affs.ndim != 4 or affs.shape[0] != 3:
        raise ValueError(f"affinities must be (3, z, y, x), got shape {affs.shape}")
    if affs.dtype == np.uint8:
        affs = affs.astype(np.float32) / np.float32(255.0)
    if not per_slice:
        names = _whole(affs.mean(0), threshold, sigma, min_distance, max_distance)
    else:
        mean_xy = affs[1:].mean(0)
        plane = mean_xy.shape[1] * mean_xy.shape[2]
        names = np.stack([_whole(mean_xy[z], threshold, sigma, min_distance, max_distance) + np.uint64(z * plane)
                          for z in range(mean_xy.shape[0])])
    _, inverse = np.unique(names, return_inverse=True)
    return (inverse.reshape(names.shape) + 1).astype(np.uint64)


def _whole(boundary_free, threshold, sigma, min_distance, max_distance) -> np.ndarray:
    mask, _, dist = distance_map(boundary_free, threshold, sigma, max_distance)
    full = tuple(slice(0, n) for n in dist.shape)
    return forest(dist, mask, full, (0,) * dist.ndim, dist.shape, min_distance)[0]
