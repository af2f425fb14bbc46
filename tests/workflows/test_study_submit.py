"""transfer-study as SLURM arrays: the three stages and their dependencies, every array task run through the
generated tasks files gives the whole study, and the same on a real local SLURM when there is one."""

import json
import subprocess
import time
from pathlib import Path

import pytest

from neuroadda.cli.main import main
from tests.cluster.conftest import slurm  # noqa: F401  (the real-SLURM fixture)

pytestmark = pytest.mark.integration  # the slow lane: pytest -m 'not integration' skips it


def _scripts(tmp_path):
    return json.loads((tmp_path / "study" / "slurm" / "prepare.tasks.json").read_text()), \
        json.loads((tmp_path / "study" / "slurm" / "elements.tasks.json").read_text())


def test_dry_run_writes_three_stages_each_after_the_one_before(study_env, capsys):  # noqa: F811
    tmp_path, cfg = study_env
    assert main(["transfer-study", "--config", str(cfg), "--submit", "--dry-run"]) == 0
    out = capsys.readouterr().out
    prepare, elements = _scripts(tmp_path)
    labels = [t["label"] for t in prepare["tasks"]]
    # three missing backbones, then per target the scratch init and the shared samples of both seeds
    assert labels[:3] == ["pretrain a", "pretrain b", "pretrain c"]
    assert labels[3:] == ["scratch-init a; samples a n=1 seed 0; samples a n=1 seed 1",
                          "scratch-init b; samples b n=1 seed 0; samples b n=1 seed 1"]
    kinds = [[e["kind"] for e in t["elements"]] for t in elements["tasks"]]
    finetunes = [t for t, k in zip(elements["tasks"], kinds) if k == ["finetune"]]
    assert len(finetunes) == 2 * 2 * 3  # targets x seeds x (2 sources + scratch): one task each
    # the gated estimator runs in the same task as its base and compat, after them
    label_free = [t["label"] for t in elements["tasks"] if t["label"].startswith("estimator a mmd2")]
    assert label_free == ["estimator a mmd2; estimator a compat+entropy"]
    lines = [ln for ln in out.splitlines() if ln.startswith("sbatch ")]
    assert len(lines) == 3 and "--dependency" not in lines[0]
    assert "'--dependency=afterok:<prepare job id>'" in lines[1] and "afterok:<elements job id>" in lines[2]
    for stage in ("prepare", "elements", "aggregate"):
        script = tmp_path / "study" / "slurm" / f"{stage}.sbatch"
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert "transfer-study --config" in (tmp_path / "study" / "slurm" / "aggregate.sbatch").read_text()
    assert not (tmp_path / "study" / "results.json").exists()  # a dry run computes nothing


def test_every_array_task_run_in_turn_gives_the_whole_study(study_env, capsys):  # noqa: F811
    tmp_path, cfg = study_env
    assert main(["transfer-study", "--config", str(cfg), "--submit", "--dry-run"]) == 0
    d = tmp_path / "study" / "slurm"
    prepare, elements = _scripts(tmp_path)
    for stage, data in (("prepare", prepare), ("elements", elements)):
        for i in range(len(data["tasks"])):
            assert main(["run-task", "--tasks", str(d / f"{stage}.tasks.json"), "--index", str(i)]) == 0
    assert main(["run-task", "--tasks", str(d / "elements.tasks.json"), "--index", "999"]) == 2
    assert main(["transfer-study", "--config", str(cfg), "--aggregate-only"]) == 0
    res = json.loads((tmp_path / "study" / "results.json").read_text())
    assert not res["missing"]
    assert all(len(arm["vi"]) == 2 for t in res["targets"].values() for arm in t["arms"].values())
    # nothing left to do: a second submission has no array to run, only the aggregation
    capsys.readouterr()
    assert main(["transfer-study", "--config", str(cfg), "--submit", "--dry-run"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("sbatch ")]
    assert len(lines) == 1 and lines[0].endswith("aggregate.sbatch") and "--dependency" not in lines[0]


def test_dry_run_alone_is_refused(study_env, capsys):  # noqa: F811
    tmp_path, cfg = study_env
    assert main(["transfer-study", "--config", str(cfg), "--dry-run"]) == 2
    assert "--dry-run goes with --submit" in capsys.readouterr().err
    assert not (tmp_path / "study").exists()


def test_study_on_real_slurm(slurm, study_env, capsys):  # noqa: F811
    """A smaller study (one target, two sources, one estimator; one CPU per task) through the real local SLURM."""
    import yaml

    tmp_path, cfg = study_env
    small = yaml.safe_load(cfg.read_text()) | {"targets": [{"name": "a"}], "sources": ["b", "c"],
                                                "estimators": ["mmd2"], "resources": {"cpus": 1, "mem": "1G"}}
    cfg.write_text(yaml.safe_dump(small))
    assert main(["transfer-study", "--config", str(cfg), "--submit"]) == 0
    sub = json.loads((tmp_path / "study" / "slurm" / "submitted.json").read_text())
    ids = sub["job_ids"]
    assert list(ids) == ["prepare", "elements", "aggregate"]
    shown = subprocess.run(["scontrol", "show", "job", ids["aggregate"]], capture_output=True, text=True).stdout
    assert f"afterok:{ids['elements']}" in shown, shown
    results = tmp_path / "study" / "results.json"
    t0 = time.time()
    while time.time() - t0 < 900:
        q = subprocess.run(["squeue", "-h", "-j", ",".join(ids.values())], capture_output=True, text=True)
        if not q.stdout.strip() and results.exists():
            break
        time.sleep(3)
    logs = sorted((tmp_path / "study" / "slurm" / "logs").glob("*.out"))
    assert results.exists(), "the study did not finish: " + " | ".join(p.read_text()[-300:] for p in logs)
    res = json.loads(results.read_text())
    assert not res["missing"] and set(res["targets"]) == {"a"}
    assert all(len(arm["vi"]) == 2 for arm in res["targets"]["a"]["arms"].values())
    assert Path(tmp_path / "study" / "vi_matrix.png").is_file()


def test_local_workers_run_the_whole_study(study_env, capsys):  # noqa: F811
    tmp_path, cfg = study_env
    assert main(["transfer-study", "--config", str(cfg), "--workers", "2", "--quiet"]) == 0
    res = json.loads((tmp_path / "study" / "results.json").read_text())
    assert not res["missing"]
    assert all(len(arm["vi"]) == 2 for t in res["targets"].values() for arm in t["arms"].values())
    out = capsys.readouterr().out
    assert "[prepare 1/" in out and "done: finetune a b n=1 seed 0" in out
