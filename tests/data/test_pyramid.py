"""Multiscale pyramids: the level rule, window mean and mode against per-window references, and an OME-Zarr
written level by level that ome-zarr-py opens with every level."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
import zarr

from neuroadda.data.grid import pyramid_factors
from neuroadda.data.ome import add_levels, create_image
from neuroadda.data.pyramid import downsample_mean, downsample_mode
from neuroadda.workflows.pyramid import _Downsample
from neuroadda.workflows.scheduler import all_blocks


def test_level_rule():
    assert pyramid_factors((512, 512, 512)) == [(1, 1, 1), (2, 2, 2), (4, 4, 4)]
    assert len(pyramid_factors((1024,) * 3)) == 4 and pyramid_factors((250,) * 3) == [(1, 1, 1)]
    # ssTEM 50x4x4 nm: z waits until the in-plane spacing has caught up (2x rule)
    f = pyramid_factors((300, 4096, 4096), (50.0, 4.0, 4.0))
    assert f[:4] == [(1, 1, 1), (1, 2, 2), (1, 4, 4), (1, 8, 8)] and f[4] == (2, 16, 16)
    assert pyramid_factors((64, 64, 64), min_size=16) == [(1, 1, 1), (2, 2, 2), (4, 4, 4), (8, 8, 8)]


def _ref(block, f, out_shape, reduce):
    out = np.zeros(out_shape, np.float64)
    for i in itertools.product(*(range(n) for n in out_shape)):
        idx = tuple(np.minimum(np.arange(a * k, a * k + k), n - 1) for a, k, n in zip(i, f, block.shape))
        out[i] = reduce(block[np.ix_(*idx)].ravel())
    return out


def test_mean_matches_per_window_reference_with_edge_windows():
    a = np.random.default_rng(0).integers(0, 256, (5, 7, 9)).astype(np.uint8)
    got = downsample_mean(a, (2, 2, 2), (3, 4, 5))
    assert got.dtype == np.uint8 and np.array_equal(got, np.rint(_ref(a, (2, 2, 2), (3, 4, 5), np.mean)))
    c = np.random.default_rng(1).random((3, 6, 4, 8)).astype(np.float32)  # channels first (affinities)
    got = downsample_mean(c, (2, 1, 2), (3, 4, 4))
    assert np.allclose(got[1], _ref(c[1], (2, 1, 2), (3, 4, 4), np.mean), atol=1e-6)


def _mode(v):
    counts = Counter(v.tolist())
    best = max(counts.values())
    return min(k for k, c in counts.items() if c == best)


def test_mode_matches_per_window_reference_and_creates_no_ids():
    a = np.random.default_rng(2).integers(0, 5, (6, 7, 5)).astype(np.uint64) * np.uint64(2**50)
    got = downsample_mode(a, (2, 2, 2), (3, 4, 3))
    assert got.dtype == np.uint64 and np.array_equal(got, _ref(a, (2, 2, 2), (3, 4, 3), _mode).astype(np.uint64))
    assert set(np.unique(got)) <= set(np.unique(a))


def test_ome_zarr_pyramid_written_block_by_block_opens_in_ome_zarr_py(tmp_path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    coarse = np.random.default_rng(3).integers(1, 40, (10, 18, 17)).astype(np.uint64)
    seg = np.repeat(np.repeat(np.repeat(coarse, 4, 0), 4, 1), 4, 2)[:40, :70, :66]  # objects of 4^3 voxels
    path = tmp_path / "seg.ome.zarr"
    create_image(path, seg.shape, np.uint64, voxel_size_nm=(8.0, 8.0, 8.0), chunks=(16, 16, 16))[...] = seg
    factors = pyramid_factors(seg.shape, min_size=16)
    assert len(factors) >= 3
    arrays = add_levels(path, factors, chunks=(16, 16, 16))
    for k, arr in enumerate(arrays, start=1):
        step = tuple(a // b for a, b in zip(factors[k], factors[k - 1]))
        fn = _Downsample(str(path), k, step, labels=True)
        for info in all_blocks(arr.shape, arr.chunks):
            fn(info)
    node = next(iter(Reader(parse_url(str(path)))()))
    assert len(node.data) == len(factors) >= 3
    lvl = [np.asarray(d) for d in node.data]
    assert np.array_equal(lvl[0], seg)
    assert np.array_equal(lvl[1], downsample_mode(seg, factors[1], lvl[1].shape))  # block-wise == whole
    for fine, coarse in zip(lvl, lvl[1:]):
        assert set(np.unique(coarse)) <= set(np.unique(fine))
    ms = node.metadata
    assert [c[0]["scale"] for c in ms["coordinateTransformations"]][1] == [16.0, 16.0, 16.0]


@pytest.mark.parametrize("channel", [False, True])
def test_added_levels_keep_a_resumed_run(tmp_path, channel):
    shape = ((3,) if channel else ()) + (32, 32, 32)
    path = tmp_path / "a.ome.zarr"
    create_image(path, shape, np.float32, voxel_size_nm=(1.0, 1.0, 1.0), chunks=shape, channel_axis=channel)
    (lvl1,) = add_levels(path, [(1, 1, 1), (2, 2, 2)], chunks=(16, 16, 16))
    lvl1[...] = 7
    (again,) = add_levels(path, [(1, 1, 1), (2, 2, 2)], chunks=(16, 16, 16))
    assert again.shape == ((3,) if channel else ()) + (16, 16, 16) and np.all(np.asarray(again[...]) == 7)
    assert zarr.open_group(str(path), mode="r").attrs["ome"]["multiscales"][0]["datasets"][1]["path"] == "1"
