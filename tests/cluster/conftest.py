"""The ``slurm`` fixture: a real local SLURM, started with slurm/local_cluster.sh when possible; the tests that
use it skip with a how-to message when there is none, and fail instead when NEUROADDA_REQUIRE_SLURM=1 (CI)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _slurm_up() -> str | None:
    """None when a local SLURM answers; else why not."""
    if shutil.which("sbatch") is None:
        return "sbatch not found"
    res = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    if res.returncode != 0 or not any(s.startswith(("idle", "mixed", "alloc")) for s in res.stdout.split()):
        return f"no idle SLURM node ({res.stdout.strip() or res.stderr.strip()})"
    return None


@pytest.fixture
def slurm():
    why = _slurm_up()
    if why and os.geteuid() == 0 and shutil.which("slurmctld"):
        subprocess.run(["bash", str(REPO / "slurm" / "local_cluster.sh")], timeout=120)
        why = _slurm_up()
    if why:
        msg = (f"real-SLURM test: {why}. Enable it with `sudo bash slurm/local_cluster.sh --install` "
               "(Debian slurm-wlm + munge, single node on localhost)")
        if os.environ.get("NEUROADDA_REQUIRE_SLURM") == "1":
            pytest.fail(msg)
        pytest.skip(msg)


