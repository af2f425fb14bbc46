"""Imported models through the CLI: ranked beside ours, sampled with, fine-tuned, predicted, exported and imported
back; and the bad ones refused in one line with exit code 2 before any work."""

import json
import zipfile

import numpy as np
import pytest
import torch
import yaml
import zarr

from neuroadda.cli.main import main
from neuroadda.models.checkpoint import load_backbone
from neuroadda.models.imported import ImportedNet
from neuroadda.selection import ranking
from neuroadda.selection.estimators import Context, estimate
from tests.conftest import ADAPT_CONFIG
from tests.models.foreign import SIDECAR, save_torchscript


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_select_source_ranks_a_package_a_torchscript_file_and_ours_together(foreign, tmp_path, capsys):
    code, out, err = _run(capsys, "select-source", "--target", foreign.target, "--sources", foreign.source,
                          "--backbone", f"{foreign.source}={foreign.native}", "--model", f"lab-ts={foreign.ts}",
                          "--model", f"lab-pkg={foreign.pkg}", "--out", tmp_path / "sel", "--quiet")
    assert code == 0, err
    rec = json.loads((tmp_path / "sel" / "selection.json").read_text())
    assert rec["estimator"] == "consistency-input" and rec["settings"]["estimators"] == ["consistency-input"]
    assert sorted(rec["substituted"]["imported"]) == ["lab-pkg", "lab-ts"] and rec["substituted"]["from"] == [
        "compat+mmd2-common"]  # the default needs every candidate's training data: the stand-in, in input space
    assert {r["source"] for r in rec["ranking"]} == {foreign.source, "lab-ts", "lab-pkg"}
    assert all(np.isfinite(r["score"]) for r in rec["ranking"])
    assert "note: ranked by consistency-input, not compat+mmd2-common" in out
    # ours is scored by the input-space estimator too: the same number as consistency-input on it alone
    alone = estimate("consistency-input", Context(foreign.target, {foreign.source: foreign.native}))
    assert rec["estimators"]["consistency-input"]["scores"][foreign.source] == alone["scores"][foreign.source]
    # the same two imported models score the same (the package holds the TorchScript file's weights)
    scores = rec["estimators"]["consistency-input"]["scores"]
    assert scores["lab-ts"] == pytest.approx(scores["lab-pkg"], abs=1e-9)


def test_without_imported_candidates_the_default_stays(foreign, tmp_path, capsys):
    code, out, err = _run(capsys, "select-source", "--target", foreign.target, "--sources", foreign.source,
                          "--backbone", f"{foreign.source}={foreign.native}", "--out", tmp_path / "sel", "--quiet")
    rec = json.loads((tmp_path / "sel" / "selection.json").read_text())
    assert code == 0 and rec["estimator"] == ranking.DEFAULT_ESTIMATOR and "substituted" not in rec
    assert "note:" not in out


def test_mmd2_skips_a_model_without_an_embedding_layer_in_one_line(foreign, tmp_path, capsys):
    enc = save_torchscript(foreign.net, tmp_path / "enc.pt", {**SIDECAR, "embedding_layer": "encode",
                                                              "source": str(foreign.target)})
    nodata = save_torchscript(foreign.net, tmp_path / "nodata.pt", {**SIDECAR, "embedding_layer": "encode"})
    code, out, err = _run(capsys, "select-source", "--target", foreign.target, "--sources", foreign.source,
                          "--backbone", f"{foreign.source}={foreign.native}", "--model", f"lab-pkg={foreign.pkg}",
                          "--model", f"lab-enc={enc}", "--model", f"lab-nodata={nodata}", "--estimator", "mmd2",
                          "--patches", "8", "--permutations", "10", "--out", tmp_path / "sel", "--quiet")
    assert code == 0, err
    rec = json.loads((tmp_path / "sel" / "selection.json").read_text())
    scores = rec["estimators"]["mmd2"]["scores"]
    assert np.isfinite(scores[foreign.source]) and np.isfinite(scores["lab-enc"])  # a layer and its sidecar's source
    rows = {r["source"]: r for r in rec["ranking"]}
    assert rows["lab-enc"]["source_data"] == str(foreign.target)
    assert np.isnan(scores["lab-pkg"]) and np.isnan(scores["lab-nodata"])
    assert {r["source"] for r in rec["ranking"][-2:]} == {"lab-pkg", "lab-nodata"}  # unscored rank last
    notes = [line for line in out.splitlines() if line.startswith("note: mmd2 skipped")]
    assert len(notes) == 2 and "embedding_layer" in notes[0] + notes[1] and "not at hand" in notes[0] + notes[1]


def test_fine_tune_from_a_package_then_predict_and_export_again(foreign, tmp_path, capsys):
    cfg = tmp_path / "adapt.yaml"
    cfg.write_text(ADAPT_CONFIG)
    code, _, err = _run(capsys, "select-samples", "--target", foreign.target, "--backbone", foreign.pkg, "--n", 2,
                        "--config", cfg, "--out", tmp_path / "s", "--quiet")
    assert code == 0, err
    code, out, err = _run(capsys, "finetune", "--target", foreign.target, "--samples", tmp_path / "s" / "samples.json",
                          "--backbone", foreign.pkg, "--config", cfg, "--out", tmp_path / "ft", "--quiet")
    assert code == 0, err
    ft, imported = load_backbone(tmp_path / "ft" / "model.pt"), load_backbone(foreign.pkg)
    assert isinstance(ft.net, ImportedNet) and ft.meta["imported_from"] == str(foreign.pkg)
    assert ft.meta["steps"] == 3 and ft.threshold in (0.3, 0.7)  # our schedule and threshold choice
    changed = [k for k, v in ft.net.state_dict().items() if not torch.equal(v, imported.net.state_dict()[k])]
    assert changed  # the TorchScript module's parameters trained
    code, _, err = _run(capsys, "predict", "--checkpoint", tmp_path / "ft" / "model.pt", "--input", foreign.target,
                        "--out", tmp_path / "affs.zarr", "--quiet")
    affs = zarr.open_array(str(tmp_path / "affs.zarr"), mode="r")
    assert code == 0 and affs.shape == (3, 24, 40, 48) and 0 <= float(np.min(affs[:])) <= float(np.max(affs[:])) <= 1
    code, _, err = _run(capsys, "export", "--checkpoint", tmp_path / "ft" / "model.pt", "--out", tmp_path / "pkg")
    assert code == 0, err
    back = load_backbone(tmp_path / "pkg")
    x = torch.randn(1, 1, 8, 16, 16)
    with torch.no_grad():
        assert float((torch.sigmoid(back.net(x)) - torch.sigmoid(ft.net(x))).abs().max()) <= 1e-5
    code, _, err = _run(capsys, "finetune", "--target", foreign.target, "--samples", tmp_path / "s" / "samples.json",
                        "--backbone", "scratch", "--config", cfg, "--out", tmp_path / "scratch", "--quiet")
    assert code == 0 and isinstance(load_backbone(tmp_path / "scratch" / "model.pt").net, ImportedNet), err


def test_our_backbone_exported_and_imported_predicts_the_same(foreign, tmp_path, capsys):
    code, _, err = _run(capsys, "export", "--checkpoint", foreign.native, "--out", tmp_path / "pkg", "--zip",
                        "--sample", foreign.source)
    assert code == 0, err
    assert (tmp_path / "pkg" / "rdf.yaml").is_file() and zipfile.is_zipfile(tmp_path / "pkg.zip")
    rdf = yaml.safe_load((tmp_path / "pkg" / "rdf.yaml").read_text())
    assert rdf["format_version"].startswith("0.5") and set(rdf["weights"]) == {"torchscript", "pytorch_state_dict"}
    assert rdf["config"]["neuroadda"]["offsets"] == [[-1, 0, 0], [0, -1, 0], [0, 0, -1]]
    assert rdf["outputs"][0]["postprocessing"][0]["id"] == "sigmoid"
    assert rdf["inputs"][0]["preprocessing"][1]["id"] == "fixed_zero_mean_unit_variance"
    assert [a.get("scale") for a in rdf["inputs"][0]["axes"][2:]] == [10.0, 10.0, 10.0]
    assert any(c.get("doi") == "10.48550/arXiv.2503.06196" for c in rdf["cite"])
    affs = []
    for k, model in enumerate((foreign.native, tmp_path / "pkg", tmp_path / "pkg.zip")):
        code, _, err = _run(capsys, "predict", "--checkpoint", model, "--input", foreign.target,
                            "--out", tmp_path / f"{k}.zarr", "--quiet")
        assert code == 0, err
        affs.append(zarr.open_array(str(tmp_path / f"{k}.zarr"), mode="r")[:])
    assert float(np.abs(affs[1] - affs[0]).max()) <= 1e-5 and float(np.abs(affs[2] - affs[0]).max()) <= 1e-5


def _sidecar(edit):
    return {k: v for k, v in {**SIDECAR, **edit}.items() if v is not None}


def _two_channels(d, _net):
    torch.jit.script(torch.nn.Conv3d(1, 2, 1)).save(str(d / "two.pt"))
    (d / "two.yaml").write_text(yaml.safe_dump(SIDECAR))
    return d / "two.pt"


def _broken_zip(d, _net):
    with zipfile.ZipFile(d / "broken.zip", "w") as z:
        z.writestr("rdf.yaml", "type: model\nformat_version: 0.5.4\nname: broken model\n")
    return d / "broken.zip"


BAD = {  # what makes a model unusable -> what the one line says
    "unsupported output": (lambda d, net: save_torchscript(net, d / "m.pt", _sidecar({"output": "lsds"})),
                           "declared as 'lsds'"),
    "several channels": (_two_channels, "outputs 2 channel(s)"),
    "missing sidecar field": (lambda d, net: save_torchscript(net, d / "m.pt", _sidecar({"voxel_size": None})),
                              "missing field 'voxel_size'"),
    "no sidecar": (lambda d, net: save_torchscript(net, d / "m.pt", None), "needs a sidecar YAML"),
    "broken package": (_broken_zip, "not a valid bioimage.io package"),
    "folder without rdf.yaml": (lambda d, net: (d / "empty").mkdir() or d / "empty", "no bioimage.io package"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_models_end_in_one_line_and_exit_2_before_any_work(foreign, tmp_path, capsys, case):
    make, fragment = BAD[case]
    model = make(tmp_path, foreign.net)
    for argv in (["predict", "--checkpoint", model, "--input", foreign.target, "--out", tmp_path / "o.zarr"],
                 ["select-source", "--target", foreign.target, "--model", f"m={model}", "--out", tmp_path / "sel"],
                 ["finetune", "--target", foreign.target, "--samples", tmp_path / "none.json", "--backbone", model,
                  "--out", tmp_path / "ft"],
                 ["export", "--checkpoint", model, "--out", tmp_path / "pkg"]):
        code, out, err = _run(capsys, *argv)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, (argv[0], err)
        assert fragment in lines[0], (argv[0], lines[0])
    assert not any(p.exists() for p in (tmp_path / "o.zarr", tmp_path / "sel", tmp_path / "ft", tmp_path / "pkg"))


def test_backbone_folders_find_every_kind(foreign, tmp_path):
    import shutil

    from neuroadda.config import TransferStudyConfig
    from neuroadda.selection.select import resolve_backbones
    from neuroadda.workflows.study import backbone_path

    shutil.copy(foreign.pkg, tmp_path / "zoo.zip")
    shutil.copy(foreign.ts, tmp_path / "lab.pt")
    shutil.copy(foreign.ts.with_suffix(".yaml"), tmp_path / "lab.yaml")
    with zipfile.ZipFile(foreign.pkg) as z:
        z.extractall(tmp_path / "unzipped")
    (tmp_path / "ours").mkdir()
    shutil.copy(foreign.native, tmp_path / "ours" / "model.pt")
    found = resolve_backbones(["zoo", "lab", "unzipped", "ours", "none"], [], tmp_path)
    assert found == {"zoo": tmp_path / "zoo.zip", "lab": tmp_path / "lab.pt", "unzipped": tmp_path / "unzipped" /
                     "rdf.yaml", "ours": tmp_path / "ours" / "model.pt", "none": None}
    assert {type(load_backbone(p).net).__name__ for p in found.values() if p} == {"ImportedNet", "AffinityUNet"}
    cfg = TransferStudyConfig(targets=[{"name": "t"}], sources=["zoo", "none"], backbones=str(tmp_path))
    assert backbone_path(cfg, "zoo") == tmp_path / "zoo.zip"  # a study takes a package as a source's backbone
    assert backbone_path(cfg, "none") == tmp_path / "none" / "model.pt"  # where pretraining would write it


@pytest.mark.integration  # the method end to end (two fine-tunes, held-out evaluation): ~10-20 s
def test_adapt_with_only_an_imported_model(foreign, tmp_path, capsys):
    cfg = tmp_path / "adapt.yaml"
    cfg.write_text(ADAPT_CONFIG.replace("estimator: mmd2", "estimator: consistency"))
    code, out, err = _run(capsys, "adapt", "--target", foreign.target, "--model", f"lab-pkg={foreign.pkg}",
                          "--n", 1, "--seeds", 1, "--config", cfg, "--out", tmp_path / "adapt", "--quiet")
    assert code == 0, err
    rep = json.loads((tmp_path / "adapt" / "report.json").read_text())
    sel = json.loads((tmp_path / "adapt" / "select" / "selection.json").read_text())
    assert rep["source"] == "lab-pkg" and sel["estimator"] == "consistency-input"
    assert set(rep["arms"]) == {"finetuned", "scratch"} and all(np.isfinite(a["vi"][0]) for a in rep["arms"].values())
    scratch = load_backbone(tmp_path / "adapt" / "seed0" / "round1" / "scratch" / "model.pt")
    assert isinstance(scratch.net, ImportedNet) and scratch.meta["kind"] == "scratch"  # fresh weights, same network


def test_feature_dropout_consistency_skips_an_imported_model_alone(foreign):
    res = estimate("consistency", Context(foreign.target, {"lab-ts": foreign.ts, foreign.source: foreign.native}))
    assert np.isnan(res["scores"]["lab-ts"]) and "internals are unknown" in res["detail"]["lab-ts"]["skipped"]
    assert np.isfinite(res["scores"][foreign.source])  # ours keeps its feature-dropout score (the study's estimator)
