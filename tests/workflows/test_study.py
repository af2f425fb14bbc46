"""transfer-study on tiny synthetic datasets with their own cards: shape of results.json, resuming after
kill -9, one-line errors, and the statistics of results.md recomputed by hand."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from neuroadda.cli.main import main
from tests.conftest import blob_labels, raw_from_labels

pytestmark = pytest.mark.integration  # the slow lane: pytest -m 'not integration' skips it

CARD = """name: {name}
description: tiny synthetic volume
organism: none
species: Drosophila melanogaster
tissue: none
modality: {modality}
voxel_size_nm: [10.0, 10.0, 10.0]
files:
  - filename: {name}.h5
raw: {{file: {name}.h5, key: raw}}
{labels}labels_kind: 3d_instance
label_zero: boundary
license: CC0
citation: none
local_dir: data
"""


@pytest.fixture
def study_env(tmp_path, monkeypatch):
    cards = tmp_path / "cards"
    (cards / "data").mkdir(parents=True)
    for k, (name, modality) in enumerate([("a", "FIB-SEM"), ("b", "FIB-SEM"), ("c", "ssTEM"), ("raw-only", "SBEM")]):
        lab = blob_labels((16, 48, 48), cell=6 + 2 * k, seed=k)
        with h5py.File(cards / "data" / f"{name}.h5", "w") as f:
            f["raw"] = raw_from_labels(lab, seed=k)
            if name != "raw-only":
                f["labels"] = lab
        labels = "" if name == "raw-only" else f"labels: {{file: {name}.h5, key: labels}}\n"
        (cards / f"{name}.yaml").write_text(CARD.format(name=name, modality=modality, labels=labels))
    monkeypatch.setenv("NEUROADDA_DATASETS", str(cards))
    pre = tmp_path / "pretrain.yaml"
    pre.write_text("model:\n  channels: [4, 8]\ndata:\n  patch_size: [8, 16, 16]\ntrain:\n  max_steps: 3\n"
                   "  batch_size: 1\n  val_patches: 0\n  thresholds: [0.3, 0.7]\n  checkpoint_every: 0\n")
    ada = tmp_path / "adapt.yaml"
    ada.write_text("active:\n  candidate_size: [8, 16, 16]\n  holdout_fraction: 0.4\nfinetune:\n  max_steps: 2\n"
                   "  batch_size: 1\n  thresholds: [0.3, 0.7]\n  logger: none\n  checkpoint_every: 0\n")
    cfg = tmp_path / "study.yaml"
    cfg.write_text(f"targets:\n  - name: a\n  - name: b\nsources: [a, b, c]\nbudgets: [1]\nseeds: 2\n"
                   "estimators: [mmd2, compat+entropy, zero-shot-vi]\n"
                   f"backbones: {tmp_path / 'bb'}\npretrain_config: {pre}\nadapt_config: {ada}\n"
                   f"out: {tmp_path / 'study'}\n")
    return tmp_path, cfg


def _results(tmp_path):
    return json.loads((tmp_path / "study" / "results.json").read_text())


def test_study_end_to_end_shape_and_stats(study_env, capsys):
    tmp_path, cfg = study_env
    assert main(["transfer-study", "--config", str(cfg), "--quiet"]) == 0
    res = _results(tmp_path)
    assert set(res["targets"]) == {"a", "b"} and res["default_estimator"] in {"mmd2", "compat+entropy"}
    assert res["default_labelled_estimator"] == "zero-shot-vi" and set(res["default_why"]) == {"label-free", "labelled"}
    a = res["targets"]["a"]
    assert a["n"] == 1 and a["seeds"] == [0, 1] and set(a["arms"]) == {"b", "c", "scratch"}
    for arm in a["arms"].values():
        assert len(arm["vi"]) == len(arm["vi_split"]) == len(arm["vi_merge"]) == 2
        assert all(abs(v - (s + m)) < 1e-9 for v, s, m in zip(arm["vi"], arm["vi_split"], arm["vi_merge"]))
    assert set(a["zero_shot"]) == {"b", "c"}
    assert set(a["estimators"]) == {"mmd2", "compat+entropy", "zero-shot-vi"}
    assert all(set(v) == {"b", "c"} for v in a["estimators"].values())
    per_seed = [json.loads((tmp_path / "study" / "a" / "n1" / f"seed{s}" / "estimators" / "zero-shot-vi.json")
                           .read_text())["scores"]["b"] for s in (0, 1)]
    assert a["estimators"]["zero-shot-vi"]["b"] == pytest.approx(np.mean(per_seed))  # label-using: mean over seeds
    assert a["modality"] == "FIB-SEM" and a["source_modality"] == {"b": "FIB-SEM", "c": "ssTEM"}
    # every arm of one (target, seed) trained on the same samples
    for seed in (0, 1):
        d = tmp_path / "study" / "a" / "n1" / f"seed{seed}"
        boxes = json.loads((d / "samples.json").read_text())["boxes"]
        for arm in ("b", "c", "scratch"):
            from neuroadda.models.checkpoint import load_backbone

            assert load_backbone(d / arm / "model.pt")[1]["samples"] == boxes
    md = (tmp_path / "study" / "results.md").read_text()
    assert "Noise ceiling" in md and "mmd2" in md and "same modality first" in md
    for f in ("vi_matrix.png", "estimators.png"):
        assert (tmp_path / "study" / f).read_bytes()[:4] == b"\x89PNG"


def test_killed_study_skips_finished_elements(study_env):
    tmp_path, cfg = study_env
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "neuroadda.cli.main", "transfer-study", "--config", str(cfg), "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = tmp_path / "study" / "a" / "n1" / "seed0" / "b" / "eval.json"
    deadline = time.time() + 240
    while not first.is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first.is_file()
    stamp = first.stat().st_mtime_ns
    out = subprocess.run(cmd[:-1], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert first.stat().st_mtime_ns == stamp  # not redone
    assert "finetune a b n=1 seed 0" not in out.stdout  # skipped: not announced
    assert len(_results(tmp_path)["targets"]["b"]["seeds"]) == 2


@pytest.mark.parametrize("edit, fragment", [
    ("targets:\n  - name: a\nsources: [a, b]\nbogus: 1\n", "bogus"),
    ("targets:\n  - name: raw-only\nsources: [a, b]\n", "has no labels"),
    ("targets:\n  - name: a\nsources: [a, nope]\n", "unknown dataset 'nope'"),
    ("targets:\n  - name: a\nsources: [a, b]\nestimators: [oracle]\n", "unknown estimator"),
    ("targets:\n  - name: a\nsources: [a, b]\nbudgets: [99]\n", "fewer than n = 99"),
])
def test_bad_study_configs_are_one_line(study_env, capsys, edit, fragment):
    tmp_path, cfg = study_env
    bad = tmp_path / "bad.yaml"
    bad.write_text(edit + f"out: {tmp_path / 'bad_out'}\nadapt_config: {tmp_path / 'adapt.yaml'}\n")
    assert main(["transfer-study", "--config", str(bad), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0]
    assert not (tmp_path / "bad_out").exists()
