import h5py
import numpy as np
import pytest
import tifffile
import zarr

from neuroadda.data.volume import check_patch_fits, open_labels, open_volume
from neuroadda.errors import InputError
from tests.conftest import blob_labels, raw_from_labels


def _zarr_group(path, raw, lab, fmt):
    g = zarr.open_group(str(path), mode="w", zarr_format=fmt)
    g.create_array("raw", data=raw, chunks=(4, 16, 16))
    g.create_array("labels", data=lab, chunks=(4, 16, 16))
    g.attrs["resolution_nm"] = [30, 6, 6]
    return path


@pytest.mark.parametrize("fmt", [2, 3])
def test_zarr_v2_and_v3(tmp_path, fmt):
    lab = blob_labels()
    raw = raw_from_labels(lab)
    p = _zarr_group(tmp_path / f"v{fmt}.zarr", raw, lab, fmt)
    vol = open_volume(str(p))
    assert vol.shape == lab.shape and vol.voxel_size == (30.0, 6.0, 6.0)
    np.testing.assert_array_equal(vol.raw.read((slice(2, 5), slice(3, 20), slice(0, 7))), raw[2:5, 3:20, 0:7])
    np.testing.assert_array_equal(vol.labels.read((slice(0, 12), slice(0, 40), slice(0, 40))), lab)


def test_hdf5_default_keys_and_attrs(tiny_h5):
    vol = open_volume(str(tiny_h5))
    assert vol.voxel_size == (20.0, 10.0, 10.0) and vol.labels is not None
    with h5py.File(tiny_h5) as f:
        np.testing.assert_array_equal(vol.raw[1:3, 5:9, 7:30], f["raw"][1:3, 5:9, 7:30])


def test_tiff_multipage_and_folder(tmp_path):
    lab = blob_labels().astype(np.uint32)
    raw = raw_from_labels(lab)
    tifffile.imwrite(tmp_path / "raw.tif", raw)
    tifffile.imwrite(tmp_path / "lab.tif", lab)
    (tmp_path / "slices").mkdir()
    for z in range(raw.shape[0]):
        tifffile.imwrite(tmp_path / "slices" / f"{z:03d}.tif", raw[z])
    vol = open_volume(str(tmp_path / "raw.tif"), labels=str(tmp_path / "lab.tif"), voxel_size=(40, 4, 4))
    np.testing.assert_array_equal(vol.raw[3:7, 0:10, 5:6], raw[3:7, 0:10, 5:6])
    np.testing.assert_array_equal(vol.labels[0:12, 0:40, 0:40], lab)
    folder = open_volume(str(tmp_path / "slices"))
    assert folder.shape == raw.shape and folder.labels is None
    np.testing.assert_array_equal(folder.raw[5:9, 1:2, 0:40], raw[5:9, 1:2, 0:40])


def test_reads_are_lazy(tiny_h5, monkeypatch):
    vol = open_volume(str(tiny_h5))
    seen = []
    orig = vol.raw.array.__class__.__getitem__
    monkeypatch.setattr(vol.raw.array.__class__, "__getitem__", lambda self, idx: seen.append(idx) or orig(self, idx))
    vol.raw.read((slice(0, 4), slice(0, 8), slice(0, 8)))
    assert seen == [(slice(0, 4), slice(0, 8), slice(0, 8))]


def test_resampling_to_coarser_voxels(tiny_h5):
    vol = open_volume(str(tiny_h5), resample_to=(20.0, 20.0, 20.0))
    assert vol.shape == (12, 20, 20) and vol.voxel_size == (20.0, 20.0, 20.0)
    with h5py.File(tiny_h5) as f:
        raw = f["raw"][:].astype(np.float32)
        lab = f["labels"][:]
    expect = raw.reshape(12, 20, 2, 20, 2).mean(axis=(2, 4))  # area = mean over 2x2 in-plane
    np.testing.assert_allclose(vol.raw[0:12, 0:20, 0:20], expect, atol=1e-3)
    got = vol.labels[0:12, 0:20, 0:20]
    assert set(np.unique(got)) <= set(np.unique(lab))  # nearest neighbour keeps ids


@pytest.mark.parametrize("case, fragment", [
    ("missing_file", "no such file"),
    ("missing_key", "no dataset 'nope'"),
    ("wrong_ndim", "3-D"),
    ("shape_mismatch", "does not match raw shape"),
    ("float_labels", "labels must be integers"),
    ("empty", "empty volume"),
])
def test_bad_input_messages(tmp_path, case, fragment):
    p = tmp_path / "bad.h5"
    lab = blob_labels()
    raw = raw_from_labels(lab)
    with h5py.File(p, "w") as f:
        if case == "wrong_ndim":
            f["raw"] = raw[0]
        elif case == "empty":
            f["raw"] = np.zeros((0, 4, 4), np.uint8)
        else:
            f["raw"] = raw
        f["labels"] = {"shape_mismatch": lab[:, :20], "float_labels": lab.astype(np.float32)}.get(case, lab)
    spec = {"missing_file": str(tmp_path / "none.h5"), "missing_key": f"{p}:nope"}.get(case, str(p))
    with pytest.raises(InputError, match=fragment) as e:
        open_volume(spec, require_labels=True)
    assert "\n" not in str(e.value) and ("none.h5" in str(e.value) or "bad.h5" in str(e.value))


def test_patch_larger_than_volume(tiny_h5):
    vol = open_volume(str(tiny_h5))
    with pytest.raises(InputError, match="larger than the volume"):
        check_patch_fits(vol, (16, 32, 32))


def test_unknown_dataset_suggests_close_names():
    with pytest.raises(InputError, match="did you mean gala-train"):
        open_volume("gala-trian")


def test_bundled_dataset_by_name():
    vol = open_volume("gala-test", require_labels=True)
    assert vol.shape == (50, 100, 200) and vol.labels_kind == "3d_instance"
    assert vol.card is not None and vol.card.voxel_size_nm == (10.0, 10.0, 10.0)


def test_open_labels_with_key(tiny_h5):
    gt = open_labels(str(tiny_h5))
    assert gt.labels.shape == (12, 40, 40) and gt.labels.dtype == np.uint64


def test_mixed_resampling_is_area_down_then_linear_up(tiny_h5):
    # z 20 -> 10 nm (up x2), y/x 10 -> 20 nm (down x2): in-plane must be averaged, not sampled (no aliasing)
    vol = open_volume(str(tiny_h5), resample_to=(10.0, 20.0, 20.0))
    assert vol.shape == (24, 20, 20)
    with h5py.File(tiny_h5) as f:
        raw = f["raw"][:].astype(np.float32)
    down = raw.reshape(12, 20, 2, 20, 2).mean(axis=(2, 4))
    got = vol.raw[0:24, 0:20, 0:20]
    np.testing.assert_allclose(got[1::2][:-1], 0.75 * down[:-1] + 0.25 * down[1:], atol=1e-3)  # linear in z
    np.testing.assert_allclose(got[0], down[0], atol=1e-3)
