"""Block-wise segmentation stages against whole-volume references: the region graph of blocks sums to waterz's,
the graph agglomeration reproduces waterz's partition, seed-named fragments equal the whole-volume ones when the
context holds the volume."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from neuroadda.segmentation import agglomerate
from neuroadda.segmentation.blockwise import block_fragments, boundary_slabs, concat_edges, core_edges, face_edges
from neuroadda.segmentation.fragments import watershed_fragments
from neuroadda.segmentation.graph import (
    consecutive_labels,
    edge_scores,
    mean_affinity_agglomeration,
    threshold_components,
)
from tests.conftest import same_partition, smooth_affinities


def _dense_rag(frag, affs):
    pairs, sums, counts = core_edges(frag, affs)
    ids, inverse = np.unique(frag, return_inverse=True)
    return ids, inverse.reshape(frag.shape), np.searchsorted(ids, pairs[:, 0]), np.searchsorted(ids, pairs[:, 1]), \
        sums, counts


@pytest.fixture(scope="module")
def case():
    affs = smooth_affinities()
    return affs, watershed_fragments(affs)


def test_region_graph_matches_a_hand_count():
    frag = np.array([[[1, 1, 2], [3, 3, 2]]], np.uint64)  # (1, 2, 3)
    affs = np.zeros((3, 1, 2, 3), np.float32)
    affs[2] = [[0.0, 0.9, 0.2], [0.0, 0.5, 0.4]]  # x: pairs (v, v - e_x)
    affs[1] = [[0.0, 0.0, 0.0], [0.1, 0.3, 0.7]]  # y: pairs (v, v - e_y)
    pairs, sums, counts = core_edges(frag, affs)
    got = {tuple(p): (s, c) for p, s, c in zip(pairs.tolist(), sums, counts)}
    # 1-2: x at (0,0,2) 0.2; 1-3: y at (0,1,0) 0.1 and (0,1,1) 0.3; 2-3: x at (0,1,2) 0.4; y at (0,1,2) is 2-2
    assert set(got) == {(1, 2), (1, 3), (2, 3)}
    assert got[(1, 2)] == pytest.approx((0.2, 1)) and got[(1, 3)] == pytest.approx((0.4, 2))
    assert got[(2, 3)] == pytest.approx((0.4, 1))


def test_graph_agglomeration_is_waterz_on_the_same_fragments(case):
    affs, frag = case
    ids, dense, u, v, sums, counts = _dense_rag(frag, affs)
    assert len(ids) > 30
    merged_any = False
    for t in (0.2, 0.4, 0.6, 0.8):
        mine = mean_affinity_agglomeration(len(ids), u, v, sums, counts, t)[dense]
        waterz = next(agglomerate(affs, [t], fragments=frag))[1]
        assert same_partition(mine, waterz), t
        merged_any |= len(np.unique(mine)) < len(ids) // 2
    assert merged_any


def test_thresholded_components_differ_from_hierarchical_merging(case):
    """The simple alternative ignores how merges change mean affinities: on this case it merges more."""
    affs, frag = case
    ids, dense, u, v, sums, counts = _dense_rag(frag, affs)
    cc = threshold_components(len(ids), u, v, edge_scores(sums, counts), 0.6)
    mean = mean_affinity_agglomeration(len(ids), u, v, sums, counts, 0.6)
    assert len(np.unique(cc)) < len(np.unique(mean))


def test_threshold_components_and_labels_by_hand():
    # 0-1 score 0.1, 1-2 score 0.9, 3-4 score 0.2, node 5 alone
    comps = threshold_components(6, [0, 1, 3], [1, 2, 4], [0.1, 0.9, 0.2], 0.5)
    assert consecutive_labels(comps).tolist() == [1, 1, 2, 3, 3, 4]
    # merging changes means: a-b (0.95) then (ab)-c has sum 0.2+0.8 over 2 pairs = 0.5 mean -> score 0.5
    roots = mean_affinity_agglomeration(3, [0, 0, 1], [1, 2, 2], [0.95, 0.2, 0.8], [1, 1, 1], 0.45)
    assert consecutive_labels(roots).tolist() == [1, 1, 2]  # c stays: its merged edge scores 0.5 >= 0.45
    assert threshold_components(3, [0, 0, 1], [1, 2, 2], [0.05, 0.8, 0.2], 0.45).tolist() == [0, 0, 0]
    with pytest.raises(ValueError):
        mean_affinity_agglomeration(2, [0], [0], [1.0], [1], 0.5)


def test_block_edges_sum_to_the_whole_region_graph(case):
    affs, frag = case
    block, shape = (8, 16, 16), frag.shape
    grid = [range(0, s, b) for s, b in zip(shape, block)]
    slabs, parts = {}, []
    for origin in itertools.product(*grid):
        box = tuple(slice(o, min(o + b, s)) for o, b, s in zip(origin, block, shape))
        parts.append(core_edges(frag[box], affs[(slice(None),) + box]))
        slabs[origin] = boundary_slabs(frag[box], affs[(slice(None),) + box])
    for origin, own in slabs.items():
        for c in range(3):
            if origin[c] == 0:
                continue
            lower = list(origin)
            lower[c] -= block[c]
            parts.append(face_edges(own[f"first{c}"], slabs[tuple(lower)][f"last{c}"], own[f"aff{c}"]))
    pairs, sums, counts = concat_edges(parts)
    w_pairs, w_sums, w_counts = core_edges(frag, affs)
    np.testing.assert_array_equal(pairs, w_pairs)
    np.testing.assert_array_equal(counts, w_counts)
    np.testing.assert_allclose(sums, w_sums, rtol=1e-12)


@pytest.mark.parametrize("per_slice", [False, True])
def test_fragments_with_the_whole_volume_as_context_are_the_whole_volume_ones(case, per_slice):
    affs, _ = case
    whole = watershed_fragments(affs, per_slice=per_slice)
    everything = tuple(slice(0, s) for s in whole.shape)
    out = np.zeros(whole.shape, np.uint64)
    for z0 in (0, 10):  # two cores, each seeing the whole volume
        core = (slice(z0, z0 + 10), slice(0, 40), slice(0, 40))
        out[core] = block_fragments(affs, everything, core, whole.shape, per_slice=per_slice)
    assert same_partition(out, whole)


def test_fragment_names_are_seed_positions_shared_across_blocks(case):
    """A fragment crossing a block face gets one name in both blocks when both reads hold its seed."""
    affs, _ = case
    shape = affs.shape[1:]
    read = (slice(0, 20), slice(0, 40), slice(0, 40))
    top = block_fragments(affs, read, (slice(0, 10), slice(0, 40), slice(0, 40)), shape)
    bottom = block_fragments(affs, read, (slice(10, 20), slice(0, 40), slice(0, 40)), shape)
    shared = np.intersect1d(np.unique(top[-1]), np.unique(bottom[0]))
    assert len(shared) > 10
    seeds = np.unravel_index(shared.astype(np.int64) - 1, shape)  # the name is 1 + the seed's linear index
    whole = block_fragments(affs, read, read, shape)
    assert np.all(whole[seeds] == shared)
