"""DDP from the config: pretraining with 2 CPU processes (gloo) synchronises gradients, seeds patches per rank,
and only rank 0 writes the checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from neuroadda.models.checkpoint import load_backbone

pytestmark = pytest.mark.integration  # the slow lane: pytest -m 'not integration' skips it


def test_pretrain_ddp_two_cpu_processes(tiny_h5, tmp_path):
    cfg = tmp_path / "ddp.yaml"
    cfg.write_text("model:\n  channels: [4, 8, 16]\n  norm: batch\ndata:\n  patch_size: [8, 16, 16]\n"
                   "  val_fraction: 0.25\n"
                   "train:\n  max_steps: 4\n  batch_size: 1\n  val_patches: 0\n  accelerator: cpu\n  devices: 2\n"
                   "  strategy: ddp\n  thresholds: [0.5]\n  logger: none\n  checkpoint_every: 0\n")
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_PORT": str(29500 + os.getpid() % 1000)}
    res = subprocess.run([sys.executable, "-m", "neuroadda.cli.main", "pretrain", "--source", str(tiny_h5),
                          "--config", str(cfg), "--out", str(out), "--quiet"], capture_output=True, text=True,
                         env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    net, meta = load_backbone(out / "model.pt")
    assert meta["world_size"] == 2 and meta["steps"] == 4
    assert res.stdout.count("wrote ") == 1  # one checkpoint message: rank 1 returned without writing
    # sync batch norm is GPU-only in torch: on CPU each process keeps its own batch statistics
    assert not any("SyncBatchNorm" in type(m).__name__ for m in net.modules())
    assert torch.isfinite(torch.cat([p.flatten() for p in net.parameters()])).all()
