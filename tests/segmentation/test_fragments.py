"""Distance-transform watershed fragments: they respect object boundaries, cover every voxel, and the
segmentation built on them reproduces ground-truth objects (skimage VI as the reference)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import variation_of_information

from neuroadda.data.affinities import affinities_from_labels
from neuroadda.segmentation import segment
from neuroadda.segmentation.agglomerate import segmentations
from neuroadda.segmentation.fragments import watershed_fragments


def _grid_labels(shape=(12, 40, 40), step=10):
    """Boxes of size step^2 per z-slab, separated by one-voxel 0 boundaries in y and x."""
    z, y, x = np.indices(shape)
    lab = 1 + (y // step) * 10 + (x // step) + 100 * (z // 6)
    lab[(y % step == 0) | (x % step == 0)] = 0
    return lab.astype(np.uint64)


def _vi(gt, seg):
    split, merge = variation_of_information(gt, seg, ignore_labels=[0])
    return split + merge


def test_fragments_cover_every_voxel_and_never_straddle_objects():
    gt = _grid_labels()
    affs = affinities_from_labels(gt)[0].astype(np.float32)
    frags = watershed_fragments(affs)
    assert frags.dtype == np.uint64 and frags.shape == gt.shape
    assert frags.min() >= 1
    inside = gt > 0
    # every fragment holds voxels of at most one object (boundary voxels may go either way)
    for f in np.unique(frags[inside]):
        assert len(np.unique(gt[inside & (frags == f)])) == 1


def test_segmentation_from_fragments_reproduces_objects():
    gt = _grid_labels()
    affs = affinities_from_labels(gt)[0].astype(np.float32)
    seg = segment(affs, 0.5)
    assert _vi(gt, seg) < 1e-6
    n_obj = len(np.unique(gt[gt > 0]))
    assert len(np.unique(seg[gt > 0])) == n_obj


def test_noisy_affinities_still_close_and_thresholds_ordered():
    gt = _grid_labels()
    affs = affinities_from_labels(gt)[0].astype(np.float32)
    noisy = np.clip(0.15 + 0.7 * affs + np.random.default_rng(0).normal(0, 0.1, affs.shape), 0, 1).astype(np.float32)
    vis = {t: _vi(gt, seg) for t, seg in segmentations(noisy, [0.3, 0.6, 0.95])}
    one_segment = _vi(gt, np.ones_like(gt))
    assert one_segment > 3.0 and min(vis.values()) < 0.4
    counts = [len(np.unique(seg)) for _, seg in segmentations(noisy, [0.3, 0.95])]
    assert counts[0] >= counts[1]  # a higher waterz threshold merges more


def test_per_slice_fragments_stay_in_their_slice():
    gt = _grid_labels()
    affs = affinities_from_labels(gt)[0].astype(np.float32)
    affs[0] = 0.0  # untrained z-affinities, as for data labelled per 2-D section
    frags = watershed_fragments(affs, per_slice=True)
    for f in np.unique(frags)[:50]:
        assert len(np.unique(np.nonzero(frags == f)[0])) == 1
    seg = segment(affs, 0.5, per_slice=True)
    for z in range(gt.shape[0]):
        assert _vi(gt[z:z + 1], seg[z:z + 1]) < 1e-6


def test_no_interior_gives_one_fragment_and_bad_shape_fails():
    assert np.all(watershed_fragments(np.zeros((3, 4, 8, 8), np.float32)) == 1)
    with pytest.raises(ValueError, match="3, z, y, x"):
        watershed_fragments(np.zeros((2, 4, 8, 8), np.float32))
    with pytest.raises(ValueError, match="fragments must be"):
        segment(np.zeros((3, 4, 8, 8), np.float32), 0.5, fragments="bogus")
