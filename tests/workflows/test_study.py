"""transfer-study on tiny synthetic datasets with their own cards: shape of results.json, resuming after
kill -9, one-line errors, and the statistics of results.md recomputed by hand."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from neuroadda.cli.main import main

pytestmark = pytest.mark.integration  # the slow lane: pytest -m 'not integration' skips it


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
