"""``neuroadda demo``: the shipped config and backbones agree, and the whole demo (--retrain included) runs
through the CLI on tiny synthetic volumes with tiny budgets."""

from __future__ import annotations

import json

import pytest
import yaml

from neuroadda.cli.main import main
from neuroadda.config import DemoConfig, load_config
from neuroadda.errors import ConfigError
from neuroadda.models.checkpoint import load_backbone
from neuroadda.workflows.demo import DEFAULT_CONFIG, backbone_paths
from tests.conftest import labelled_volume as _volume

pytestmark = pytest.mark.integration  # the slow lane: pytest -m 'not integration' skips it


def test_shipped_backbones_are_the_ones_the_demo_config_builds():
    cfg = load_config(DEFAULT_CONFIG, DemoConfig)
    for src, path in backbone_paths(cfg).items():
        net, meta = load_backbone(path)
        assert meta["source"] == src and meta["kind"] == "backbone"
        assert net.hparams["channels"] == cfg.pretrain.model.channels
        assert meta["patch_size"] == list(cfg.pretrain.data.patch_size)
        assert meta["steps"] == cfg.pretrain.train.max_steps
        want_vs = cfg.resample.get(src)
        assert meta["config"]["data"]["voxel_size"] == (list(want_vs) if want_vs else None)
        assert path.stat().st_size < 2_000_000  # small enough to live in the repository


def _tiny_config(tmp_path, sources, backbones):
    cfg = yaml.safe_load(DEFAULT_CONFIG.read_text())
    cfg.update(target=_volume(tmp_path / "target.h5", 0), sources=sources, backbones=str(backbones), n=2, resample={})
    cfg["pretrain"]["model"]["channels"] = [4, 8, 16]
    cfg["pretrain"]["data"]["patch_size"] = [8, 16, 16]
    cfg["pretrain"]["train"].update(max_steps=3, val_every_n_steps=3, thresholds=[0.3, 0.7], val_patches=1)
    cfg["adapt"]["active"]["candidate_size"] = [8, 16, 16]
    cfg["adapt"]["finetune"].update(max_steps=3, batch_size=1, thresholds=[0.3, 0.7])
    cfg["adapt"]["select_source"].update(patches=8, permutations=20)
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_demo_retrains_then_prints_the_table_and_writes_figures(tmp_path, capsys):
    sources = [_volume(tmp_path / "near.h5", 1), _volume(tmp_path / "far.h5", 2, dark=True)]
    config = _tiny_config(tmp_path, sources, tmp_path / "bb")
    out = tmp_path / "demo"
    assert main(["demo", "--config", str(config), "--retrain", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "demo.json").read_text())
    rep = summary["report"]
    assert sorted(r["source"] for r in rep["ranking"]) == sorted(sources)
    for r in rep["ranking"]:  # every source in the printed ranking with its score (and p-value when there is one)
        assert f"{r['score']:.4f}" in printed and (r["p_value"] is None or f"{r['p_value']:.4f}" in printed)
    assert rep["seeds"] == [0, 1, 2]  # the default: three seeds, paired on the samples
    for arm in ("finetuned", "scratch"):
        assert len(rep["arms"][arm]["vi"]) == 3
        assert f"{rep['arms'][arm]['vi_mean']:.3f} ± {rep['arms'][arm]['vi_sd']:.3f}" in printed
    pd = rep["paired"]
    assert pd["diffs"] == pytest.approx([f - s for f, s in zip(rep["arms"]["finetuned"]["vi"],
                                                                rep["arms"]["scratch"]["vi"])])
    assert f"95% bootstrap CI [{pd['ci_low']:+.3f}, {pd['ci_high']:+.3f}]" in printed
    red = (100 * (rep["arms"]["scratch"]["vi_mean"] - rep["arms"]["finetuned"]["vi_mean"])
           / rep["arms"]["scratch"]["vi_mean"])
    assert f"VI reduction, fine-tuned vs scratch: {red:.1f}%" in printed
    assert f"Figures are in {out}" in printed.splitlines()[-1]
    for f in ("select/ranking.png", "seed0/round1/samples.png", "report.png", "heldout.png"):
        assert (out / f).stat().st_size > 1000
    stages = summary["stage_seconds"]
    assert {f"pretrain backbone {s}" for s in sources} <= set(stages)
    assert {f"seed {s}, round 1: train from scratch on 2 samples (3 steps)" for s in (0, 1, 2)} <= set(stages)
    assert all(t > 0 for t in stages.values())
    assert 0 < summary["peak_rss_gb"] < 24


def test_demo_errors_are_one_line(tmp_path, capsys):
    config = _tiny_config(tmp_path, [_volume(tmp_path / "s.h5", 1), _volume(tmp_path / "s2.h5", 2)], tmp_path / "none")
    assert main(["demo", "--config", str(config), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--retrain" in err and str(tmp_path / "none") in err
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("x")
    assert main(["demo", "--config", str(config), "--out", str(tmp_path / "mine")]) == 2
    assert "not empty" in capsys.readouterr().err and (tmp_path / "mine" / "thesis.tex").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text(config.read_text().replace("permutations:", "permutatoins:"))
    assert main(["demo", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "permutatoins" in capsys.readouterr().err


def test_demo_config_without_sources_is_a_config_error(tmp_path):
    cfg = yaml.safe_load(DEFAULT_CONFIG.read_text())
    cfg.pop("sources")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="field 'sources'"):
        load_config(tmp_path / "c.yaml", DemoConfig)
