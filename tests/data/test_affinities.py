import numpy as np

from neuroadda.data.affinities import affinities_from_labels


def test_hand_computed_affinities():
    lab = np.array([[[1, 1, 0, 2]], [[1, 3, 3, 2]]], dtype=np.uint64)  # (z=2, y=1, x=4)
    affs, mask = affinities_from_labels(lab)
    # x channel: pairs (v, v-1) along x; first column has no neighbour
    np.testing.assert_array_equal(affs[2, 0, 0], [0, 1, 0, 0])
    np.testing.assert_array_equal(mask[2, 0, 0], [0, 1, 1, 1])  # 1-0 and 0-2 edges are boundaries
    np.testing.assert_array_equal(affs[2, 1, 0], [0, 0, 1, 0])
    # z channel: z=1 vs z=0
    np.testing.assert_array_equal(affs[0, 1, 0], [1, 0, 0, 1])
    np.testing.assert_array_equal(mask[0, 1, 0], [1, 1, 1, 1])
    assert mask[0, 0].sum() == 0 and mask[1].sum() == 0  # no neighbour below z=0, y has size 1


def test_zero_both_ends_ignored_and_unlabelled_mode():
    lab = np.array([[[0, 0, 5, 5]]], dtype=np.uint64)
    _, mask_b = affinities_from_labels(lab, label_zero="boundary")
    np.testing.assert_array_equal(mask_b[2, 0, 0], [0, 0, 1, 1])
    _, mask_u = affinities_from_labels(lab, label_zero="unlabelled")
    np.testing.assert_array_equal(mask_u[2, 0, 0], [0, 0, 0, 1])


def test_2d_per_slice_masks_z():
    rng = np.random.default_rng(0)
    lab = rng.integers(0, 4, (4, 6, 6)).astype(np.uint64)
    affs, mask = affinities_from_labels(lab, labels_kind="2d_instance_per_slice")
    assert mask[0].sum() == 0 and affs[0].sum() == 0 and mask[1:].sum() > 0


def test_long_range_offsets_hand_computed():
    lab = np.array([[[1, 1, 2, 1, 0]]], dtype=np.uint64)  # (z=1, y=1, x=5)
    affs, mask = affinities_from_labels(lab, offsets=[(0, 0, -1), (0, 0, -2), (0, 0, 3)])
    np.testing.assert_array_equal(affs[0, 0, 0], [0, 1, 0, 0, 0])
    np.testing.assert_array_equal(affs[1, 0, 0], [0, 0, 0, 1, 0])  # x=3 vs x=1: both 1
    np.testing.assert_array_equal(mask[1, 0, 0], [0, 0, 1, 1, 1])  # x=4 (0) vs x=2 (2): boundary
    np.testing.assert_array_equal(affs[2, 0, 0], [1, 0, 0, 0, 0])  # x=0 vs x=3: both 1
    np.testing.assert_array_equal(mask[2, 0, 0], [1, 1, 0, 0, 0])  # x=1 vs x=4 (0) counts, x>=2 no partner


def test_default_offsets_equal_explicit_nearest_neighbours():
    rng = np.random.default_rng(1)
    lab = rng.integers(0, 5, (5, 6, 7)).astype(np.uint64)
    a, m = affinities_from_labels(lab)
    b, n = affinities_from_labels(lab, offsets=[(-1, 0, 0), (0, -1, 0), (0, 0, -1)])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(m, n)
    # the z channel by an independent formula: labels[v] == labels[v - e_z] and nonzero
    np.testing.assert_array_equal(a[0, 1:], ((lab[1:] == lab[:-1]) & (lab[1:] != 0)).astype(np.float32))
