"""W&B tracking: offline runs (no API key) hold the config, the dataset checksums and the summary metrics."""

from __future__ import annotations

import json

import pytest

from neuroadda.cli.main import main
from neuroadda.tracking import read_offline_run, wandb_mode
from tests.conftest import ADAPT_CONFIG as CONFIG
from tests.conftest import labelled_volume as _volume
from tests.conftest import tiny_backbone as _backbone

pytestmark = pytest.mark.integration  # the slow lane: pytest -m 'not integration' skips it


def test_wandb_mode_follows_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    assert wandb_mode() == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode() == "disabled"


def test_adapt_with_wandb_writes_offline_runs_with_metrics(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    target, src = _volume(tmp_path / "t.h5", 0), _volume(tmp_path / "s.h5", 1)
    bb = _backbone(tmp_path / "bb.pt", 0)
    (tmp_path / "cfg.yaml").write_text(CONFIG)
    out = tmp_path / "run"
    assert main(["adapt", "--target", target, "--sources", src, "--backbone", f"{src}={bb}", "--n", "2", "--seeds", "1",
                 "--out", str(out), "--config", str(tmp_path / "cfg.yaml"), "--logger", "wandb", "--quiet"]) == 0
    runs = [read_offline_run(r) for r in sorted(out.rglob("offline-run-*"))]
    assert len(runs) == 3  # fine-tuned, scratch, adapt summary
    train = [r for r in runs if "train/loss" in r["summary"]]
    assert len(train) == 2
    for r in train:
        assert {"threshold/vi_split", "threshold/vi_merge", "threshold/threshold"} <= set(r["summary"])
        assert "train/loss" in r["history_keys"] and "validation/captions" in r["history_keys"]  # image slices
        cfg = r["config"]["neuroadda"]
        assert cfg["target"] == target and cfg["finetune"]["max_steps"] == 3 and "checksums" in cfg
    adapt = [r["summary"] for r in runs if "vi_reduction_pct" in r["summary"]]
    assert len(adapt) == 1 and "finetuned/vi_mean" in adapt[0] and f"mmd2/{src}" in adapt[0]
    rep = json.loads((out / "report.json").read_text())
    assert adapt[0]["vi_reduction_pct"] == pytest.approx(rep["vi_reduction_pct"])
    assert adapt[0]["scratch/vi_mean"] == pytest.approx(rep["arms"]["scratch"]["vi_mean"])


def test_select_source_and_evaluate_log_offline_runs(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    target, src = _volume(tmp_path / "t.h5", 0), _volume(tmp_path / "s.h5", 1)
    bb = _backbone(tmp_path / "bb.pt", 0)
    assert main(["select-source", "--target", target, "--sources", src, "--backbone", f"{src}={bb}", "--patches", "8",
                 "--permutations", "20", "--estimator", "mmd2", "--out", str(tmp_path / "sel"), "--logger", "wandb",
                 "--quiet"]) == 0
    (run,) = [read_offline_run(r) for r in (tmp_path / "sel").rglob("offline-run-*")]
    sel = json.loads((tmp_path / "sel" / "selection.json").read_text())
    assert run["summary"][f"mmd2/{src}"] == pytest.approx(sel["ranking"][0]["mmd2"])
    assert run["config"]["neuroadda"]["target"] == target
    # a segmentation equal to the ground truth: VI 0 in the evaluation run's summary
    assert main(["evaluate", "--seg", f"{target}:labels", "--gt", target, "--json", str(tmp_path / "ev" / "s.json"),
                 "--logger", "wandb"]) == 0
    (run,) = [read_offline_run(r) for r in (tmp_path / "ev").rglob("offline-run-*")]
    assert run["summary"]["segmentation/vi"] == pytest.approx(0.0, abs=1e-9)
    assert "segmentation/vi_split" in run["summary"] and "segmentation/vi_merge" in run["summary"]
