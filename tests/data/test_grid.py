"""The one rule for how a target meets a backbone (neuroadda.data.grid), and the volume views built on it."""

from __future__ import annotations

import numpy as np
import pytest

from neuroadda.data.grid import grid_shape, meet
from neuroadda.data.volume import GridView, model_view, on_grid, open_volume, resize, seen_by
from tests.conftest import blob_labels, labelled_volume


@pytest.mark.parametrize("target, backbone, expected", [
    ((30, 6, 6), (10, 10, 10), (30, 10, 10)),     # a 6 nm ATUM target and a 10 nm FIB-SEM backbone meet at 10 nm
    ((30, 6, 6), (30, 10, 10), (30, 10, 10)),
    ((50, 4, 4), (10, 10, 10), (50, 10, 10)),     # ssTEM sections are never interpolated
    ((10, 10, 10), (50, 10, 10), (10, 10, 10)),   # nor are an isotropic target's planes dropped
    ((8, 8, 8), (10, 10, 10), (10, 10, 10)),      # both isotropic: every axis at the backbone's spacing
    ((10, 10, 10), (10, 10, 10), (10, 10, 10)),
    ((40, 4, 4), (50, 4.6, 4.6), (40, 4.6, 4.6)),
])
def test_meet_by_hand(target, backbone, expected):
    assert meet(target, backbone) == pytest.approx(expected)


def test_grid_shape_rounds_like_a_volume():
    assert grid_shape((100, 512, 256), (30, 6, 6), (30, 10, 10)) == (100, 307, 154)
    assert grid_shape((3, 3, 3), (1, 1, 1), (10, 10, 10)) == (1, 1, 1)  # never empty


@pytest.fixture
def six_nm(tmp_path):
    return labelled_volume(tmp_path / "six.h5", 3, shape=(10, 60, 50), cell=9, voxel_size=(30, 6, 6))


def test_seen_by_resamples_once_from_the_stored_arrays(six_nm):
    vol = open_volume(six_nm)
    seen = seen_by(vol, (10.0, 10.0, 10.0))
    assert seen.voxel_size == (30.0, 10.0, 10.0) and seen.shape == (10, 36, 30)
    direct = open_volume(six_nm, resample_to=(30, 10, 10))
    box = (slice(2, 7), slice(5, 30), slice(0, 30))
    assert np.array_equal(seen.raw.read(box), direct.raw.read(box))
    assert np.array_equal(seen.labels.read(box), direct.labels.read(box))
    # already on the grid (the study's prepared target), or unknown voxel size: the volume itself
    assert seen_by(direct, (10.0, 10.0, 10.0)) is direct
    assert on_grid(seen, (30.0, 10.0, 10.0)) is seen


def test_unknown_voxel_size_is_used_as_stored(tmp_path):
    path = tmp_path / "bare.npy"
    np.save(path, np.zeros((4, 8, 8), np.uint8))
    vol = open_volume(str(path))
    assert seen_by(vol, (10.0, 10.0, 10.0)) is vol and model_view(vol, (10.0, 10.0, 10.0)) is vol.raw


def test_grid_view_reads_a_box_as_the_model_sees_it(tmp_path):
    from skimage.measure import block_reduce

    path = labelled_volume(tmp_path / "five.h5", 2, shape=(8, 40, 40), cell=7, voxel_size=(30, 5, 5))
    vol = open_volume(path)
    view = model_view(vol, (10.0, 10.0, 10.0))  # meets at 30 x 10 x 10: 2x2 in-plane means
    assert isinstance(view, GridView) and view.voxel_size == (30.0, 10.0, 10.0)
    box = (slice(0, 8), slice(4, 36), slice(8, 40))
    ref = block_reduce(vol.raw.read(box).astype(np.float64), (1, 2, 2), np.mean)  # independent: skimage
    assert np.allclose(view.read(box), ref, atol=1e-4)


def test_resize_labels_is_nearest_and_creates_no_ids():
    lab = blob_labels((6, 30, 30), cell=5, seed=1)
    small = resize(lab, (6, 18, 18), labels=True)
    assert set(np.unique(small)) <= set(np.unique(lab))
