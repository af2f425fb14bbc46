"""A training job on a real local SLURM, requeued with ``scontrol requeue`` while it runs, resumes from its last
checkpoint instead of step 0."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time

import pytest

from neuroadda.cli.main import main
from neuroadda.models.checkpoint import load_backbone
from tests.conftest import ADAPT_CONFIG as CONFIG
from tests.conftest import labelled_volume as _volume
from tests.conftest import tiny_backbone as _backbone

pytestmark = pytest.mark.integration  # the slow lane: pytest -m 'not integration' skips it


def _wait(cond, timeout, what):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if cond():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_requeued_finetune_resumes_from_checkpoint(slurm, tmp_path):
    target = _volume(tmp_path / "target.h5", 0)
    bb = _backbone(tmp_path / "bb.pt", 0)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG.replace("max_steps: 3", "max_steps: 400\n  checkpoint_every: 10"))
    assert main(["select-samples", "--target", target, "--backbone", bb, "--n", "2", "--out", str(tmp_path / "sel"),
                 "--config", str(cfg), "--quiet"]) == 0
    out, log = tmp_path / "ft", tmp_path / "job.out"
    cmd = [sys.executable, "-m", "neuroadda.cli.main", "finetune", "--target", target, "--samples",
           str(tmp_path / "sel" / "samples.json"), "--backbone", bb, "--out", str(out), "--config", str(cfg), "--quiet"]
    script = tmp_path / "job.sbatch"
    script.write_text("#!/bin/bash\n#SBATCH --ntasks=1\n#SBATCH --cpus-per-task=1\n#SBATCH --mem=1G\n"
                      "#SBATCH --requeue\n#SBATCH --open-mode=append\nexport OMP_NUM_THREADS=1\n"
                      f"echo \"start $SLURM_JOB_ID restart ${{SLURM_RESTART_COUNT:-0}}\"\n"
                      f"srun {shlex.join(cmd)}\n")
    jid = subprocess.run(["sbatch", "--parsable", f"--output={log}", str(script)], capture_output=True, text=True,
                         check=True).stdout.strip()
    ckpt = out / "checkpoints" / "last.ckpt"
    _wait(ckpt.exists, 300, "the first checkpoint")
    time.sleep(1.0)
    assert not (out / "model.pt").exists(), "training finished before it could be requeued"
    subprocess.run(["scontrol", "requeue", jid], check=True)

    def finished():
        q = subprocess.run(["squeue", "-h", "-j", jid], capture_output=True, text=True).stdout.strip()
        return not q and (out / "model.pt").exists()

    _wait(finished, 600, "the requeued job to finish")
    text = log.read_text()
    assert "restart 1" in text and "resuming from" in text, text[-1000:]
    meta = load_backbone(out / "model.pt")[1]
    assert meta["steps"] == 400 and meta["resumed_from_step"] >= 10 and meta["resumed_from_step"] % 10 == 0
