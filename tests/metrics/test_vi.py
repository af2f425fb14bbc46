"""Tests of neuroadda.metrics.vi against hand-computed values, skimage and waterz."""

from pathlib import Path

import numpy as np
import pytest
import skimage.measure
import skimage.metrics as skm
import waterz

from neuroadda.metrics import (
    adapted_rand_error,
    contingency,
    evaluate_segmentation,
    variation_of_information,
)
from neuroadda.metrics import vi as vi_mod

TOL = 1e-9
GALA_TEST = Path(__file__).resolve().parents[2] / "datasets/data/drosophila_medulla_fibsem_gala/test.h5"


def sk_vi(seg, gt, ignore=(0,)):
    """skimage reference: gt FIRST, returns (H(seg|gt), H(gt|seg)), masks by gt labels."""
    split, merge = skm.variation_of_information(gt, seg, ignore_labels=list(ignore))
    return float(split), float(merge)


def sk_are(seg, gt):
    return float(skm.adapted_rand_error(gt, seg, ignore_labels=(0,))[0])


def wz(seg, gt):
    """waterz reference (ignores gt 0, not seg 0); it wants 3-D C-contiguous uint64 arrays,
    so other shapes are reshaped to (1, 1, n): the scores do not depend on the voxel order."""
    s, g = np.asarray(seg), np.asarray(gt)
    if s.ndim != 3:
        s, g = s.reshape(1, 1, -1), g.reshape(1, 1, -1)
    return waterz.evaluate(np.ascontiguousarray(s, dtype=np.uint64), np.ascontiguousarray(g, dtype=np.uint64))


def dense(a):
    """Relabel to 0..k-1 keeping label 0 at 0 (VI and ARE are invariant under relabelling)."""
    u, inv = np.unique(a, return_inverse=True)
    shift = 0 if (u.size and u[0] == 0) else 1
    return (inv + shift).reshape(a.shape).astype(np.int64)


def random_pair(rng, shape, n_gt=7, n_seg=9, p_copy=0.5):
    """gt with blob-ish runs plus a seg that copies gt where it can (realistic overlaps)."""
    gt = rng.integers(0, n_gt, size=shape)
    gt = np.sort(gt.reshape(-1)).reshape(shape) if rng.random() < 0.5 else gt
    seg = np.where(rng.random(shape) < p_copy, gt, rng.integers(0, n_seg, size=shape))
    return seg, gt


def assert_matches_refs(seg, gt):
    split, merge = variation_of_information(seg, gt)
    ref = sk_vi(dense(seg), dense(gt)) if max(seg.max(), gt.max()) > 2**24 else sk_vi(seg, gt)
    w = wz(seg, gt)
    assert split == pytest.approx(ref[0], abs=TOL) and merge == pytest.approx(ref[1], abs=TOL)
    assert split == pytest.approx(w["voi_split"], abs=TOL)
    assert merge == pytest.approx(w["voi_merge"], abs=TOL)
    return split, merge


# --- hand-computed values -------------------------------------------------------------------

def test_identical_is_zero():
    gt = np.arange(1, 25).reshape(2, 3, 4) % 5 + 1
    assert variation_of_information(gt, gt) == (0.0, 0.0)
    assert adapted_rand_error(gt, gt) == 0.0


def test_one_segment_vs_two_halves_is_one_bit_merge():
    gt = np.ones((4, 4, 4), np.uint64)
    gt[:, :, 2:] = 2
    seg = np.full(gt.shape, 7, np.int32)
    split, merge = variation_of_information(seg, gt)
    assert split == pytest.approx(0.0, abs=1e-12) and merge == pytest.approx(1.0, abs=1e-12)
    # split into 2 equal halves where gt is one object: 1 bit of split
    split, merge = variation_of_information(gt, seg)
    assert split == pytest.approx(1.0, abs=1e-12) and merge == pytest.approx(0.0, abs=1e-12)
    # base e: nats
    split, _ = variation_of_information(gt, seg, base=np.e)
    assert split == pytest.approx(np.log(2), abs=1e-12)


def test_hand_computed_quarter_split_and_are():
    # gt: one object of 4 voxels; seg: sizes 3 and 1 -> split = H(3/4, 1/4)
    gt = np.array([5, 5, 5, 5])
    seg = np.array([1, 1, 1, 2])
    split, merge = variation_of_information(seg, gt)
    h = -(0.75 * np.log2(0.75) + 0.25 * np.log2(0.25))
    assert split == pytest.approx(h, abs=1e-12) and merge == pytest.approx(0.0, abs=1e-12)
    # pairs: joint 3*2 + 0 = 6, gt 4*3 = 12, seg 6 -> F = 2*6/18, ARE = 1/3
    assert adapted_rand_error(seg, gt) == pytest.approx(1 / 3, abs=1e-12)


def test_ignore_gt_zero_but_keep_seg_zero():
    gt = np.array([0, 0, 0, 1, 1, 2, 2])
    seg = np.array([3, 4, 5, 0, 0, 0, 0])
    # gt 0 voxels are dropped: seg 0 covers both gt objects -> 1 bit merge, no split
    split, merge = variation_of_information(seg, gt)
    assert (split, merge) == (pytest.approx(0.0, abs=1e-12), pytest.approx(1.0, abs=1e-12))
    assert (split, merge) == pytest.approx(sk_vi(seg, gt), abs=TOL)
    w = wz(seg, gt)
    assert (split, merge) == pytest.approx((w["voi_split"], w["voi_merge"]), abs=TOL)
    # with nothing ignored, gt 0 is an object with 3 seg labels
    s2, m2 = variation_of_information(seg, gt, ignore_gt=())
    assert (s2, m2) == pytest.approx(sk_vi(seg, gt, ignore=()), abs=TOL)
    assert s2 == pytest.approx(3 / 7 * np.log2(3), abs=1e-12)
    # several ignore values; ignore values that the dtype cannot hold are harmless
    s3, m3 = variation_of_information(seg.astype(np.uint8), gt.astype(np.uint8), ignore_gt=(0, 2, -1, 300))
    assert (s3, m3) == (pytest.approx(0.0, abs=1e-12), pytest.approx(0.0, abs=1e-12))


def test_errors():
    a = np.zeros((3, 4), np.int64) + 1
    with pytest.raises(ValueError, match="shape"):
        variation_of_information(a, np.ones((4, 3), np.int64))
    with pytest.raises(ValueError, match="dtype"):
        variation_of_information(a.astype(np.float32), a)
    with pytest.raises(ValueError, match="dtype"):
        adapted_rand_error(a, a.astype(np.float64))
    with pytest.raises(ValueError, match="empty labels"):
        variation_of_information(a, np.zeros_like(a))
    with pytest.raises(ValueError, match="empty labels"):
        evaluate_segmentation(a[None], np.zeros_like(a)[None], labels_kind="2d_instance_per_slice")
    with pytest.raises(ValueError, match="empty labels"):
        variation_of_information(np.zeros(0, np.int64), np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="labels_kind"):
        evaluate_segmentation(a, a, labels_kind="4d")


# --- equality with skimage and waterz -------------------------------------------------------

@pytest.mark.parametrize("shape", [(1,), (17,), (5, 7), (6, 5, 4), (3, 8, 9), (2, 3, 4, 5), (20, 30, 25)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_matches_skimage_and_waterz(shape, seed):
    rng = np.random.default_rng(seed)
    seg, gt = random_pair(rng, shape)
    gt.reshape(-1)[0] = 3  # at least one non-ignored voxel
    split, merge = assert_matches_refs(seg, gt)
    if (gt != 0).sum() > 1:  # ARE of a single voxel: skimage gives nan (0/0), neuroadda 0
        assert adapted_rand_error(seg, gt) == pytest.approx(sk_are(seg, gt), abs=TOL)
    if gt.size > 20:
        assert split > 0 and merge > 0


def test_dtypes_and_memory_orders():
    rng = np.random.default_rng(3)
    seg, gt = random_pair(rng, (9, 10, 11), n_gt=5, n_seg=6)
    ref = sk_vi(seg, gt)
    for sd, gd in [(np.int32, np.uint64), (np.int8, np.uint16), (np.uint64, np.int64), (np.uint8, np.int16)]:
        assert variation_of_information(seg.astype(sd), gt.astype(gd)) == pytest.approx(ref, abs=TOL)
    # both Fortran-ordered, mixed orders, strided views: same result
    assert variation_of_information(np.asfortranarray(seg), np.asfortranarray(gt)) == pytest.approx(ref, abs=TOL)
    assert variation_of_information(np.asfortranarray(seg), gt) == pytest.approx(ref, abs=TOL)
    assert variation_of_information(seg.transpose(2, 0, 1), gt.transpose(2, 0, 1)) == pytest.approx(ref, abs=TOL)
    assert variation_of_information(seg[::2, :, ::3], gt[::2, :, ::3]) == pytest.approx(
        sk_vi(seg[::2, :, ::3], gt[::2, :, ::3]), abs=TOL)
    # boolean seg is accepted (two labels)
    b = seg > 2
    assert variation_of_information(b, gt) == pytest.approx(sk_vi(b.astype(np.int64), gt), abs=TOL)


def test_ids_near_2_63():
    rng = np.random.default_rng(4)
    seg, gt = random_pair(rng, (8, 9, 10), n_gt=6, n_seg=8)
    ref = sk_vi(seg, gt)
    big = np.uint64(2**63)
    cases = [
        (np.uint64(2**63 - 20) + seg.astype(np.uint64),
         np.where(gt > 0, np.uint64(2**63 - 10) + gt.astype(np.uint64), 0)),
        (big + seg.astype(np.uint64) * np.uint64(2**40), np.where(gt > 0, big + gt.astype(np.uint64), 0)),
        (np.uint64(2**64 - 1) - seg.astype(np.uint64),
         np.where(gt > 0, np.uint64(2**64 - 1) - gt.astype(np.uint64), 0)),
        # gt mixes small and huge ids: the code widths overflow 64 bits, so ranks are used
        (seg.astype(np.uint64) * np.uint64(2**61),
         np.where(gt % 2 == 1, big + gt.astype(np.uint64), gt.astype(np.uint64))),
    ]
    for s, g in cases:
        assert s.dtype == g.dtype == np.uint64
        assert assert_matches_refs(s, g) == pytest.approx(ref, abs=TOL)
        assert adapted_rand_error(s, g) == pytest.approx(sk_are(seg, gt), abs=TOL)
    # signed extremes, negative labels
    s = np.int64(2**63 - 1) - seg.astype(np.int64)
    g = np.where(gt > 0, np.int64(-(2**63)) + gt, 0)
    assert variation_of_information(s, g) == pytest.approx(ref, abs=TOL)
    # labels differing only in the low bits of huge values must not be confused (no float casts)
    g = np.full(gt.shape, 2**63 + 1, np.uint64)
    g.reshape(-1)[::2] = 2**63 + 2
    s = np.full(gt.shape, 2**63 - 1, np.uint64)
    assert variation_of_information(s, g, ignore_gt=(2**63 + 2,)) == (0.0, 0.0)
    assert variation_of_information(s, g) == pytest.approx((0.0, sk_vi(dense(s), dense(g))[1]), abs=TOL)
    assert variation_of_information(s, g)[1] == pytest.approx(1.0, abs=1e-3)


def random_ids_near_2_63(rng, *arrays):
    """The arrays with every non-zero id mapped one-to-one to a random uint64 in [2**63 - 2**62, 2**63 + 2**62)."""
    ids = np.unique(np.concatenate([np.unique(a) for a in arrays]))
    ids = ids[ids != 0]
    new = np.uint64(2**63 - 2**62) + rng.integers(0, 2**63, size=ids.size, dtype=np.uint64)
    assert np.unique(new).size == ids.size
    lut = np.concatenate([[np.uint64(0)], new])
    return [np.where(a != 0, lut[np.searchsorted(ids, a) + 1], np.uint64(0)) for a in arrays]


def test_random_ids_near_2_63_match_small_ids_and_waterz():
    """Ids spread over 63 bits (a lab's 64-bit body ids) take the hash-table path; a relabelling leaves VI unchanged."""
    rng = np.random.default_rng(12)
    seg, gt = random_pair(rng, (12, 40, 50), n_gt=40, n_seg=60, p_copy=0.7)
    gt[:, ::7] = 0  # ignored "boundaries"
    bs, bg = random_ids_near_2_63(rng, seg, gt)
    assert bg.dtype == np.uint64 and int(bg.max()) > 2**63 and int(bg[bg > 0].min()) < 2**63
    ref = sk_vi(seg, gt)
    assert assert_matches_refs(bs, bg) == pytest.approx(ref, abs=TOL)
    assert adapted_rand_error(bs, bg) == pytest.approx(sk_are(seg, gt), abs=TOL)
    g_ids, s_ids, counts = contingency(bs, bg)
    m = bg.reshape(-1) != 0
    pairs, ref_counts = np.unique(np.stack([bg.reshape(-1)[m], bs.reshape(-1)[m]]), axis=1, return_counts=True)
    np.testing.assert_array_equal(g_ids, pairs[0])
    np.testing.assert_array_equal(s_ids, pairs[1])
    np.testing.assert_array_equal(counts, ref_counts)


def test_hash_table_collisions_and_growth(monkeypatch):
    """Every pair hashed to slot 0 (worst case: long probe chains) and more pairs than the first table holds."""
    rng = np.random.default_rng(13)
    seg, gt = random_pair(rng, (6, 30, 40), n_gt=30, n_seg=40)
    big_s, big_g = (seg.astype(np.uint64) + np.uint64(2**63),
                    np.where(gt > 0, gt.astype(np.uint64) + np.uint64(2**63), 0))
    ref_table = contingency(seg, gt)
    monkeypatch.setattr(vi_mod, "_MIX", np.uint64(0))
    table = contingency(big_s, big_g)
    np.testing.assert_array_equal(table[2], ref_table[2])
    np.testing.assert_array_equal(table[0] - np.uint64(2**63), ref_table[0].astype(np.uint64))
    np.testing.assert_array_equal(table[1] - np.uint64(2**63), ref_table[1].astype(np.uint64))
    monkeypatch.undo()
    g = rng.integers(1, 2**62, size=50_000, dtype=np.uint64) + np.uint64(2**63)  # ~50 K distinct pairs, one block
    s = np.where(rng.random(g.size) < 0.5, g, rng.integers(0, 2**64 - 1, size=g.size, dtype=np.uint64))
    assert variation_of_information(s, g) == pytest.approx(sk_vi(dense(s), dense(g)), abs=TOL)


def test_many_labels():
    rng = np.random.default_rng(5)
    shape = (60, 70, 80)  # 336k voxels
    gt = rng.integers(1, 250_000, size=shape, dtype=np.uint64)
    seg = np.where(rng.random(shape) < 0.7, gt * np.uint64(3), rng.integers(0, 300_000, size=shape).astype(np.uint64))
    assert np.unique(gt).size >= 100_000 and np.unique(seg).size >= 100_000
    split, merge = assert_matches_refs(seg, gt)
    assert split > 0.1 and merge > 0.1
    assert adapted_rand_error(seg, gt) == pytest.approx(sk_are(seg, gt), abs=TOL)


@pytest.mark.parametrize("pack_bits", [0, 12, 24, 40])
def test_code_widths_and_argsort_fallback(monkeypatch, pack_bits):
    """Force the escalation raw -> offset -> rank codes and the argsort path (pack_bits=0)."""
    rng = np.random.default_rng(6)
    seg, gt = random_pair(rng, (10, 12, 14), n_gt=50, n_seg=70)
    seg = seg.astype(np.uint64) + np.uint64(10**12)
    ref_table = contingency(seg, gt)
    ref = variation_of_information(seg, gt)
    monkeypatch.setattr(vi_mod, "_PACK_BITS", pack_bits)
    table = contingency(seg, gt)
    for a, b in zip(table, ref_table):
        np.testing.assert_array_equal(a, b)
    assert variation_of_information(seg, gt) == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("chunk, block", [(1, 1), (2, 2), (4, 12), (8, 64), (16, 20), (64, 4096)])
def test_chunk_and_block_borders(monkeypatch, chunk, block):
    """Runs are cut at chunk borders and pre-summed per block: tiny sizes exercise every border."""
    rng = np.random.default_rng(11)
    seg, gt = random_pair(rng, (5, 9, 13), n_gt=5, n_seg=4)
    gt[1] = 0
    ref_table = contingency(seg, gt)
    ref = variation_of_information(seg, gt)
    monkeypatch.setattr(vi_mod, "_CHUNK", chunk)
    monkeypatch.setattr(vi_mod, "_BLOCK", block)
    for a, b in zip(contingency(seg, gt), ref_table):
        np.testing.assert_array_equal(a, b)
    assert variation_of_information(seg, gt) == pytest.approx(ref, abs=1e-12)
    assert variation_of_information(seg, gt) == pytest.approx(sk_vi(seg, gt), abs=TOL)
    # huge ids and negative ids: exact through the block hash tables and the final rank codes
    big = seg.astype(np.uint64) + np.uint64(2**63)
    assert variation_of_information(big, gt) == pytest.approx(ref, abs=TOL)
    assert variation_of_information(seg - 3, gt) == pytest.approx(ref, abs=TOL)


def test_contingency_against_brute_force():
    rng = np.random.default_rng(7)
    seg, gt = random_pair(rng, (7, 8, 9), n_gt=6, n_seg=5)
    seg = seg.astype(np.int32) - 2  # negative seg labels are ordinary labels
    g_ids, s_ids, counts = contingency(seg, gt.astype(np.uint64), ignore_gt=(0,))
    assert g_ids.dtype == np.uint64 and s_ids.dtype == np.int32 and counts.dtype == np.int64
    m = gt.reshape(-1) != 0
    pairs, ref_counts = np.unique(np.stack([gt.reshape(-1)[m], seg.reshape(-1)[m]]), axis=1, return_counts=True)
    np.testing.assert_array_equal(g_ids, pairs[0])
    np.testing.assert_array_equal(s_ids, pairs[1])
    np.testing.assert_array_equal(counts, ref_counts)
    assert counts.sum() == m.sum()


def test_adapted_rand_relation_to_waterz():
    """skimage's ARE counts pairs of distinct voxels; waterz's rand_split / rand_merge include
    self-pairs: rand_split = sum n_ij^2 / sum a_i^2 (gt sizes), rand_merge = sum n_ij^2 / sum b_j^2."""
    rng = np.random.default_rng(8)
    seg, gt = random_pair(rng, (12, 13, 14), n_gt=8, n_seg=6)
    g_ids, s_ids, c = contingency(seg, gt)
    a = np.bincount(np.unique(g_ids, return_inverse=True)[1], weights=c)
    b = np.bincount(np.unique(s_ids, return_inverse=True)[1], weights=c)
    n = c.sum()
    w = wz(seg, gt)
    assert w["rand_split"] == pytest.approx(c @ c / (a @ a), abs=TOL)
    assert w["rand_merge"] == pytest.approx(c @ c / (b @ b), abs=TOL)
    are = 1 - 2 * (c @ c - n) / ((a @ a - n) + (b @ b - n))
    assert adapted_rand_error(seg, gt) == pytest.approx(are, abs=TOL)
    assert adapted_rand_error(seg, gt) == pytest.approx(sk_are(seg, gt), abs=TOL)
    # the waterz-style F-score differs (slightly) from 1 - ARE because of the self-pairs
    f_wz = 2 / (1 / w["rand_split"] + 1 / w["rand_merge"])
    assert abs((1 - f_wz) - adapted_rand_error(seg, gt)) > 1e-6


# --- evaluate_segmentation ------------------------------------------------------------------

def test_evaluate_3d():
    rng = np.random.default_rng(9)
    seg, gt = random_pair(rng, (6, 20, 20))
    out = evaluate_segmentation(seg, gt)
    split, merge = sk_vi(seg, gt)
    assert out["n_slices"] == 0 and isinstance(out["n_slices"], int)
    assert out["vi_split"] == pytest.approx(split, abs=TOL)
    assert out["vi_merge"] == pytest.approx(merge, abs=TOL)
    assert out["vi"] == pytest.approx(split + merge, abs=TOL)
    assert out["adapted_rand"] == pytest.approx(sk_are(seg, gt), abs=TOL)
    assert all(type(out[k]) is float for k in ("vi_split", "vi_merge", "vi", "adapted_rand"))
    assert all(type(v) is float for v in variation_of_information(seg, gt))


def test_evaluate_2d_per_slice_matches_skimage_loop():
    rng = np.random.default_rng(10)
    seg, gt = random_pair(rng, (6, 30, 25), n_gt=9, n_seg=7)
    gt[2] = 0  # no gt voxel: slice skipped
    gt[4] = 0
    gt[4, 3, 3] = 5  # a single gt voxel: counted (ARE defined as 0 there, skimage gives nan)
    out = evaluate_segmentation(seg, gt, labels_kind="2d_instance_per_slice")
    splits, merges, ares = [], [], []
    for z in range(gt.shape[0]):
        if not gt[z].any():
            continue
        s, m = sk_vi(seg[z], gt[z])
        splits.append(s)
        merges.append(m)
        ares.append(0.0 if (gt[z] > 0).sum() == 1 else sk_are(seg[z], gt[z]))
    assert out["n_slices"] == 5
    assert out["vi_split"] == pytest.approx(np.mean(splits), abs=TOL)
    assert out["vi_merge"] == pytest.approx(np.mean(merges), abs=TOL)
    assert out["vi"] == pytest.approx(np.mean(splits) + np.mean(merges), abs=TOL)
    assert out["adapted_rand"] == pytest.approx(np.mean(ares), abs=TOL)
    # the per-slice score differs from the 3-D one on the same volume
    assert evaluate_segmentation(seg, gt)["vi"] != pytest.approx(out["vi"], abs=1e-3)


# --- real data ------------------------------------------------------------------------------

@pytest.mark.skipif(not GALA_TEST.exists(), reason="bundled gala test.h5 not present")
def test_real_gala_volume():
    h5py = pytest.importorskip("h5py")
    with h5py.File(GALA_TEST, "r") as f:
        raw = f["raw"][:]
        labels = f["labels"][:]
    assert labels.dtype == np.uint64 and raw.shape == labels.shape
    seg = skimage.measure.label(raw > raw.mean()).astype(np.uint64)
    split, merge = assert_matches_refs(seg, labels)
    assert split > 0.5 and merge > 0.5  # a crude segmentation: far from the gt
    assert adapted_rand_error(seg, labels) == pytest.approx(sk_are(seg, labels), abs=TOL)
    assert variation_of_information(labels, labels) == (0.0, 0.0)
    bs, bg = random_ids_near_2_63(np.random.default_rng(14), seg, labels)  # the same, with 64-bit body ids
    assert variation_of_information(bs, bg) == pytest.approx((split, merge), abs=TOL)
    w = wz(bs, bg)
    assert (w["voi_split"], w["voi_merge"]) == pytest.approx((split, merge), abs=TOL)
