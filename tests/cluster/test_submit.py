"""``neuroadda submit`` / ``experiment`` / ``run-task``: generated sbatch scripts are valid bash, carry no
shell injection from names or paths, and a grid runs end to end — on a real local SLURM when there is one."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from neuroadda.cli.main import main
from neuroadda.selection.select import safe_name
from tests.conftest import ADAPT_CONFIG, PRETRAIN_CONFIG
from tests.conftest import labelled_volume as _volume
from tests.conftest import tiny_backbone as _backbone

pytestmark = pytest.mark.integration  # the slow lane: pytest -m 'not integration' skips it

REPO = Path(__file__).resolve().parents[2]
WEIRD = "we ird 'q' \"d\" $(touch PWNED) `touch PWNED2`"


def _experiment(tmp_path, weird=True, budgets=(1, 2), sources=("src.h5",), pretrained=None):
    """An experiment YAML over tiny volumes; sources not in ``pretrained`` (default: all) have no backbone yet."""
    d = tmp_path / (WEIRD if weird else "plain")
    d.mkdir()
    target = _volume(d / "target vol.h5", 0)
    sources = [_volume(d / name, i + 1) for i, name in enumerate(sources)]
    bb = d / "backbones"
    for i, src in enumerate(sources):
        if pretrained is None or Path(src).name in pretrained:
            _backbone(bb / safe_name(src) / "model.pt", i + 1)
    (d / "adapt.yaml").write_text(ADAPT_CONFIG)
    (d / "pretrain.yaml").write_text(PRETRAIN_CONFIG)
    cfg = {"name": "tiny", "targets": [target], "sources": sources, "backbones": str(bb), "budgets": list(budgets),
           "strategies": ["median-uncertainty"], "seeds": 1, "adapt_config": str(d / "adapt.yaml"),
           "pretrain_config": str(d / "pretrain.yaml"),
           "out": str(d / "out dir"), "resources": {"cpus": 1, "mem": "1G", "time": "00:10:00"}}
    path = d / "experiment.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, cfg


def test_dry_run_scripts_are_valid_and_quote_everything(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path, cfg = _experiment(tmp_path)
    assert main(["submit", "--config", str(path), "--dry-run", "--partition", "gpu-a100", "--gpus", "2"]) == 0
    out = capsys.readouterr().out
    assert "would run: sbatch" in out and "--dependency=afterok:" in out
    sdir = Path(cfg["out"]) / "slurm"
    script = (sdir / "target_vol.h5.sbatch").read_text()
    assert "#SBATCH --array=0-1" in script and "#SBATCH --partition=gpu-a100" in script
    assert "#SBATCH --gpus-per-node=2" in script and "#SBATCH --ntasks-per-node=2" in script
    assert "#SBATCH --signal=SIGUSR1@90" in script and "srun " in script
    for f in ("target_vol.h5.sbatch", "aggregate.sbatch"):
        assert subprocess.run(["bash", "-n", str(sdir / f)]).returncode == 0
    tasks = json.loads((sdir / "target_vol.h5.tasks.json").read_text())["tasks"]
    assert ([t["n"] for t in tasks] == [1, 2]
            and tasks[0]["argv"][tasks[0]["argv"].index("--target") + 1] == cfg["targets"][0])
    assert not list(tmp_path.rglob("PWNED*"))


@pytest.mark.parametrize("bad,fragment", [
    ({"resources": {"partition": "a;b"}}, "resources.partition"),
    ({"resources": {"mem": "8 GB"}}, "resources.mem"),
    ({"budgets": [0]}, "budgets"),
    ({"strategy": "random"}, "strategy"),
    ({"sources": ["gala-trian"]}, "did you mean gala-train"),
    ({"targets": ["/nonexistent/t.h5"]}, "targets: '/nonexistent/t.h5' is neither a dataset name nor an existing path"),
    ({"adapt_config": "/nonexistent/adapt.yaml"}, "adapt_config '/nonexistent/adapt.yaml' not found"),
    ({"pretrain_configs": {"gala-train": "configs/pretrain_sstem.yaml"}}, "pretrain_configs: 'gala-train' is not one"),
])
def test_submit_config_errors(tmp_path, capsys, bad, fragment):
    path, cfg = _experiment(tmp_path, weird=False)
    for k, v in bad.items():
        cfg[k] = {**cfg.get(k, {}), **v} if isinstance(v, dict) else v
    path.write_text(yaml.safe_dump(cfg))
    assert main(["submit", "--config", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1
    assert not Path(cfg["out"]).exists()  # refused before anything is written


def test_submit_validates_the_pretrain_config_of_missing_backbones(tmp_path, capsys):
    path, cfg = _experiment(tmp_path, weird=False, pretrained=())
    Path(cfg["pretrain_config"]).write_text("train:\n  max_steps: 0\n")
    assert main(["submit", "--config", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "pretrain.yaml: field 'train.max_steps'" in err and len(err.strip().splitlines()) == 1
    assert not Path(cfg["out"]).exists()


def test_dry_run_pretrains_missing_backbones_first(tmp_path, capsys, monkeypatch):
    """A fresh checkout: only one of two sources has a backbone; the other becomes a pretraining array that the
    target's array waits for (--dependency=afterok), shown in the dry run; names and paths stay quoted."""
    monkeypatch.chdir(tmp_path)
    path, cfg = _experiment(tmp_path, sources=("src.h5", "src 2.h5"), pretrained=("src.h5",))
    assert main(["submit", "--config", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "pretraining (1 missing backbone(s): " in out
    cmds = [shlex.split(line.removeprefix("would run: "))
            for line in out.splitlines() if line.startswith("would run: ")]
    assert len(cmds) == 3 and cmds[0][-1].endswith("/pretrain.sbatch") and not any("--dep" in a for a in cmds[0])
    assert "--dependency=afterok:<pretrain job id>" in cmds[1] and cmds[1][-1].endswith("/target_vol.h5.sbatch")
    assert "--dependency=afterok:<array job ids>" in cmds[2] and cmds[2][-1].endswith("/aggregate.sbatch")
    sdir = Path(cfg["out"]) / "slurm"
    script = (sdir / "pretrain.sbatch").read_text()
    assert "#SBATCH --array=0-0" in script and "pretrain.tasks.json" in script
    assert subprocess.run(["bash", "-n", str(sdir / "pretrain.sbatch")]).returncode == 0
    (task,) = json.loads((sdir / "pretrain.tasks.json").read_text())["tasks"]
    missing = cfg["sources"][1]
    assert task["argv"] == ["pretrain", "--source", missing, "--config", cfg["pretrain_config"], "--out",
                            str(Path(cfg["backbones"]) / safe_name(missing)), "--quiet"]
    adapt = json.loads((sdir / "target_vol.h5.tasks.json").read_text())["tasks"][0]["argv"]
    assert adapt[adapt.index("--backbones") + 1] == cfg["backbones"]
    assert not list(tmp_path.rglob("PWNED*"))
    # every backbone present: no pretraining array, the target arrays depend on nothing
    _backbone(Path(cfg["backbones"]) / safe_name(missing) / "model.pt", 5)
    assert main(["submit", "--config", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "pretraining (" not in out and out.count("--dependency") == 1 and not (sdir / "pretrain.sbatch").exists()


def test_array_element_runs_its_task_through_the_generated_script(tmp_path):
    """Run the generated array script with bash (srun replaced by exec) as SLURM would run element 1."""
    path, cfg = _experiment(tmp_path, budgets=(1, 2))
    env = {**os.environ, "SLURM_ARRAY_TASK_ID": "1", "OMP_NUM_THREADS": "1"}
    assert main(["submit", "--config", str(path), "--dry-run"]) == 0
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "srun").write_text('#!/bin/bash\nexec "$@"\n')
    (fake / "srun").chmod(0o755)
    env["PATH"] = f"{fake}:{env['PATH']}"
    script = Path(cfg["out"]) / "slurm" / "target_vol.h5.sbatch"
    res = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    rep = Path(cfg["out"]) / "target_vol.h5" / "n2_median-uncertainty" / "seed0" / "report.json"
    assert json.loads(rep.read_text())["n"] == 2
    assert not list(tmp_path.rglob("PWNED*")) and not list(Path("/").glob("PWNED*"))


def test_submit_to_real_slurm_runs_the_grid_and_aggregates(slurm, tmp_path, capsys):
    path, cfg = _experiment(tmp_path, budgets=(1, 2))
    assert main(["submit", "--config", str(path)]) == 0
    sub = json.loads((Path(cfg["out"]) / "slurm" / "submitted.json").read_text())
    ids = sub["job_ids"]
    assert len(ids) == 2 and "submitted job arrays" in capsys.readouterr().out
    results = Path(cfg["out"]) / "results.json"
    t0 = time.time()
    while time.time() - t0 < 600:
        q = subprocess.run(["squeue", "-h", "-j", ",".join(ids)], capture_output=True, text=True).stdout.strip()
        if not q and results.exists():
            break
        time.sleep(2)
    logs = sorted((Path(cfg["out"]) / "slurm" / "logs").glob("*.out"))
    assert results.exists(), "aggregation did not run: " + " | ".join(p.read_text()[-300:] for p in logs)
    res = json.loads(results.read_text())
    assert sorted(r["n"] for r in res["results"]) == [1, 2] and not res["missing"]
    for r in res["results"]:
        assert r["finetuned_mean"] > 0 and r["scratch_mean"] > 0 and r["seeds"] == [0]
    assert len(logs) == 3  # two array elements + the aggregation job
    assert (Path(cfg["out"]) / "vi_vs_n.png").exists()
    assert not list(tmp_path.rglob("PWNED*"))


def test_submit_to_real_slurm_pretrains_missing_backbones_first(slurm, tmp_path, capsys):
    """No backbone exists: a pretraining array runs first, the target array waits for it (afterok), then the
    aggregation; everything on the real local SLURM."""
    path, cfg = _experiment(tmp_path, weird=False, budgets=(1,), pretrained=())
    assert main(["submit", "--config", str(path)]) == 0
    sub = json.loads((Path(cfg["out"]) / "slurm" / "submitted.json").read_text())
    pre, (array, agg) = sub["pretrain_job_id"], sub["job_ids"]
    assert pre and "submitted pretraining array" in capsys.readouterr().out
    shown = subprocess.run(["scontrol", "show", "job", array], capture_output=True, text=True).stdout
    assert f"Dependency=afterok:{pre}" in shown, shown  # still waiting: pretraining takes seconds to start
    results = Path(cfg["out"]) / "results.json"
    t0 = time.time()
    while time.time() - t0 < 600:
        q = subprocess.run(["squeue", "-h", "-j", ",".join([pre, array, agg])], capture_output=True,
                           text=True).stdout.strip()
        if not q and results.exists():
            break
        time.sleep(2)
    logs = sorted((Path(cfg["out"]) / "slurm" / "logs").glob("*.out"))
    assert results.exists(), "the grid did not finish: " + " | ".join(p.read_text()[-300:] for p in logs)
    model = Path(cfg["backbones"]) / safe_name(cfg["sources"][0]) / "model.pt"
    from neuroadda.models.checkpoint import load_backbone

    assert load_backbone(model)[1]["steps"] == 3
    report = next(Path(cfg["out"]).rglob("report.json"))
    assert model.stat().st_mtime < report.stat().st_mtime
    assert json.loads(results.read_text())["results"][0]["n"] == 1
    assert sum("pretrain" in p.name for p in logs) == 1 and len(logs) == 3


def test_experiment_locally_with_all_sources_measures_transfer(tmp_path, capsys):
    """The grid run here: aggregated VI per (n, arm) and, per target, Spearman of MMD² vs fine-tuned VI."""
    from scipy.stats import rankdata

    path, cfg = _experiment(tmp_path, weird=False, budgets=(1,))
    d = Path(cfg["targets"][0]).parent
    extra = [_volume(d / "src2.h5", 2, dark=True), _volume(d / "src3.h5", 3)]
    for i, s in enumerate(extra, 2):
        _backbone(Path(cfg["backbones"]) / Path(s).name / "model.pt", i)
    cfg.update(sources=cfg["sources"] + extra, all_sources=True)
    path.write_text(yaml.safe_dump(cfg))
    assert main(["experiment", "--config", str(path)]) == 0
    res = json.loads((Path(cfg["out"]) / "results.json").read_text())
    (row,) = res["results"]
    assert row["n"] == 1 and len(row["finetuned"]) == len(row["scratch"]) == 1
    rep = json.loads(next(Path(cfg["out"]).rglob("report.json")).read_text())
    ps = rep["per_source"]
    assert [r["source"] for r in ps["sources"]] == [r["source"] for r in rep["ranking"]]
    assert (next(r for r in ps["sources"] if r["source"] == rep["source"])["vi_mean"]
            == rep["arms"]["finetuned"]["vi_mean"])
    t = res["transfer"][cfg["targets"][0]]
    assert len(t["sources"]) == 3
    rx, ry = rankdata([r["score"] for r in t["sources"]]), rankdata([r["vi"] for r in t["sources"]])
    expected = 1 - 6 * sum((rx - ry) ** 2) / (3 * (3 ** 2 - 1)) if len(set(ry)) == 3 else None
    if expected is not None:  # no ties: Spearman's closed form
        assert t["spearman_score_vs_vi"] == pytest.approx(expected)
    assert "Transfer to" in (Path(cfg["out"]) / "results.md").read_text()
    assert "| 1 | median-uncertainty | 1 |" in capsys.readouterr().out


def test_experiment_locally_pretrains_missing_backbones_first(tmp_path, capsys):
    path, cfg = _experiment(tmp_path, weird=False, budgets=(1,), pretrained=())
    assert main(["experiment", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.index("== pretrain 1/1: pretrain ") < out.index("== task 1/1: ")
    model = Path(cfg["backbones"]) / safe_name(cfg["sources"][0]) / "model.pt"
    assert model.is_file() and json.loads((Path(cfg["out"]) / "results.json").read_text())["results"][0]["n"] == 1
    assert main(["experiment", "--config", str(path)]) == 0  # a second run finds the backbone: no pretraining
    assert "== pretrain" not in capsys.readouterr().out
