"""waterz agglomeration: affinity convention, C stdout silencing, independent copies, input validation."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from skimage.measure import label as connected_components
from skimage.metrics import variation_of_information

from neuroadda.data.affinities import affinities_from_labels
from neuroadda.segmentation import agglomerate, segment, silence_c_stdout

REAL_CROP = Path(__file__).resolve().parents[2] / "datasets/data/drosophila_medulla_fibsem_gala/test.h5"


def _vi(gt: np.ndarray, seg: np.ndarray) -> float:
    return float(variation_of_information(gt, seg, ignore_labels=[0]).sum())  # bits (log2)


@pytest.fixture(scope="module")
def synthetic_gt() -> np.ndarray:
    """Voronoi cells in 16x32x32, separated by one-voxel boundaries of 0, each object 6-connected, no singletons."""
    rng = np.random.default_rng(0)
    shape = (16, 32, 32)
    seeds = rng.uniform(0, 1, (25, 3)) * shape
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1).astype(np.float32)
    cells = np.argmin(((grid[..., None, :] - seeds) ** 2).sum(-1), axis=-1) + 1
    for axis in range(3):  # cut every face between two different cells
        a = np.moveaxis(cells, axis, 0)
        a[1:][(a[1:] != a[:-1]) & (a[:-1] != 0) & (a[1:] != 0)] = 0
    gt = connected_components(cells, background=0, connectivity=1)
    sizes = np.bincount(gt.ravel())
    gt[sizes[gt] < 2] = 0  # a lone voxel has no edge of affinity 1: waterz leaves it background
    return connected_components(gt, background=0, connectivity=1).astype(np.uint64)


def _affs(gt: np.ndarray) -> np.ndarray:
    affs, _ = affinities_from_labels(gt)
    return affs.astype(np.float32)


def test_convention_reproduces_synthetic_objects(synthetic_gt):
    assert synthetic_gt.max() >= 15
    affs = _affs(synthetic_gt)
    for t, seg in agglomerate(affs, [0.9, 0.1, 0.5]):
        assert seg.dtype == np.uint64 and seg.shape == synthetic_gt.shape
        assert _vi(synthetic_gt, seg) < 1e-6, t
        assert np.all(seg[synthetic_gt == 0] == 0)  # boundaries stay background
        assert len(np.unique(seg[seg > 0])) == len(np.unique(synthetic_gt[synthetic_gt > 0]))


def test_other_convention_would_fail(synthetic_gt):
    """Affinities shifted to 'v and v + e_c' do not reproduce the objects: the check above can fail."""
    a = _affs(synthetic_gt)
    shifted = np.zeros_like(a)
    shifted[0, :-1], shifted[1, :, :-1], shifted[2, :, :, :-1] = a[0, 1:], a[1, :, 1:], a[2, :, :, 1:]
    assert _vi(synthetic_gt, segment(shifted, 0.5, fragments=None)) > 0.5


def test_real_crop_low_threshold():
    h5py = pytest.importorskip("h5py")
    if not REAL_CROP.exists():
        pytest.skip(f"{REAL_CROP} not present")
    with h5py.File(REAL_CROP, "r") as f:
        gt = f["labels"][:]
    seg = segment(_affs(gt), 0.1, fragments=None)  # waterz's own watershed reproduces gt from gt affinities
    assert _vi(gt, seg) < 0.3
    assert _vi(gt, segment(_affs(gt), 0.5)) < 0.3  # distance-transform fragments (the default) at a mid threshold


def test_uint8_affinities_match_float(synthetic_gt):
    affs = _affs(synthetic_gt)
    noisy = np.clip(affs * 0.8 + np.random.default_rng(1).uniform(0, 0.2, affs.shape), 0, 1).astype(np.float32)
    as_u8 = np.rint(noisy * 255).astype(np.uint8)
    np.testing.assert_array_equal(segment(as_u8, 0.5), segment(as_u8.astype(np.float32) / 255, 0.5))


def test_copies_are_independent_and_ordered(synthetic_gt):
    affs = np.clip(_affs(synthetic_gt) * 0.7 + np.random.default_rng(2).uniform(0, 0.3, (3,) + synthetic_gt.shape),
                   0, 1)
    results = list(agglomerate(affs.astype(np.float64), [0.8, 0.05, 0.3, 0.55]))
    thresholds = [t for t, _ in results]
    assert thresholds == [0.05, 0.3, 0.55, 0.8]
    segs = [s for _, s in results]
    counts = [len(np.unique(s)) for s in segs]
    assert all(a >= b for a, b in zip(counts, counts[1:])), counts
    assert counts[0] > counts[-1]  # the copies really differ: not one evolving buffer
    assert len({s.ctypes.data for s in segs}) == len(segs)
    assert all(s.flags.owndata or s.base is None for s in segs)


def test_waterz_stdout_is_silenced(capfd, synthetic_gt):
    import waterz

    affs = _affs(synthetic_gt)
    list(waterz.agglomerate(affs, [0.5]))  # unsilenced waterz writes to fd 1 (so the check below means something)
    assert capfd.readouterr().out.strip() != ""

    print("before", flush=True)
    list(agglomerate(affs, [0.2, 0.6]))
    segment(affs, 0.5)
    os.write(1, b"fd1 works\n")
    print("python works")
    assert capfd.readouterr().out == "before\nfd1 works\npython works\n"


def test_caller_output_between_thresholds_is_kept(capfd, synthetic_gt):
    for t, _ in agglomerate(_affs(synthetic_gt), [0.2, 0.6]):
        print(f"threshold {t}", flush=True)
    assert capfd.readouterr().out == "threshold 0.2\nthreshold 0.6\n"


def test_silence_restores_fd1_on_exception(capfd):
    with pytest.raises(RuntimeError):
        with silence_c_stdout():
            os.write(1, b"hidden\n")
            raise RuntimeError("boom")
    os.write(1, b"visible\n")
    assert capfd.readouterr().out == "visible\n"


@pytest.mark.parametrize(
    ("affs", "match"),
    [
        (np.zeros((2, 4, 4, 4), np.float32), r"shape \(3, z, y, x\)"),
        (np.zeros((4, 4, 4), np.float32), r"shape \(3, z, y, x\)"),
        (np.zeros((3, 0, 4, 4), np.float32), r"shape \(3, z, y, x\)"),
        (np.zeros((3, 4, 4, 4), np.int32), "dtype int32"),
        (np.zeros((3, 4, 4, 4), bool), "dtype bool"),
        (np.full((3, 4, 4, 4), 1.5, np.float32), r"\[0, 1\]"),
        (np.full((3, 4, 4, 4), np.nan, np.float32), r"\[0, 1\]"),
    ],
)
def test_bad_affinities_raise(affs, match):
    with pytest.raises(ValueError, match=match):
        agglomerate(affs, [0.5])


def test_bad_thresholds_and_fragments_raise():
    affs = np.zeros((3, 4, 4, 4), np.float32)
    with pytest.raises(ValueError, match="non-empty"):
        agglomerate(affs, [])
    with pytest.raises(ValueError, match="thresholds must be numbers"):
        agglomerate(affs, ["low"])
    with pytest.raises(ValueError, match="fragments must have shape"):
        agglomerate(affs, [0.5], fragments=np.zeros((4, 4, 5), np.uint64))


def test_fragments_are_used(synthetic_gt):
    seg = segment(_affs(synthetic_gt), 0.5, fragments=None)
    from_fragments = next(agglomerate(_affs(synthetic_gt), [0.5], fragments=synthetic_gt))[1]
    assert _vi(synthetic_gt, from_fragments) < 1e-6 and _vi(seg, from_fragments) < 1e-6
