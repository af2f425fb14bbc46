"""``neuroadda adapt`` / ``select-samples`` / ``finetune`` on tiny synthetic volumes through the CLI, including a
run killed mid-way and started again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import torch

from neuroadda.cli.main import main
from neuroadda.config import ActiveConfig
from neuroadda.models.checkpoint import load_backbone
from tests.conftest import ADAPT_CONFIG as CONFIG
from tests.conftest import labelled_volume as _volume
from tests.conftest import tiny_backbone as _backbone

pytestmark = pytest.mark.integration  # the slow lane: pytest -m 'not integration' skips it


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("adapt")
    target = _volume(d / "target.h5", 0)
    sources = [_volume(d / "near.h5", 1), _volume(d / "far.h5", 2, dark=True)]
    backbones = [f"{s}={_backbone(d / f'bb{i}.pt', i)}" for i, s in enumerate(sources)]
    (d / "cfg.yaml").write_text(CONFIG)
    torch.set_num_threads(1)
    return {"dir": d, "target": target, "sources": sources, "backbones": backbones, "config": str(d / "cfg.yaml")}


def _adapt_args(s, out, seeds="2", extra=()):
    args = ["adapt", "--target", s["target"], "--sources", *s["sources"], "--n", "2", "--seeds", seeds,
            "--out", str(out), "--config", s["config"], "--quiet", *extra]
    for b in s["backbones"]:
        args += ["--backbone", b]
    return args


def test_adapt_end_to_end_report(setup, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_adapt_args(setup, out)) == 0
    rep = json.loads((out / "report.json").read_text())
    assert set(rep) >= {"target", "source", "n", "strategy", "seeds", "arms", "vi_reduction_pct"}
    assert rep["n"] == 2 and rep["seeds"] == [0, 1] and rep["strategy"] == ActiveConfig().strategy == "random"
    sel = json.loads((out / "select" / "selection.json").read_text())
    assert rep["source"] == sel["best"] == sel["ranking"][0]["source"]
    for arm in ("finetuned", "scratch"):
        a = rep["arms"][arm]
        assert len(a["vi"]) == len(a["vi_split"]) == len(a["vi_merge"]) == 2
        np.testing.assert_allclose(a["vi"], np.add(a["vi_split"], a["vi_merge"]), atol=1e-9)
        assert a["vi_mean"] == pytest.approx(np.mean(a["vi"]))
        assert a["vi_sd"] == pytest.approx(np.std(a["vi"], ddof=1))
    ft, sc = rep["arms"]["finetuned"]["vi_mean"], rep["arms"]["scratch"]["vi_mean"]
    assert rep["vi_reduction_pct"] == pytest.approx(100 * (sc - ft) / sc)
    md = (out / "report.md").read_text()
    assert "| 2 | finetuned |" in md and "| 2 | scratch |" in md and (out / "report.png").stat().st_size > 0
    for seed in (0, 1):
        d = out / f"seed{seed}" / "round1"
        samples = json.loads((d / "samples.json").read_text())
        holdout = samples["holdout"]
        m_ft, m_sc = load_backbone(d / "finetuned" / "model.pt")[1], load_backbone(d / "scratch" / "model.pt")[1]
        # both arms: the same samples, the same schedule; only the initial weights differ
        assert m_ft["samples"] == m_sc["samples"] == [s["box"] for s in samples["samples"]]
        assert m_ft["steps"] == m_sc["steps"] == 3 and m_ft["init"].endswith(".pt") and m_sc["init"] == "scratch"
        assert m_ft["threshold_region"]["what"] == "training samples"
        for s in samples["samples"]:  # no sample touches the held-out slab
            assert any(b[1] <= h[0] or b[0] >= h[1] for b, h in zip(s["box"], holdout))
        ev = json.loads((d / "finetuned" / "eval.json").read_text())
        assert ev["region"] == holdout and ev["threshold"] == m_ft["threshold"]
    assert "VI" in capsys.readouterr().out


def test_killed_adapt_resumes_without_redoing_finished_steps(setup, tmp_path, capsys):
    out = tmp_path / "run"
    marker = out / "seed0" / "round1" / "finetuned" / "model.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "neuroadda.cli.main", *_adapt_args(setup, out, seeds="3")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    t0 = time.time()
    while not marker.exists() and proc.poll() is None and time.time() - t0 < 300:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert marker.exists(), "the run never reached its first fine-tuning"
    assert not (out / "report.json").exists(), "killed too late: the run had already finished"
    stamp = marker.stat().st_mtime_ns
    capsys.readouterr()
    assert main(_adapt_args(setup, out, seeds="3")) == 0
    log = capsys.readouterr().out
    for step in ("select-source", "zero-shot", "seed 0, round 1: select 2 samples", "seed 0, round 1: fine-tune"):
        line = next(ln for ln in log.splitlines() if step in ln)
        assert line.endswith("done earlier, skipped"), line
    assert marker.stat().st_mtime_ns == stamp  # the finished fine-tuning was not redone
    assert "seed 0, round 1: train from scratch on 2 samples (3 steps): done in" in log
    assert not list(out.rglob("*.tmp"))
    rep = json.loads((out / "report.json").read_text())
    assert len(rep["arms"]["scratch"]["vi"]) == 3
    # the same command again redoes nothing; different settings in the same folder are refused
    assert main(_adapt_args(setup, out, seeds="3")) == 0
    assert "done in" not in capsys.readouterr().out
    assert main(_adapt_args(setup, out, seeds="3", extra=["--max-steps", "4"])) == 2
    err = capsys.readouterr().err
    assert "different settings (config)" in err and len(err.strip().splitlines()) == 1


def test_rounds_add_new_samples_scored_by_the_previous_model(setup, tmp_path):
    out = tmp_path / "run"
    assert main(_adapt_args(setup, out, seeds="1", extra=["--rounds", "2"])) == 0
    r1 = json.loads((out / "seed0" / "round1" / "samples.json").read_text())
    r2 = json.loads((out / "seed0" / "round2" / "samples.json").read_text())
    boxes1, boxes2 = [s["box"] for s in r1["samples"]], [s["box"] for s in r2["samples"]]
    assert not set(map(str, boxes1)) & set(map(str, boxes2))
    assert [s["name"] for s in r2["samples"]] == ["sample_02", "sample_03"]
    assert r1["scores"] != r2["scores"]  # round 2 is scored by the round-1 fine-tuned model
    meta = load_backbone(out / "seed0" / "round2" / "scratch" / "model.pt")[1]
    assert meta["n_train"] == 4 and meta["samples"] == boxes1 + boxes2
    rep = json.loads((out / "report.json").read_text())
    assert [r["n_total"] for r in rep["rounds"]] == [2, 4] and rep["arms"] == rep["rounds"][-1]["arms"]


def test_select_samples_annotate_and_finetune_from_returned_labels(setup, tmp_path, capsys):
    s, out = setup, tmp_path / "sel"
    bb = s["backbones"][0].split("=", 1)[1]
    assert main(["select-samples", "--target", s["target"], "--backbone", bb, "--n", "3", "--out", str(out),
                 "--config", s["config"], "--strategy", "median-uncertainty", "--quiet"]) == 0
    rec = json.loads((out / "samples.json").read_text())
    assert rec["n"] == 3 and len(rec["samples"]) == 3 and rec["backbone"] == bb
    med = np.median(rec["scores"])
    dist = sorted(abs(x - med) for x in rec["scores"])
    assert sorted(abs(p["score"] - med) for p in rec["samples"]) == pytest.approx(dist[:3])
    for p in rec["samples"]:
        assert p["offset_nm"] == [10.0 * v for v in p["offset_voxels"]]
        assert (out / "annotate" / f"{p['name']}.h5").exists() and (out / "annotate" / f"{p['name']}.tif").exists()
    # an annotator returns labels in the exported HDF5 files
    gt = h5py.File(s["target"], "r")["labels"][:]
    for p in rec["samples"]:
        with h5py.File(out / "annotate" / f"{p['name']}.h5", "a") as f:
            f["labels"] = gt[tuple(slice(a, b) for a, b in p["box"])].astype(np.uint32)
    ft = tmp_path / "ft"
    assert main(["finetune", "--target", s["target"], "--samples", str(out / "samples.json"), "--backbone", "scratch",
                 "--labels", str(out / "annotate"), "--out", str(ft), "--config", s["config"], "--quiet"]) == 0
    meta = load_backbone(ft / "model.pt")[1]
    assert meta["kind"] == "scratch" and meta["n_train"] == 3 and "wrote" in capsys.readouterr().out
    # a float annotation is refused with one line naming the file
    with h5py.File(out / "annotate" / "sample_01.h5", "a") as f:
        del f["labels"]
        f["labels"] = np.ones(tuple(b - a for a, b in rec["samples"][1]["box"]), np.float32)
    assert main(["finetune", "--target", s["target"], "--samples", str(out / "samples.json"), "--backbone", bb,
                 "--labels", str(out / "annotate"), "--out", str(tmp_path / "ft2"), "--config", s["config"],
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "sample_01.h5" in err and "float32" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "ft2" / "model.pt").exists()


@pytest.mark.parametrize("args,fragment", [
    (["--n", "99"], "cannot select 99 samples"),
    (["--strategy", "most-uncertain"], "--strategy most-uncertain: Value error, unknown strategy"),  # the flag
])
def test_select_samples_errors(setup, tmp_path, capsys, args, fragment):
    bb = setup["backbones"][0].split("=", 1)[1]
    rc = main(["select-samples", "--target", setup["target"], "--backbone", bb, "--out", str(tmp_path / "x"),
               "--config", setup["config"], "--quiet", *args])
    err = capsys.readouterr().err
    assert rc == 2 and fragment in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_finetune_rejects_samples_from_another_volume(setup, tmp_path, capsys):
    bb = setup["backbones"][0].split("=", 1)[1]
    out = tmp_path / "sel"
    assert main(["select-samples", "--target", setup["target"], "--backbone", bb, "--n", "1", "--out", str(out),
                 "--config", setup["config"], "--quiet"]) == 0
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["raw"], f["labels"] = np.zeros((24, 40, 40), np.uint8), np.ones((24, 40, 40), np.uint64)
    capsys.readouterr()
    assert main(["finetune", "--target", str(other), "--samples", str(out / "samples.json"), "--backbone", bb,
                 "--out", str(tmp_path / "ft"), "--quiet"]) == 2
    assert "shape (24, 40, 48)" in capsys.readouterr().err


def test_training_killed_mid_way_resumes_from_its_last_checkpoint(setup, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG.replace("max_steps: 3", "max_steps: 60\n  checkpoint_every: 5"))
    s = {**setup, "config": str(cfg)}
    out = tmp_path / "run"
    ckpt = out / "seed0" / "round1" / "finetuned" / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen([sys.executable, "-m", "neuroadda.cli.main", *_adapt_args(s, out, seeds="1")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    t0 = time.time()
    while not ckpt.exists() and proc.poll() is None and time.time() - t0 < 300:
        time.sleep(0.02)
    time.sleep(0.3)  # let the checkpoint file be complete (Lightning writes it atomically, but to be safe)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    model = out / "seed0" / "round1" / "finetuned" / "model.pt"
    assert ckpt.exists() and not model.exists(), "killed outside the fine-tuning"
    assert main(_adapt_args(s, out, seeds="1")) == 0
    meta = load_backbone(model)[1]
    assert meta["steps"] == 60 and 5 <= meta["resumed_from_step"] < 60 and meta["resumed_from_step"] % 5 == 0
    assert not ckpt.parent.exists()  # periodic checkpoints are removed once the model is written
    assert load_backbone(out / "seed0" / "round1" / "scratch" / "model.pt")[1]["resumed_from_step"] == 0
