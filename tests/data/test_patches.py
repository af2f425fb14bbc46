import numpy as np
import torch

from neuroadda.config import AugmentConfig
from neuroadda.data.affinities import affinities_from_labels
from neuroadda.data.normalize import fit_normalizer
from neuroadda.data.patches import PatchDataset, build_augment, collate, injective_int64, relabel_consecutive
from neuroadda.data.regions import split_regions
from neuroadda.data.volume import open_volume


def test_split_regions_along_longest_axis():
    train, val = split_regions((10, 100, 50), 0.2)
    assert train == (slice(0, 10), slice(0, 80), slice(0, 50)) and val == (slice(0, 10), slice(80, 100), slice(0, 50))
    assert split_regions((4, 4, 4), 0.0)[1] is None


def test_relabel_keeps_zero_and_identity():
    lab = np.array([0, 2**63 + 5, 7, 7, 0], dtype=np.uint64)
    out = relabel_consecutive(lab)
    assert out.dtype == np.int64 and out[0] == 0 and out[4] == 0 and out[2] == out[3] and len(set(out)) == 3


def test_items_are_deterministic_and_targets_follow_augmentation(tiny_h5):
    vol = open_volume(str(tiny_h5))
    norm = fit_normalizer(vol.raw, "zscore")
    aug = build_augment(AugmentConfig(intensity=False), (8, 16, 16))
    box = tuple(slice(0, n) for n in vol.shape)
    ds = PatchDataset(vol, box, (8, 16, 16), norm, length=6, seed=3, augment=aug)
    a, b = ds[4], ds[4]
    for k in ("image", "affs", "mask"):
        torch.testing.assert_close(a[k], b[k])
    assert a["image"].shape == (1, 8, 16, 16) and a["affs"].shape == (3, 8, 16, 16)
    # the image is a flipped/rotated view of the raw patch; targets are consistent with the flipped labels:
    o = ds.origin(4)
    sl = tuple(slice(x, x + p) for x, p in zip(o, (8, 16, 16)))
    raw = norm(vol.raw.read(sl))
    lab = vol.labels.read(sl)
    img = a["image"][0].numpy()
    found = False
    for k in range(4):
        for flips in np.ndindex(2, 2, 2):
            r, lb = np.rot90(raw, k, axes=(1, 2)), np.rot90(lab, k, axes=(1, 2))
            for ax, f in enumerate(flips):
                if f:
                    r, lb = np.flip(r, ax), np.flip(lb, ax)
            if r.shape == img.shape and np.allclose(r, img, atol=1e-5):
                exp, _ = affinities_from_labels(np.ascontiguousarray(lb))
                found = found or np.array_equal(exp, a["affs"].numpy())
    assert found


def test_normalizer_zscore_and_percentile(tiny_h5):
    vol = open_volume(str(tiny_h5))
    z = fit_normalizer(vol.raw, "zscore")
    x = z(vol.raw.read((slice(None),) * 3))
    assert abs(x.mean()) < 1e-3 and abs(x.std() - 1) < 1e-3  # volume smaller than the sample budget: exact
    p = fit_normalizer(vol.raw, "percentile")
    assert p.scale > 0 and p.mode == "percentile"


def _reference_item(ds: PatchDataset, i: int) -> dict[str, np.ndarray]:
    """The original (pre-optimisation) item: consecutive relabelling and MONAI on numpy with MetaTensors."""
    i += ds.offset
    sl = tuple(slice(a, a + p) for a, p in zip(ds.origin(i), ds.patch))
    image = ds.norm(ds.vol.raw.read(sl))[None]
    labels = relabel_consecutive(ds.vol.labels.read(sl))[None]
    if ds.augment is not None:
        ds.augment.set_random_state(seed=int(np.random.default_rng([ds.seed, i, 1]).integers(2**31)))
        out = ds.augment({"image": image, "label": labels})
        image = np.ascontiguousarray(np.asarray(out["image"]), dtype=np.float32)
        labels = np.ascontiguousarray(np.asarray(out["label"]), dtype=np.int64)
    affs, mask = affinities_from_labels(labels[0], label_zero=ds.vol.label_zero, labels_kind=ds.vol.labels_kind)
    return {"image": image, "affs": affs, "mask": mask}


def test_items_match_the_reference_implementation(tiny_h5):
    vol = open_volume(str(tiny_h5))
    norm = fit_normalizer(vol.raw, "zscore")
    box = tuple(slice(0, n) for n in vol.shape)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the reference runs with 2 intra-op threads, items use 1
    try:
        for aug in (None, build_augment(AugmentConfig(), (8, 16, 16))):
            ds = PatchDataset(vol, box, (8, 16, 16), norm, length=40, seed=5, augment=aug, offset=3)
            for i in range(40):
                got, ref = ds[i], _reference_item(ds, i)
                for k in ("image", "affs", "mask"):
                    assert got[k].dtype == torch.float32 and got[k].is_contiguous()
                    np.testing.assert_array_equal(got[k].numpy(), ref[k])
                assert torch.get_num_threads() == 2  # restored after each item
    finally:
        torch.set_num_threads(threads)
    from monai.data import get_track_meta

    assert get_track_meta()  # the global MONAI flag is restored


def test_injective_int64_keeps_zero_and_equality():
    lab = np.array([[[0, 5, 5, 2**40]]], dtype=np.uint64)
    out = injective_int64(lab)
    assert out.dtype == np.int64 and np.array_equal(out, lab.astype(np.int64))
    big = np.array([[[0, 2**63 + 5, 7, 7, 2**64 - 1]]], dtype=np.uint64)
    out = injective_int64(big)  # ids beyond int64: falls back to consecutive relabelling
    assert out.dtype == np.int64 and out[0, 0, 0] == 0 and out[0, 0, 2] == out[0, 0, 3]
    assert len(set(out.ravel().tolist())) == 4
    for dt in (np.uint8, np.int32, np.int64):
        assert np.array_equal(injective_int64(np.arange(4, dtype=dt)), np.arange(4))


def test_collate_matches_default_and_restores_threads():
    items = [{"image": torch.randn(1, 2, 3, 3), "affs": torch.ones(3, 2, 3, 3)} for _ in range(2)]
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        got, ref = collate(items), torch.utils.data.default_collate(items)
        assert got.keys() == ref.keys() and all(torch.equal(got[k], ref[k]) for k in ref)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
