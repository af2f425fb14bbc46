import h5py
import numpy as np
import pytest
import scipy.stats
import torch

from neuroadda.active.pool import candidate_pool
from neuroadda.active.uncertainty import binary_entropy, embed_candidates, score_candidates
from neuroadda.data.normalize import fit_normalizer
from neuroadda.data.volume import open_volume
from neuroadda.models.unet import AffinityUNet


def _net(dropout=0.0):
    torch.manual_seed(0)
    return AffinityUNet([4, 8, 16], [(1, 2, 2), (1, 2, 2)], dropout=dropout)


@pytest.fixture
def vol(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "v.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("raw", data=rng.integers(0, 255, (6, 20, 30), dtype=np.uint8))
    return open_volume(str(path))


def _zero_forward(x):
    return torch.zeros(x.shape[0], 3, *x.shape[2:])


def test_binary_entropy():
    assert binary_entropy(0.5) == pytest.approx(1.0)
    p = np.array([0.0, 1e-9, 0.1, 0.3, 0.5, 0.9, 1.0])
    h = binary_entropy(p)
    assert h.shape == p.shape and np.all(np.isfinite(h))
    assert h[0] < 1e-4 and h[-1] < 1e-4
    for pi, hi in zip(p[2:6], h[2:6]):
        assert hi == pytest.approx(scipy.stats.entropy([pi, 1 - pi], base=2), rel=1e-9)
    t = binary_entropy(torch.tensor([[0.5, 0.1]]))
    assert t.shape == (1, 2) and float(t[0, 0]) == pytest.approx(1.0)


def test_entropy_scores(vol):
    # 5x6x7 boxes are not multiples of the (1, 4, 4) stride: exercised padding and crop-back
    cands, _ = candidate_pool(vol.shape, (3, 6, 7), holdout_fraction=0.2)
    assert len(cands) == 2 * 3 * 3
    norm, net = fit_normalizer(vol.raw), _net()
    s = score_candidates(net, vol.raw, cands, norm, batch_size=4)
    assert s.shape == (18,) and s.dtype == np.float64
    assert np.all((s >= 0) & (s <= 1)) and s.std() > 0
    assert net.training  # flags restored
    assert np.allclose(score_candidates(net, vol, cands, norm, batch_size=1), s, atol=1e-6)  # LabelledVolume ok
    net.forward = _zero_forward
    assert np.array_equal(score_candidates(net, vol.raw, cands, norm), np.ones(18))


def test_tta_and_mc_dropout(vol):
    cands, _ = candidate_pool(vol.shape, (3, 8, 8), holdout_fraction=0.3)
    norm, net = fit_normalizer(vol.raw), _net()
    v = score_candidates(net, vol.raw, cands, norm, method="tta", tta=4)
    assert v.shape == (len(cands),) and np.all(v >= 0) and np.all(v <= 0.25) and v.max() > 0
    net.forward = _zero_forward
    assert np.array_equal(score_candidates(net, vol.raw, cands, norm, method="tta", tta=8), np.zeros(len(cands)))
    with pytest.raises(ValueError, match="dropout > 0"):
        score_candidates(_net(), vol.raw, cands, norm, method="mc_dropout")
    dnet = _net(dropout=0.5)
    torch.manual_seed(1)
    m = score_candidates(dnet, vol.raw, cands, norm, method="mc_dropout", mc_samples=3)
    assert m.shape == (len(cands),) and np.all(m > 0) and np.all(m <= 0.25)
    with pytest.raises(ValueError, match="method"):
        score_candidates(dnet, vol.raw, cands, norm, method="bald")


def test_tta_inverts_rot90_channel_swap(vol, monkeypatch):
    """A flip-invariant, rot90-equivariant 'net' (y/x affinities = |centred y/x gradients|, no one-voxel shift):
    with the y/x channel swap after an odd rot90 the TTA variance is 0; without it, it is not."""
    import neuroadda.active.uncertainty as unc

    def fwd(x):
        g = [torch.zeros_like(x) for _ in range(3)]
        for c, d in ((1, -2), (2, -1)):
            n = x.shape[d]
            g[c].narrow(d, 1, n - 2).copy_((x.narrow(d, 2, n - 2) - x.narrow(d, 0, n - 2)).abs())
        return torch.cat([3 * t - 2 for t in g], 1)

    net = _net()
    net.forward = fwd
    cands = [(slice(0, 2), slice(0, 8), slice(0, 8)), (slice(2, 4), slice(8, 16), slice(8, 16))]
    norm = fit_normalizer(vol.raw)
    right = score_candidates(net, vol.raw, cands, norm, method="tta", tta=8)
    orig = unc._invert
    monkeypatch.setattr(unc, "_invert", lambda p, f, k: orig(p, f, k)[:, [0, 2, 1]] if k % 2 else orig(p, f, k))
    wrong = score_candidates(net, vol.raw, cands, norm, method="tta", tta=8)
    assert np.allclose(right, 0, atol=1e-12) and np.all(wrong > 1e-3)


def test_embed_candidates(vol):
    cands, _ = candidate_pool(vol.shape, (3, 6, 7), holdout_fraction=0.2)
    emb = embed_candidates(_net(), vol.raw, cands, fit_normalizer(vol.raw))
    assert emb.shape == (18, 16) and emb.dtype == np.float64 and np.all(np.isfinite(emb))
    assert not np.allclose(emb[0], emb[1])
