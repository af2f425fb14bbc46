"""Ascent fragments: the pointer rules on hand-made distance maps, the certificate of exactness on a hand-computed
case, and block-wise pieces stitched by their joins equal to the whole-volume fragments (3-D, per slice, uint8,
odd block sizes, no context)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage

from neuroadda.segmentation.ascent import ascent_fragments, certified_radius, distance_map, forest, margin
from neuroadda.segmentation.blockwise import block_ascent
from neuroadda.segmentation.graph import join_pieces
from tests.conftest import same_partition, smooth_affinities


def _fragments_of_line(dist, mask=None, min_distance=2) -> list[int]:
    """Fragment names along a 1 x n line (2-D forest over the whole array), as 0-based group numbers."""
    dist = np.asarray(dist, np.float32)[None]
    mask = np.ones(dist.shape, bool) if mask is None else np.asarray(mask, bool)[None]
    full = (slice(0, 1), slice(0, dist.shape[1]))
    names, joins = forest(dist, mask, full, (0, 0), dist.shape, min_distance)
    assert len(joins) == 0  # nothing leaves the whole array
    _, groups = np.unique(names.ravel(), return_inverse=True)
    return groups.tolist()


def test_each_voxel_climbs_to_its_highest_neighbour_ties_to_the_lower_index():
    # index 4 (1.0) has two neighbours at 2.0: the lower index wins; index 5 (2.0) is the highest of its window
    assert _fragments_of_line([1, 2, 3, 2, 1, 2, 1]) == [0, 0, 0, 0, 0, 1, 1]


def test_a_bump_climbs_to_the_window_maximum_only_through_interior_voxels():
    # index 3 (2.5) is a local maximum, but index 1 (3.0) is higher within 2 voxels
    assert _fragments_of_line([1, 3, 2, 2.5, 1]) == [0, 0, 0, 0, 0]
    # a boundary voxel (mask False) at index 2 separates them: index 3 keeps its own root; the boundary voxel
    # itself climbs to its highest neighbour, index 1
    assert _fragments_of_line([1, 3, 2, 2.5, 1], mask=[1, 1, 0, 1, 1]) == [0, 0, 0, 1, 1]
    # without the window rule (min_distance 0) the bump is a root of its own
    assert _fragments_of_line([1, 3, 2, 2.5, 1], min_distance=0) == [0, 0, 0, 1, 1]


def test_an_interior_voxel_does_not_climb_into_the_boundary():
    # index 2 is interior; its only higher neighbour (index 3) is a boundary voxel, so it is a root
    assert _fragments_of_line([1, 2, 3, 4, 1], mask=[1, 1, 1, 0, 0], min_distance=0) == [0, 0, 0, 1, 1]


def test_a_plateau_of_roots_is_one_root():
    # indices 1 and 2 (2.0) are both roots and one fragment; index 4 (0.0) ties and takes the lower neighbour
    assert _fragments_of_line([1, 2, 2, 1, 0, 1, 3], min_distance=0) == [0, 0, 0, 0, 0, 1, 1]
    assert _fragments_of_line([1, 2, 1.5, 2, 0, 1, 3], min_distance=0) == [0, 0, 0, 1, 1, 2, 2]


def test_certified_radius_hand_computed():
    """A line of 40 voxels with its only boundary voxel at 20, read [10, 30), core [18, 22): the distance
    transform |i - 20| is exact where it is no larger than the distance to the read's open faces,
    min(i - 9, 30 - i): everywhere but i <= 14 and i >= 26; the nearest of those is 4 voxels from the core."""
    mask = np.ones((1, 1, 40), bool)
    mask[0, 0, 20] = False
    read, core = (slice(0, 1), slice(0, 1), slice(10, 30)), (slice(0, 1), slice(0, 1), slice(18, 22))
    _, edt, _ = distance_map(mask[read].astype(np.float32), 0.5, 1.0, max_distance=32)
    assert certified_radius(edt, read, mask.shape, core, max_distance=32) == 3
    # the cap proves more: with a cap of 4 every voxel at least 4 from the open faces is exact whatever lies
    # beyond them; left: i <= 12 and i >= 27, the nearest 6 voxels from the core
    _, edt4, _ = distance_map(mask[read].astype(np.float32), 0.5, 1.0, max_distance=4)
    assert certified_radius(edt4, read, mask.shape, core, max_distance=4) == 5
    # no boundary in the read at all: nothing is certified short of the cap
    none = (slice(0, 1), slice(0, 1), slice(22, 40))
    _, edt_n, _ = distance_map(mask[none].astype(np.float32), 0.5, 1.0, max_distance=32)
    assert certified_radius(edt_n, none, mask.shape, (slice(0, 1), slice(0, 1), slice(30, 34)), 32) == -1


def test_distance_map_caps_and_fills_a_region_without_boundary():
    mask, edt, dist = distance_map(np.ones((4, 5, 6), np.float32), 0.5, 1.0, max_distance=7)
    assert mask.all() and np.all(edt == 7) and np.allclose(dist, 7)
    b = np.ones((1, 1, 60), np.float32)
    b[0, 0, 0] = 0
    assert distance_map(b, 0.5, 0.0, max_distance=10)[1].max() == 10


def _stitch(affs, block, context, per_slice=False):
    """Whole-volume fragments from block_ascent pieces and their joins (what the block-wise stages do)."""
    shape = affs.shape[1:]
    names = np.zeros(shape, np.uint64)
    joins, contexts = [], []
    for pos in itertools.product(*(range(-(-n // b)) for n, b in zip(shape, block))):
        core = tuple(slice(p * b, min((p + 1) * b, n)) for p, b, n in zip(pos, block, shape))
        c = context
        while True:
            read = tuple(slice(max(0, s.start - c), min(n, s.stop + c)) for s, n in zip(core, shape))
            got = block_ascent(affs[(slice(None),) + read], read, core, shape, per_slice=per_slice)
            if not isinstance(got, int):
                break
            assert got > c  # asking for more context always asks for more
            c = got
        contexts.append(c)
        names[core] = got[0]
        joins.append(got[1])
    ids, inverse = np.unique(names, return_inverse=True)
    joins = np.concatenate(joins)
    a = np.searchsorted(ids, joins[:, 0])
    b = inverse.ravel()[joins[:, 1].astype(np.int64)]  # the piece holding the joined voxel
    return join_pieces(len(ids), a, b)[inverse].reshape(shape), contexts, len(ids)


@pytest.mark.parametrize("shape, block, context, per_slice, seed", [
    ((20, 40, 40), (8, 16, 16), 0, False, 0),
    ((20, 40, 40), (8, 16, 16), 16, False, 1),
    ((30, 50, 45), (7, 13, 11), 4, False, 2),
    ((20, 40, 40), (8, 16, 16), 0, True, 3),
    ((12, 45, 38), (5, 9, 17), 2, True, 4),
])
def test_blocks_stitched_by_their_joins_are_the_whole_volume_fragments(shape, block, context, per_slice, seed):
    affs = smooth_affinities(shape, seed=seed)
    whole = ascent_fragments(affs, per_slice=per_slice)
    stitched, contexts, pieces = _stitch(affs, block, context, per_slice)
    assert same_partition(stitched, whole)
    assert pieces > len(np.unique(whole))  # fragments do cross faces: the joins did the work
    if context == 0:
        assert min(contexts) > margin()  # every block had to read more than it was given


def test_uint8_affinities_give_the_fragments_of_their_float_values():
    affs = smooth_affinities((10, 30, 30), seed=5)
    q = np.rint(affs * 255).astype(np.uint8)
    np.testing.assert_array_equal(ascent_fragments(q), ascent_fragments(q.astype(np.float32) / np.float32(255)))
    stitched, _, _ = _stitch(q, (5, 10, 10), 3)
    assert same_partition(stitched, ascent_fragments(q))


def _naive_ascent(dist, mask, md=2):
    """The rules of the module docstring written out voxel by voxel (slow, for tiny volumes)."""
    shape = dist.shape
    voxels = list(itertools.product(*map(range, shape)))
    parent = {}
    for v in voxels:
        best, target = dist[v], v
        for ax in range(3):
            for sgn in (-1, 1):
                w = list(v)
                w[ax] += sgn
                w = tuple(w)
                if all(0 <= c < n for c, n in zip(w, shape)) and (mask[w] or not mask[v]) and dist[w] > best:
                    best, target = dist[w], w
        if target == v:
            win = [w for w in itertools.product(*(range(max(0, c - md), min(n, c + md + 1))
                                                  for c, n in zip(v, shape)))]
            if mask[v]:  # voxels reachable from v through interior voxels of the window
                box = tuple(slice(max(0, c - md), min(n, c + md + 1)) for c, n in zip(v, shape))
                lab = ndimage.label(mask[box])[0]
                here = lab[tuple(c - b.start for c, b in zip(v, box))]
                win = [w for w in win if lab[tuple(c - b.start for c, b in zip(w, box))] == here]
            top = max(win, key=lambda w: (dist[w], tuple(-c for c in w)))  # highest, then lowest index
            if dist[top] > dist[v]:
                target = top
        parent[v] = target
    group = {v: v for v in voxels}

    def find(v):
        while group[v] != v:
            v = group[v]
        return v

    for v in voxels:
        group[find(v)] = find(parent[v])
    roots = [v for v in voxels if parent[v] == v]
    for v in roots:  # plateaus
        for ax in range(3):
            w = list(v)
            w[ax] += 1
            w = tuple(w)
            if w in parent and parent[w] == w and dist[w] == dist[v]:
                group[find(v)] = find(w)
    return np.array([[[hash(find((z, y, x))) for x in range(shape[2])] for y in range(shape[1])]
                     for z in range(shape[0])])


@pytest.mark.parametrize("seed", [7, 8, 10])
def test_the_vectorised_forest_equals_the_rules_written_out(seed):
    affs = smooth_affinities((8, 16, 16), seed=seed)
    mask, _, dist = distance_map(affs.mean(0))
    frag = ascent_fragments(affs)
    assert frag.max() >= 5 and same_partition(frag, _naive_ascent(dist, mask))
    assert not same_partition(frag, _naive_ascent(dist, mask, md=0))  # the window rule matters here


def test_the_whole_volume_without_interior_or_without_boundary_is_one_fragment():
    assert ascent_fragments(np.zeros((3, 6, 7, 8), np.float32)).max() == 1
    assert ascent_fragments(np.ones((3, 6, 7, 8), np.float32)).max() == 1
    assert ascent_fragments(np.zeros((3, 2, 7, 8), np.float32), per_slice=True).max() == 2
