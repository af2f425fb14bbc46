"""Every estimator on synthetic cases with a known answer."""

import h5py
import numpy as np
import pytest
import torch
from scipy import stats

from neuroadda.models.checkpoint import save_backbone
from neuroadda.models.unet import AffinityUNet
from neuroadda.selection.estimators import Context, estimate, gated, known
from neuroadda.selection.estimators.labelled import logme
from neuroadda.selection.estimators.prediction import compatibility, diagnostics
from tests.conftest import blob_labels, raw_from_labels


def _vol(path, *, seed=0, cell=6, dark=False, vs=(10.0, 10.0, 10.0)):
    lab = blob_labels((16, 48, 48), cell=cell, seed=seed)
    raw = raw_from_labels(lab, seed=seed)
    with h5py.File(path, "w") as f:
        f["raw"], f["labels"] = (255 - raw if dark else raw), lab
        f.attrs["resolution_nm"] = list(vs)
    return str(path), lab, raw


def _ckpt(path, net, **meta):
    base = {"kind": "backbone", "patch_size": [8, 16, 16], "voxel_size": [10.0, 10.0, 10.0],
            "normalization": "zscore", "threshold": 0.5, "labels_kind": "3d_instance"}
    return save_backbone(path, net, {**base, **meta})


def _net(seed):
    torch.manual_seed(seed)
    return AffinityUNet([4, 8], [(2, 2, 2)])


def test_compatibility_gate_from_metadata():
    two_d = {"labels_kind": "2d_instance_per_slice", "voxel_size": [50.0, 10.0, 10.0]}
    three_d = {"labels_kind": "3d_instance", "voxel_size": [10.0, 10.0, 10.0]}
    assert not compatibility(two_d, (10, 10, 10))["compatible"]  # isotropic target needs z
    assert compatibility(two_d, (50, 10, 10))["compatible"]  # anisotropic target scored per slice
    ok = compatibility(three_d, (50, 10, 10))
    assert ok["compatible"] and ok["warnings"] and "anisotropy" in ok["warnings"][0]
    assert gated({"a": 1.0, "b": 0.0}, {"a": 0.1, "b": 0.9}) == pytest.approx({"a": 1.9, "b": 0.9})  # a after b


def test_zeroed_z_head_is_flagged():
    p = torch.full((2, 3, 4, 8, 8), 0.9)
    p[:, 1:, :, ::3] = 0.1  # in-plane boundaries every third row
    p[:, 0, ::3] = 0.1  # and z boundaries as often: a live z head
    assert diagnostics(p, (10, 10, 10))["flags"] == []
    p[:, 0] = 0.9
    p_dead = p.clone()
    p_dead[:, 0] = 0.999  # the z head says "connected" everywhere
    dead = diagnostics(p_dead, (10, 10, 10))
    assert any("channel z is degenerate" in f for f in dead["flags"])
    assert any("z boundary fraction" in f for f in dead["flags"])
    assert not any("z boundary" in f for f in diagnostics(p_dead, (50, 10, 10))["flags"])  # anisotropic: no z check


def test_entropy_and_zeroed_z_head_through_a_real_backbone(tmp_path):
    target, _, _ = _vol(tmp_path / "t.h5")
    net = _net(0)
    last = [m for m in net.modules() if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d))][-1]
    with torch.no_grad():  # the z output channel: constant, confident "connected"
        last.weight[:, 0] = 0.0 if isinstance(last, torch.nn.ConvTranspose3d) else last.weight[:, 0]
        if isinstance(last, torch.nn.Conv3d):
            last.weight[0] = 0.0
        last.bias[0] = 12.0
    dead = _ckpt(tmp_path / "dead.pt", net)
    fine = _ckpt(tmp_path / "fine.pt", _net(1))
    res = estimate("entropy", Context(target, {"dead": dead, "fine": fine}))
    assert any("z" in f for f in res["detail"]["dead"]["flags"])
    assert res["detail"]["dead"]["boundary_fraction"][0] < 0.002


def _scaled(seed, factor):
    net = _net(seed)
    with torch.no_grad():  # larger weights: dropout and flips move more affinities across the threshold
        for p in net.parameters():
            p.mul_(factor)
    return net


def test_consistency_orders_a_stable_model_before_an_unstable_one(tmp_path):
    target, _, _ = _vol(tmp_path / "t.h5")
    res = estimate("consistency", Context(target, {"stable": _ckpt(tmp_path / "s.pt", _scaled(1, 2.0)),
                                                   "unstable": _ckpt(tmp_path / "u.pt", _scaled(0, 8.0))}, seed=0))
    assert res["scores"]["stable"] + 1.0 < res["scores"]["unstable"]  # measured 2.02 vs 4.05 bits
    assert not any("flags" in d for d in res["detail"].values())


def test_consistency_ranks_a_one_segment_model_last_however_stable(tmp_path):
    """A network whose output ignores its input (all weights 0: affinity 0.5 everywhere, one object at the
    threshold 0.5) segments every patch identically with and without perturbation (VI 0): consistent and
    useless. It is flagged and scored the worst VI a patch can have."""
    target, _, _ = _vol(tmp_path / "t.h5")
    flat = _net(0)
    with torch.no_grad():
        for p in flat.parameters():
            p.zero_()
    res = estimate("consistency", Context(target, {"flat": _ckpt(tmp_path / "f.pt", flat),
                                                   "real": _ckpt(tmp_path / "r.pt", _scaled(1, 4.0))}, seed=0))
    d = res["detail"]["flat"]
    assert d["stable_vi"] == pytest.approx(0.0) and d["largest_segment_fraction"] > 0.9
    assert res["scores"]["flat"] == pytest.approx(np.log2(np.prod(d["patch"])))
    assert res["scores"]["flat"] > res["scores"]["real"]
    assert any(f.startswith("degenerate") for f in d["flags"])


def test_logme_is_the_bayesian_evidence_at_its_optimum():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(60, 5))
    y = f @ np.array([1.0, -2.0, 0.5, 0.0, 0.0]) + rng.normal(0, 0.5, 60)
    value, alpha, beta = logme(f, y)
    cov = np.eye(60) / beta + f @ f.T / alpha  # marginal of y under w ~ N(0, I/alpha), noise N(0, 1/beta)
    assert value == pytest.approx(stats.multivariate_normal(np.zeros(60), cov).logpdf(y) / 60, rel=1e-8)
    for a, b in ((alpha * 1.5, beta), (alpha, beta * 0.7)):  # a fixed point of the evidence: a maximum
        c = np.eye(60) / b + f @ f.T / a
        assert stats.multivariate_normal(np.zeros(60), c).logpdf(y) / 60 < value
    assert logme(rng.normal(size=(60, 5)), y)[0] < value  # unrelated features explain y worse


def test_zero_shot_vi_and_logme_need_labels_and_rank_an_informed_model_first(tmp_path):
    target, lab, raw = _vol(tmp_path / "t.h5")
    a, b = _ckpt(tmp_path / "a.pt", _net(0)), _ckpt(tmp_path / "b.pt", _net(1))
    from neuroadda.errors import InputError

    with pytest.raises(InputError, match="annotated samples"):
        estimate("logme", Context(target, {"a": a}))
    box = (slice(0, 8), slice(0, 32), slice(0, 32))
    ctx = Context(target, {"a": a, "b": b}, labelled=((raw[box], lab[box]),))
    zs = estimate("zero-shot-vi", ctx)
    assert set(zs["scores"]) == {"a", "b"} and all(v >= 0 for v in zs["scores"].values())
    lm = estimate("logme", ctx)
    assert all(np.isfinite(v) for v in lm["scores"].values()) and len(lm["detail"]["a"]["logme"]) == 3


def test_mmd2_common_puts_the_matching_source_closer(tmp_path):
    target, _, _ = _vol(tmp_path / "t.h5", seed=1)
    near, _, _ = _vol(tmp_path / "near.h5", seed=2)
    far, _, _ = _vol(tmp_path / "far.h5", seed=3, cell=4, dark=True)
    bb = {near: _ckpt(tmp_path / "n.pt", _net(0)), far: _ckpt(tmp_path / "f.pt", _net(1))}
    res = estimate("mmd2-common", Context(target, bb, n_patches=32))
    assert res["scores"][near] < res["scores"][far]
    assert set(res["per_encoder"]) == set(bb)
    assert known("compat+mmd2-common") and not known("oracle")


def test_the_default_ranks_by_training_data_and_stands_in_without_it(tmp_path):
    from neuroadda.selection.ranking import DEFAULT_ESTIMATOR, NO_SOURCE_DATA_ESTIMATOR, rank

    target, _, _ = _vol(tmp_path / "t.h5", seed=1)
    near, _, _ = _vol(tmp_path / "near.h5", seed=2)
    far, _, _ = _vol(tmp_path / "far.h5", seed=3, cell=4, dark=True)
    bb = {near: _ckpt(tmp_path / "n.pt", _net(0)), far: _ckpt(tmp_path / "f.pt", _net(1))}
    rec = rank(target, bb, n_patches=32, permutations=20)
    assert rec["estimator"] == DEFAULT_ESTIMATOR == "compat+mmd2-common" and "substituted" not in rec
    assert rec["best"] == near
    elsewhere = {"lab-a": bb[near], "lab-b": bb[far]}  # names that are no volume, checkpoints recording no source
    rec = rank(target, elsewhere, n_patches=32, permutations=20)
    assert rec["estimator"] == NO_SOURCE_DATA_ESTIMATOR and rec["substituted"]["from"] == [DEFAULT_ESTIMATOR]
    assert rec["substituted"]["candidates"] == ["lab-a", "lab-b"] and "training data" in rec["substituted"]["why"]
    assert {r["source"] for r in rec["ranking"]} == {"lab-a", "lab-b"}
    assert all(np.isfinite(r["score"]) for r in rec["ranking"])


def test_overlapping_intervals_cannot_be_told_apart_unless_the_gate_ranks():
    from neuroadda.selection.ranking import distinguishable

    rows = [{"score": 0.51, "ci_low": 0.28, "ci_high": 0.77, "compatible": True},
            {"score": 0.63, "ci_low": 0.48, "ci_high": 0.81, "compatible": False}]
    verdict, why = distinguishable("consistency", rows)
    assert verdict is False and "overlap" in why  # compatibility is reported, not used, by an ungated estimator
    assert distinguishable("compat+consistency", rows) == (True, "the runner-up fails the compatibility check")
    apart = [dict(rows[0], ci_high=0.40), dict(rows[1], compatible=True)]
    assert distinguishable("consistency", apart)[0] is True
