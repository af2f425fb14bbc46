"""select-source on tiny synthetic volumes with untrained (but real) backbone checkpoints."""

import json

import h5py
import numpy as np
import pytest
import torch

from neuroadda.cli.main import main
from neuroadda.models.checkpoint import save_backbone
from neuroadda.models.unet import AffinityUNet
from neuroadda.selection.embed import pool_features, standardize
from neuroadda.selection.ranking import DEFAULT_LABELLED_ESTIMATOR
from neuroadda.selection.select import resolve_backbones, safe_name
from tests.conftest import blob_labels, raw_from_labels


def test_pool_features_against_manual():
    f = torch.arange(2 * 3 * 8, dtype=torch.float32).reshape(2, 3, 2, 2, 2)
    flat = f.reshape(2, 3, 8)
    torch.testing.assert_close(pool_features(f, "mean"), flat.mean(-1))
    torch.testing.assert_close(pool_features(f, "max"), flat[..., -1])
    ms = pool_features(f, "meanstd")
    assert ms.shape == (2, 6) and torch.allclose(ms[:, 3:], flat.std(-1))
    with pytest.raises(ValueError, match="pooling"):
        pool_features(f, "median")


def test_standardize_pools_blocks_and_drops_constant_features():
    rng = np.random.default_rng(0)
    a, b = rng.normal(5, 3, (40, 4)), rng.normal(-1, 2, (60, 4))
    a[:, 2] = b[:, 2] = 7.0
    za, zb = standardize([a, b])
    pooled = np.concatenate([za, zb])
    assert za.shape == (40, 3) and np.allclose(pooled.mean(0), 0) and np.allclose(pooled.std(0), 1)
    pa, pb = standardize([a, b], pca=2)
    assert pa.shape == (40, 2) and pb.shape == (60, 2)


def _volume(path, *, dark=False, cell=8, seed=0, noise=False):
    lab = blob_labels((24, 48, 48), cell=cell, seed=seed)
    raw = raw_from_labels(lab, seed=seed)
    if noise:  # no cells at all: white noise
        raw = np.random.default_rng(seed).integers(0, 256, raw.shape).astype(np.uint8)
    if dark:
        raw = 255 - raw
    with h5py.File(path, "w") as f:
        f["raw"], f["labels"] = raw, lab
        f.attrs["resolution_nm"] = [10.0, 10.0, 10.0]
    return str(path)


def _backbone(path, seed):
    torch.manual_seed(seed)
    net = AffinityUNet([4, 8, 16], [(2, 2, 2), (2, 2, 2)])
    save_backbone(path, net, {"kind": "backbone", "patch_size": [8, 16, 16], "voxel_size": [10.0, 10.0, 10.0],
                              "normalization": "zscore", "threshold": 0.5, "source": "x"})
    return str(path)


def test_fitting_patch_shrinks_to_the_smallest_volume_in_stride_steps():
    from neuroadda.selection.select import fitting_patch

    # a FIB-SEM backbone (stride 8 on every axis) and an ssTEM one (1, 8, 8); gala at 50 nm z has 10 slices
    assert fitting_patch((16, 96, 96), [(10, 250, 500), (30, 205, 205)], [(8, 8, 8), (1, 8, 8)]) == (8, 96, 96)
    assert fitting_patch((16, 96, 96), [(250, 250, 250)], [(2, 4, 4)]) == (16, 96, 96)
    assert fitting_patch((16, 96, 96), [(20, 50, 300)], [(4, 16, 16)]) == (16, 48, 96)


def test_resolve_backbones(tmp_path):
    (tmp_path / "a.h5").mkdir()
    (tmp_path / "bb" / "a.h5").mkdir(parents=True)
    (tmp_path / "bb" / "a.h5" / "model.pt").write_bytes(b"")
    got = resolve_backbones(["x/a.h5", "b"], ["b=/c.pt"], tmp_path / "bb")
    assert got == {"x/a.h5": tmp_path / "bb" / "a.h5" / "model.pt", "b": __import__("pathlib").Path("/c.pt")}
    assert safe_name("/data/my vol.h5:raw") == "my_vol.h5_raw"


def test_select_source_end_to_end(tmp_path, capsys):
    target = _volume(tmp_path / "target.h5", seed=1)
    near = _volume(tmp_path / "near.h5", seed=2)
    far = _volume(tmp_path / "far.h5", dark=True, cell=4, seed=3)
    args = ["select-source", "--target", target, "--sources", near, far,
            "--backbone", f"{near}={_backbone(tmp_path / 'n.pt', 0)}",
            "--backbone", f"{far}={_backbone(tmp_path / 'f.pt', 1)}", "--permutations", "200",
            "--config", str(tmp_path / "sel.yaml"), "--out", str(tmp_path / "sel"), "--quiet"]
    (tmp_path / "sel.yaml").write_text("select_source:\n  estimator: mmd2\n  patches: 24\n  permutations: 50\n")
    assert main(args) == 0  # patches from the config, permutations from the flag
    out = capsys.readouterr().out
    sel = json.loads((tmp_path / "sel" / "selection.json").read_text())
    assert sel["best"] == near and [r["source"] for r in sel["ranking"]] == [near, far]
    assert sel["ranking"][0]["mmd2"] < sel["ranking"][1]["mmd2"]
    assert sel["ranking"][1]["p_value"] <= 0.01  # inverted contrast + finer texture is clearly different
    for r in sel["ranking"]:
        assert r["ci_low"] <= r["mmd2"] <= r["ci_high"]
    assert sel["settings"]["patch_size"] == [8, 16, 16] and sel["settings"]["n_patches"] == 24
    assert sel["settings"]["permutations"] == 200 and sel["estimator"] == "mmd2"
    assert (tmp_path / "sel" / "mmd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "rank" in out and "best source" in out


@pytest.mark.parametrize("case, fragment", [
    ("unknown_source", "did you mean gala-test"),
    ("no_backbone", "no backbone checkpoint for source(s)"),
    ("wrong_kind", "not a NeuroADDA backbone checkpoint"),
    ("small_target", "no patch fits"),
    ("config_value", "sel.yaml: field 'select_source.patches'"),
    ("config_estimator", "sel.yaml: select_source.estimator: unknown mmd3"),
    ("flag_over_config", "argument --patches: must be an integer >= 4, got 2"),
])
def test_select_source_errors(tmp_path, capsys, case, fragment):
    target = _volume(tmp_path / "t.h5")
    bb = _backbone(tmp_path / "b.pt", 0)
    src = "gala-tset" if case == "unknown_source" else _volume(tmp_path / "s.h5")
    if case == "wrong_kind":
        torch.save({"weights": torch.zeros(2)}, tmp_path / "b.pt")
    if case == "small_target":
        with h5py.File(tmp_path / "tiny.h5", "w") as f:
            f["raw"] = np.zeros((2, 8, 8), np.uint8)  # thinner than the backbone's stride 4 in z
        target = str(tmp_path / "tiny.h5")
    args = ["select-source", "--target", target, "--sources", src, "--out", str(tmp_path / "o"), "--quiet"]
    if case.startswith("config") or case == "flag_over_config":
        bad = {"config_value": "patches: 2", "config_estimator": "estimator: mmd3"}.get(case, "patches: 8")
        (tmp_path / "sel.yaml").write_text(f"select_source:\n  {bad}\n")
        args += ["--config", str(tmp_path / "sel.yaml")] + (["--patches", "2"] if case == "flag_over_config" else [])
    if case != "no_backbone":
        args += ["--backbone", f"{src}={bb}"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0]
    assert not (tmp_path / "o" / "selection.json").exists()


def test_mmd_matrix_and_phylogeny_cli(tmp_path, capsys):
    a = _volume(tmp_path / "a.h5", seed=1)
    b = _volume(tmp_path / "b.h5", seed=2)
    c = _volume(tmp_path / "c.h5", noise=True, seed=3)
    enc = _backbone(tmp_path / "e.pt", 0)
    assert main(["mmd-matrix", "--datasets", a, b, c, "--encoder", enc, "--patches", "32", "--out",
                 str(tmp_path / "mm"), "--quiet"]) == 0
    res = json.loads((tmp_path / "mm" / "mmd_matrix.json").read_text())
    m = np.array(res["mmd2"])
    assert m.shape == (3, 3) and np.allclose(m, m.T) and np.all(np.diag(m) == 0)
    assert m[0, 1] < m[0, 2] and m[0, 1] < m[1, 2]  # a and b come from the same generator
    for f in ("mmd_matrix.png", "mmd_dendrogram.png"):
        assert (tmp_path / "mm" / f).read_bytes()[:4] == b"\x89PNG"
    # phylogeny needs card names (species); reuse the matrix with public card names
    res["datasets"] = ["microns-minnie65", "h01", "zebrafinch-j0126"]
    (tmp_path / "mm" / "named.json").write_text(json.dumps(res))
    capsys.readouterr()
    assert main(["phylogeny", "--matrix", str(tmp_path / "mm" / "named.json"), "--permutations", "99"]) == 0
    out = capsys.readouterr().out
    ph = json.loads((tmp_path / "mm" / "phylogeny.json").read_text())
    assert ph["species"] == ["Mus musculus", "Homo sapiens", "Taeniopygia guttata"]
    assert "Mantel spearman" in out and (tmp_path / "mm" / "phylogeny.png").exists()


def test_pretrain_missing_trains_backbones_then_ranks(tmp_path, capsys):
    target = _volume(tmp_path / "t.h5", seed=1)
    src = _volume(tmp_path / "s.h5", seed=2)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("model:\n  channels: [4, 8, 16]\ndata:\n  patch_size: [8, 16, 16]\n  val_fraction: 0.3\n"
                   "train:\n  max_steps: 3\n  batch_size: 1\n  val_patches: 0\n  thresholds: [0.5]\n  logger: none\n")
    assert main(["select-source", "--target", target, "--sources", src, "--pretrain-missing", "--pretrain-config",
                 str(cfg), "--patches", "8", "--permutations", "50", "--out", str(tmp_path / "o"), "--quiet"]) == 0
    assert (tmp_path / "o" / "backbones" / "s.h5" / "model.pt").is_file()
    sel = json.loads((tmp_path / "o" / "selection.json").read_text())
    assert sel["best"] == src and sel["ranking"][0]["backbone"].endswith("model.pt")
    # a second run finds the backbone in --backbones and does not train again
    mtime = (tmp_path / "o" / "backbones" / "s.h5" / "model.pt").stat().st_mtime
    assert main(["select-source", "--target", target, "--sources", src,
                 "--backbones", str(tmp_path / "o" / "backbones"), "--patches", "8", "--permutations", "50",
                 "--out", str(tmp_path / "o2"), "--quiet"]) == 0
    assert (tmp_path / "o" / "backbones" / "s.h5" / "model.pt").stat().st_mtime == mtime


def test_split_by_position_separates_halves_of_the_longest_axis():
    from neuroadda.data.regions import full_box, random_origins
    from neuroadda.selection.select import EmbedSettings, split_by_position

    settings = EmbedSettings(n_patches=40, seed=4)
    shape, patch = (20, 100, 30), (4, 10, 10)
    origins = np.array(random_origins(full_box(shape), patch, 40, 4), float)
    a, b = split_by_position(origins, shape, patch, settings)  # rows = the origins themselves
    assert len(a) + len(b) == 40 and (a[:, 1] + 5 < 50).all() and (b[:, 1] + 5 >= 50).all()


def test_select_source_other_estimators_flags_and_rerank_on_labels(tmp_path, capsys):
    target = _volume(tmp_path / "target.h5", seed=1)
    a, b = _volume(tmp_path / "a.h5", seed=2), _volume(tmp_path / "b.h5", seed=3, dark=True)
    ba = _backbone(tmp_path / "a.pt", 0)
    torch.manual_seed(1)
    net = AffinityUNet([4, 8, 16], [(2, 2, 2), (2, 2, 2)])
    bb = str(save_backbone(tmp_path / "b.pt", net, {"kind": "backbone", "patch_size": [8, 16, 16],
                                                    "voxel_size": [50.0, 10.0, 10.0], "normalization": "zscore",
                                                    "threshold": 0.5, "labels_kind": "2d_instance_per_slice"}))
    common = ["--target", target, "--sources", a, b, "--backbone", f"{a}={ba}", "--backbone", f"{b}={bb}", "--quiet"]
    assert main(["select-source", *common, "--estimator", "compat+consistency,mmd2", "--patches", "16",
                 "--permutations", "50", "--out", str(tmp_path / "s1")]) == 0
    out = capsys.readouterr().out
    sel = json.loads((tmp_path / "s1" / "selection.json").read_text())
    assert sel["estimator"] == "compat+consistency" and sel["ranking"][-1]["source"] == b  # gated: never supervised z
    assert not sel["ranking"][-1]["compatible"] and "incompatible" in sel["ranking"][-1]["flags"][0]
    assert "ranked by compat+consistency" in out and "incompatible" in out and "mmd2" in out
    assert (tmp_path / "s1" / "ranking.png").is_file()
    # after annotation: samples from select-samples, labels from the target's ground truth (none returned)
    small = tmp_path / "adapt.yaml"
    small.write_text("active:\n  candidate_size: [8, 16, 16]\n")
    assert main(["select-samples", "--target", target, "--backbone", ba, "--n", "2", "--out", str(tmp_path / "smp"),
                 "--config", str(small), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["select-source", *common, "--labels", str(tmp_path / "smp"), "--out", str(tmp_path / "s2")]) == 0
    out = capsys.readouterr().out
    sel = json.loads((tmp_path / "s2" / "selection.json").read_text())
    assert sel["estimator"] == DEFAULT_LABELLED_ESTIMATOR and "on 2 annotated samples" in out
    assert main(["select-source", *common, "--estimator", "oracle", "--out", str(tmp_path / "s3")]) == 2
    assert "unknown oracle" in capsys.readouterr().err
