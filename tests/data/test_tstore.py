"""N5 and neuroglancer precomputed inputs (through tensorstore) read like the same array in zarr, with the voxel
size from their own metadata; a stored pyramid level is read where the backbone meets the target."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import tensorstore as ts
import zarr

from neuroadda.data.grid import pick_level
from neuroadda.data.volume import model_view, open_volume, seen_by
from neuroadda.errors import InputError

SHAPE = (10, 24, 36)  # z, y, x: every axis different, so a transposed read cannot pass


@pytest.fixture
def arr():
    return np.random.default_rng(0).integers(0, 255, SHAPE).astype(np.uint8)


def _zarr(tmp_path, a):
    z = zarr.create_array(store=str(tmp_path / "ref.zarr"), shape=a.shape, chunks=(4, 8, 8), dtype=a.dtype)
    z[...] = a
    return open_volume(str(tmp_path / "ref.zarr"), labels_key=None, voxel_size=(40.0, 4.0, 4.0))


def _n5(path, a, **attrs):
    """An N5 dataset written by tensorstore in N5's own axis order (x, y, z)."""
    s = ts.open({"driver": "n5", "kvstore": path.resolve().as_uri() + "/", "create": True,
                 "metadata": {"dimensions": list(a.shape[::-1]), "blockSize": [8, 8, 4], "dataType": str(a.dtype),
                              "compression": {"type": "gzip"}, **attrs}}).result()
    s[...] = a.T


def _precomputed(path, levels):
    """A precomputed volume written by tensorstore: one scale per (array (z, y, x), resolution (x, y, z) nm)."""
    for k, (a, res) in enumerate(levels):
        s = ts.open({"driver": "neuroglancer_precomputed", "kvstore": path.resolve().as_uri() + "/",
                     "multiscale_metadata": {"type": "image", "data_type": "uint8", "num_channels": 1},
                     "scale_metadata": {"size": list(a.shape[::-1]), "resolution": res, "encoding": "raw",
                                        "chunk_size": [8, 8, 4], "voxel_offset": [0, 0, 0]},
                     "create": True, "open": k > 0}).result()
        s[..., 0] = a.T


def _everything(vol):
    return vol.raw.read(tuple(slice(0, n) for n in vol.shape))


def test_n5_reads_like_zarr_with_voxel_size_from_its_resolution(tmp_path, arr):
    _n5(tmp_path / "vol.n5" / "raw", arr, resolution=[4, 4, 40], units=["nm", "nm", "nm"])
    ref = _zarr(tmp_path, arr)
    for spec in (f"{tmp_path / 'vol.n5'}:raw", "n5://" + (tmp_path / "vol.n5" / "raw").as_uri()):
        vol = open_volume(spec, labels_key=None)
        assert vol.shape == SHAPE and vol.voxel_size == (40.0, 4.0, 4.0)
        assert np.array_equal(_everything(vol), _everything(ref))
        box = (slice(3, 9), slice(5, 21), slice(7, 30))
        assert np.array_equal(vol.raw.read(box), ref.raw.read(box))


def test_n5_pixel_resolution_in_micrometres(tmp_path, arr):
    _n5(tmp_path / "vol.n5", arr, pixelResolution={"dimensions": [0.004, 0.004, 0.04], "unit": "um"})
    vol = open_volume(str(tmp_path / "vol.n5"), labels_key=None)  # the dataset itself: no key
    assert np.allclose(vol.voxel_size, (40.0, 4.0, 4.0))


def test_hand_written_n5_block_fixes_the_axis_order(tmp_path):
    """An N5 written by hand from the format spec (big-endian header, x fastest), no tensorstore involved."""
    a = np.arange(2 * 3 * 4, dtype=np.uint16).reshape(2, 3, 4)  # z, y, x
    d = tmp_path / "hand.n5" / "raw"
    (d / "0" / "0").mkdir(parents=True)
    (tmp_path / "hand.n5" / "attributes.json").write_text(json.dumps({"n5": "4.0.0"}))
    (d / "attributes.json").write_text(json.dumps({"dimensions": [4, 3, 2], "blockSize": [4, 3, 2],
                                                   "dataType": "uint16", "compression": {"type": "raw"},
                                                   "resolution": [8, 8, 30]}))
    header = struct.pack(">HH3I", 0, 3, 4, 3, 2)
    (d / "0" / "0" / "0").write_bytes(header + a.astype(">u2").tobytes(order="C"))  # C order of (z, y, x) = x fastest
    vol = open_volume(f"{tmp_path / 'hand.n5'}:raw", labels_key=None)
    assert vol.voxel_size == (30.0, 8.0, 8.0)
    assert np.array_equal(_everything(vol), a)


def test_precomputed_reads_like_zarr_with_voxel_size_from_its_info(tmp_path, arr):
    _precomputed(tmp_path / "pc", [(arr, [4, 4, 40])])
    ref = _zarr(tmp_path, arr)
    for spec in (str(tmp_path / "pc"), "precomputed://" + (tmp_path / "pc").as_uri()):
        vol = open_volume(spec, labels_key=None)
        assert vol.shape == SHAPE and vol.voxel_size == (40.0, 4.0, 4.0)
        assert np.array_equal(_everything(vol), _everything(ref))


def test_precomputed_pyramid_level_is_chosen_by_voxel_size(tmp_path, arr):
    coarse = arr[:, ::2, ::2] // 2  # a level whose values differ, so reading it is visible
    _precomputed(tmp_path / "pc", [(arr, [4, 4, 40]), (coarse, [8, 8, 40])])
    vol = open_volume("precomputed://" + (tmp_path / "pc").as_uri(), labels_key=None)
    assert vol.voxel_size == (40.0, 4.0, 4.0)  # the finest level is the target's own grid
    at8 = seen_by(vol, (40.0, 8.0, 8.0))  # a backbone trained at 8 nm in-plane: level 1, not level 0 resampled
    assert at8.raw.level == 1 and at8.shape == coarse.shape
    assert np.array_equal(at8.raw.read(tuple(slice(0, n) for n in coarse.shape)), coarse)
    view = model_view(vol, (40.0, 8.0, 8.0))
    assert view.level == 1
    assert np.array_equal(view.read((slice(2, 6), slice(4, 20), slice(8, 24))), coarse[2:6, 2:10, 4:12])
    at10 = seen_by(vol, (40.0, 10.0, 10.0))  # coarser than level 1: still level 1, resampled the rest of the way
    assert at10.raw.level == 1
    at6 = seen_by(vol, (40.0, 6.0, 6.0))  # finer than level 1: level 0
    assert at6.raw.level == 0


def test_pick_level_takes_the_coarsest_level_not_coarser_than_the_grid():
    levels = [(30, 4, 4), (30, 8, 8), (30, 16, 16), (60, 32, 32)]
    assert pick_level(levels, (30, 10, 10)) == 1
    assert pick_level(levels, (30, 16, 16)) == 2
    assert pick_level(levels, (30, 40, 40)) == 2  # level 3 is coarser in z than the grid
    assert pick_level(levels, (30, 3, 3)) == 0  # none fits: level 0


@pytest.mark.parametrize("fmt", ["0.4", "0.5"])
def test_ome_zarr_pyramid_level_is_chosen_by_voxel_size(tmp_path, arr, fmt):
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.writer import write_multiscales_metadata

    v04 = fmt == "0.4"
    group = zarr.open_group(str(tmp_path / "img.ome.zarr"), mode="w", zarr_format=2 if v04 else 3)
    levels = [arr, arr[:, ::2, ::2] // 2, arr[:, ::4, ::4] // 3]
    for k, a in enumerate(levels):
        group.create_array(str(k), shape=a.shape, dtype=a.dtype, chunks=(4, 8, 8))[...] = a
    datasets = [{"path": str(k), "coordinateTransformations": [{"type": "scale", "scale": [0.04, 0.004 * 2**k,
                                                                                             0.004 * 2**k]}]}
                for k in range(3)]
    axes = [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
    write_multiscales_metadata(group, datasets, fmt=FormatV04() if v04 else FormatV05(), axes=axes)
    vol = open_volume(str(tmp_path / "img.ome.zarr"), labels_key=None)
    assert np.allclose(vol.voxel_size, (40.0, 4.0, 4.0)) and np.array_equal(_everything(vol), arr)
    seen = seen_by(vol, (40.0, 16.0, 16.0))
    assert seen.raw.level == 2
    assert np.array_equal(seen.raw.read(tuple(slice(0, n) for n in seen.shape)), levels[2])


def test_bad_inputs_are_one_line(tmp_path, arr):
    _n5(tmp_path / "c.n5" / "raw", arr)
    with pytest.raises(InputError, match="no dataset 'labels'.*raw"):
        open_volume(f"{tmp_path / 'c.n5'}:labels", labels_key=None)
    with pytest.raises(InputError, match="unknown volume URL scheme"):
        open_volume("zarr9://" + tmp_path.as_uri(), labels_key=None)
    with pytest.raises(InputError, match="no neuroglancer precomputed 'info'"):
        open_volume("precomputed://" + (tmp_path / "nothing").as_uri(), labels_key=None)


def test_predict_reads_the_level_that_matches_the_backbone(tmp_path, arr):
    """A 5 nm volume with a stored 10 nm level, a 10 nm backbone: the model reads level 1 as it is (no resampling)
    and the affinities come back on the volume's own 5 nm grid."""
    from neuroadda.workflows.predict import predict_volume
    from tests.conftest import tiny_backbone

    fine = np.repeat(np.repeat(np.repeat(arr[:8, :16, :16], 2, 0), 2, 1), 2, 2)  # 16x32x32 at 5 nm
    _precomputed(tmp_path / "pc", [(fine, [5, 5, 5]), (arr[:8, :16, :16], [10, 10, 10])])
    spec = "precomputed://" + (tmp_path / "pc").as_uri()
    out = predict_volume(tiny_backbone(tmp_path / "bb.pt", 0), spec, tmp_path / "affs.zarr", progress=False)
    z = zarr.open_array(str(out), mode="r")
    assert z.attrs["read_level"] == 1 and z.attrs["seen_at_nm"] == [10.0, 10.0, 10.0]
    assert z.shape == (3, 16, 32, 32) and z.attrs["voxel_size_nm"] == [5.0, 5.0, 5.0]
