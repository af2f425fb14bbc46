import json

import h5py
import numpy as np
import pytest
import tifffile

from neuroadda.active.annotations import export_samples, oracle_labels, read_annotation, sample_labels
from neuroadda.data.volume import Volume, open_volume
from neuroadda.errors import InputError
from tests.conftest import blob_labels, raw_from_labels

VS = (20.0, 10.0, 10.0)
BOXES = [(slice(0, 4), slice(8, 24), slice(16, 32)), (slice(6, 12), slice(0, 8), slice(24, 40))]
NAMES = ["sample_00", "sample_01"]


@pytest.fixture
def lab():
    return blob_labels((12, 40, 40))


@pytest.fixture
def raw(lab):
    return raw_from_labels(lab)


class _Reader:
    """The bare minimum export_samples needs: ``read(box)``, no shape or dtype."""

    def __init__(self, arr):
        self.arr = arr

    def read(self, box):
        return self.arr[box]


def _export(raw, out, **kw):
    return export_samples(Volume(raw, "raw.h5:raw", VS), BOXES, out, names=NAMES, voxel_size=VS, **kw)


def test_export_h5_content_and_attrs(tmp_path, raw):
    extra = {"strategy": "entropy", "score": 0.25, "round": 2, "ids": [3, 1, 2],
             "source": {"spec": "vol.h5:raw", "box": [[0, 4]]}, "tags": ["a", "b"], "note": None}
    paths = _export(raw, tmp_path / "out", attrs=extra)
    assert paths == [tmp_path / "out" / f"{n}.h5" for n in NAMES]
    for path, box in zip(paths, BOXES):
        with h5py.File(path, "r") as f:
            np.testing.assert_array_equal(f["raw"][()], raw[box])
            assert f["raw"].dtype == np.uint8
            assert f["raw"].compression == "gzip"
            a = f.attrs
            off = [s.start for s in box]
            assert list(a["offset_voxels"]) == off
            assert list(a["shape"]) == [s.stop - s.start for s in box]
            np.testing.assert_allclose(a["offset_nm"], np.multiply(off, VS))
            np.testing.assert_allclose(a["voxel_size_nm"], VS)
            assert f"{path.stem}_labels.tif" in a["instructions"] and "'labels'" in a["instructions"]
            assert a["strategy"] == "entropy" and a["score"] == 0.25 and a["round"] == 2
            assert list(a["ids"]) == [3, 1, 2]
            assert json.loads(a["source"]) == extra["source"]
            assert json.loads(a["tags"]) == ["a", "b"]
            assert json.loads(a["note"]) is None


def test_offset_nm_second_box_hand_checked(tmp_path, raw):
    path = _export(raw, tmp_path)[1]
    with h5py.File(path, "r") as f:
        assert list(f.attrs["offset_voxels"]) == [6, 0, 24]
        assert list(f.attrs["offset_nm"]) == [120.0, 0.0, 240.0]
        assert list(f.attrs["shape"]) == [6, 8, 16]


def test_export_tiff_pages_equal_raw(tmp_path, raw):
    _export(raw, tmp_path)
    for name, box in zip(NAMES, BOXES):
        with tifffile.TiffFile(tmp_path / f"{name}.tif") as tif:
            assert len(tif.pages) == box[0].stop - box[0].start
            pages = np.stack([p.asarray() for p in tif.pages])
        np.testing.assert_array_equal(pages, raw[box])


def test_export_atomic_leaves_no_tmp_and_overwrites(tmp_path, raw):
    _export(raw, tmp_path)
    _export(np.zeros_like(raw) + 7, tmp_path)  # re-export replaces the files in place
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}{s}" for n in NAMES for s in (".h5", ".tif"))
    with h5py.File(tmp_path / "sample_00.h5", "r") as f:
        assert (f["raw"][()] == 7).all()


def test_export_bare_reader_float_and_none_start(tmp_path):
    arr = np.random.default_rng(0).random((3, 8, 8)).astype(np.float32)
    (path,) = export_samples(_Reader(arr), [(slice(None, 2), slice(1, 5), slice(2, 8))], tmp_path,
                             names=["s"], voxel_size=(1, 2, 3))
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["raw"][()], arr[:2, 1:5, 2:8])
        assert list(f.attrs["offset_voxels"]) == [0, 1, 2]
        assert list(f.attrs["offset_nm"]) == [0.0, 2.0, 6.0]
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "s.tif"), arr[:2, 1:5, 2:8])


def test_export_names_must_match_boxes(tmp_path, raw):
    with pytest.raises(ValueError, match="2 boxes but 1 names"):
        export_samples(_Reader(raw), BOXES, tmp_path, names=["a"], voxel_size=VS)


def test_round_trip_h5_annotated_by_human(tmp_path, raw, lab):
    paths = _export(raw, tmp_path)
    box = BOXES[0]
    with h5py.File(paths[0], "a") as f:  # the human adds labels to the exported file
        f.create_dataset("labels", data=lab[box].astype(np.uint32))
    got = read_annotation(tmp_path, "sample_00", (4, 16, 16))
    assert got.dtype == np.uint64 and got.shape == (4, 16, 16)
    np.testing.assert_array_equal(got, lab[box].astype(np.uint32))
    assert len(np.unique(got)) > 2


@pytest.mark.parametrize("suffix", ["_labels.tif", "_labels.tiff", "_labels.npy", ".npy"])
def test_round_trip_returned_file(tmp_path, raw, lab, suffix):
    _export(raw, tmp_path)  # the exported .h5 has no 'labels': the returned file is used
    box = BOXES[1]
    ids = (lab[box] % 60000).astype(np.uint16)  # tifffile-friendly ids, nonzero somewhere
    path = tmp_path / f"sample_01{suffix}"
    if suffix.endswith(".npy"):
        np.save(path, ids)
    else:
        tifffile.imwrite(path, ids, photometric="minisblack")
    got = read_annotation(tmp_path, "sample_01", (6, 8, 16))
    assert got.dtype == np.uint64
    np.testing.assert_array_equal(got, ids)


def test_h5_labels_take_precedence_over_tif(tmp_path, raw):
    paths = _export(raw, tmp_path)
    with h5py.File(paths[0], "a") as f:
        f.create_dataset("labels", data=np.full((4, 16, 16), 5, np.uint64))
    tifffile.imwrite(tmp_path / "sample_00_labels.tif", np.full((4, 16, 16), 9, np.uint16),
                     photometric="minisblack")
    assert (read_annotation(tmp_path, "sample_00", (4, 16, 16)) == 5).all()


def test_2d_tiff_for_single_slice_sample(tmp_path):
    ids = np.arange(1, 65, dtype=np.uint16).reshape(8, 8)
    tifffile.imwrite(tmp_path / "s_labels.tif", ids)
    got = read_annotation(tmp_path, "s", (1, 8, 8))
    assert got.shape == (1, 8, 8)
    np.testing.assert_array_equal(got[0], ids)


def test_error_labels_dir_missing(tmp_path):
    with pytest.raises(InputError, match="nowhere: labels folder not found"):
        read_annotation(tmp_path / "nowhere", "sample_00", (4, 16, 16))


def test_error_no_candidate_mentions_names_and_h5_without_labels(tmp_path, raw):
    with pytest.raises(InputError) as e:
        read_annotation(tmp_path, "sample_00", (4, 16, 16))
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path) in msg and "no annotation for 'sample_00'" in msg
    for fname in ("sample_00.h5", "sample_00_labels.tif", "sample_00_labels.tiff", "sample_00_labels.npy",
                  "sample_00.npy"):
        assert fname in msg
    assert "exists but has no 'labels'" not in msg
    _export(raw, tmp_path)
    with pytest.raises(InputError, match="sample_00.h5 exists but has no 'labels' dataset"):
        read_annotation(tmp_path, "sample_00", (4, 16, 16))


def test_error_wrong_shape(tmp_path):
    np.save(tmp_path / "s_labels.npy", np.ones((16, 96, 95), np.uint32))
    with pytest.raises(InputError) as e:
        read_annotation(tmp_path, "s", (16, 96, 96))
    msg = str(e.value)
    assert "s_labels.npy" in msg
    assert "expected (z, y, x) = (16, 96, 96) like the exported sample, got (16, 96, 95)" in msg


@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64", "bool"])
def test_error_non_integer_dtype(tmp_path, dtype):
    np.save(tmp_path / "s.npy", np.ones((2, 4, 4), dtype))
    with pytest.raises(InputError, match=rf"s\.npy: labels must be integer ids, got {dtype}$"):
        read_annotation(tmp_path, "s", (2, 4, 4))


def test_error_negative_ids(tmp_path):
    a = np.ones((2, 4, 4), np.int32)
    a[1, 2, 3] = -1
    np.save(tmp_path / "s.npy", a)
    with pytest.raises(InputError, match=r"s\.npy: labels must be non-negative ids.*min -1"):
        read_annotation(tmp_path, "s", (2, 4, 4))
    a[1, 2, 3] = 0  # signed but non-negative is fine
    np.save(tmp_path / "s.npy", a)
    assert read_annotation(tmp_path, "s", (2, 4, 4)).sum() == a.sum()


def test_error_all_zero_h5(tmp_path, raw):
    paths = _export(raw, tmp_path)
    with h5py.File(paths[0], "a") as f:
        f.create_dataset("labels", data=np.zeros((4, 16, 16), np.uint64))
    with pytest.raises(InputError, match=r"sample_00\.h5:labels: all labels are 0 \(unlabelled\)"):
        read_annotation(tmp_path, "sample_00", (4, 16, 16))


def test_error_unreadable_files(tmp_path):
    (tmp_path / "a.h5").write_bytes(b"not hdf5")
    with pytest.raises(InputError, match=r"a\.h5: cannot open as HDF5"):
        read_annotation(tmp_path, "a", (1, 2, 2))
    (tmp_path / "b_labels.tif").write_bytes(b"not a tiff")
    with pytest.raises(InputError, match=r"b_labels\.tif: cannot read"):
        read_annotation(tmp_path, "b", (1, 2, 2))


def test_oracle_equals_ground_truth(tiny_h5):
    vol = open_volume(str(tiny_h5))
    box = (slice(2, 6), slice(8, 24), slice(0, 16))
    got = oracle_labels(vol, box)
    assert got.dtype == np.uint64
    np.testing.assert_array_equal(got, vol.labels.read(box))


def test_oracle_without_labels_raises(tmp_path):
    path = tmp_path / "raw_only.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("raw", data=np.zeros((4, 8, 8), np.uint8))
    vol = open_volume(str(path))
    assert vol.labels is None
    with pytest.raises(InputError, match=r"raw_only\.h5 has no labels: oracle mode needs ground truth; "
                                         r"give --labels DIR with annotations"):
        oracle_labels(vol, (slice(0, 4), slice(0, 8), slice(0, 8)))


def test_oracle_all_zero_region_raises(tmp_path):
    path = tmp_path / "gt.h5"
    lab = np.zeros((4, 8, 8), np.uint64)
    lab[:, 4:, :] = 3
    with h5py.File(path, "w") as f:
        f.create_dataset("raw", data=np.zeros((4, 8, 8), np.uint8))
        f.create_dataset("labels", data=lab)
    vol = open_volume(str(path))
    with pytest.raises(InputError, match=r"gt\.h5:labels \[0:4, 0:4, 0:8\]: all labels are 0"):
        oracle_labels(vol, (slice(0, 4), slice(0, 4), slice(0, 8)))
    assert (oracle_labels(vol, (slice(0, 4), slice(2, 6), slice(0, 8))) > 0).any()


def test_sample_labels_oracle_and_annotated(tiny_h5, tmp_path):
    vol = open_volume(str(tiny_h5))
    boxes = [(slice(0, 4), slice(0, 16), slice(0, 16)), (slice(4, 12), slice(16, 32), slice(8, 40))]
    names = ["sample_00", "sample_01"]
    oracle = sample_labels(vol, boxes, names)
    assert len(oracle) == 2
    for got, box in zip(oracle, boxes):
        np.testing.assert_array_equal(got, vol.labels.read(box))
    paths = export_samples(vol.raw, boxes, tmp_path, names=names, voxel_size=vol.voxel_size)
    for path, got in zip(paths, oracle):
        with h5py.File(path, "a") as f:
            f.create_dataset("labels", data=got + 1)
    annotated = sample_labels(vol, boxes, names, labels_dir=tmp_path)
    for a, o in zip(annotated, oracle):
        np.testing.assert_array_equal(a, o + 1)
    with pytest.raises(InputError, match=r"expected \(z, y, x\) = \(8, 16, 32\)"):
        sample_labels(vol, boxes[::-1], names, labels_dir=tmp_path)  # sample_00 now expected at box 1's shape
