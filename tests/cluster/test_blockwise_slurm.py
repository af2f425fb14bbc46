"""Block-wise segmentation with 2 workers started as jobs on a real local SLURM gives the local run's ids (and the
whole-volume segmentation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from neuroadda.data.io import open_array
from neuroadda.segmentation import segment
from neuroadda.workflows.segment_blockwise import segment_blockwise
from tests.conftest import same_partition, smooth_affinities

pytestmark = pytest.mark.integration  # the slow lane: pytest -m 'not integration' skips it


def test_slurm_workers_give_the_local_ids(slurm, tmp_path):
    affs = smooth_affinities((16, 32, 32), seed=2)
    path = tmp_path / "affs.zarr"
    zarr.create_array(store=str(path), shape=affs.shape, dtype=np.float32, chunks=(3, 8, 16, 16))[...] = affs
    kw = dict(block_size=(8, 16, 16), threshold=0.5, context=8, workers=2, progress=False)
    local = segment_blockwise(path, tmp_path / "local.zarr", **kw)
    on_slurm = segment_blockwise(path, tmp_path / "slurm.zarr", cluster="slurm",
                                 sbatch_args=["--cpus-per-task=1", "--mem=1G", "--time=10"], **kw)
    a = np.asarray(open_array(tmp_path / "local.zarr", None)[(slice(None),) * 3])
    b = np.asarray(open_array(tmp_path / "slurm.zarr", None)[(slice(None),) * 3])
    assert on_slurm["graph"]["segments"] == local["graph"]["segments"] > 5
    np.testing.assert_array_equal(a, b)
    assert same_partition(b, segment(affs, 0.5))  # and both are the whole-volume segmentation
    logs = list(Path(on_slurm["work_dir"]).glob("logs/*-*.out"))  # one log per SLURM worker job
    assert len(logs) >= 3, logs  # at least one job per stage ran


def test_slurm_workers_score_candidates_as_one_process(slurm, tmp_path):
    from neuroadda.config import AdaptConfig
    from neuroadda.workflows.select_samples import select_samples_for
    from tests.conftest import labelled_volume, tiny_backbone

    h5, bb = labelled_volume(tmp_path / "vol.h5", 0), tiny_backbone(tmp_path / "bb.pt", 0)
    cfg = AdaptConfig.model_validate({"active": {"candidate_size": [8, 16, 16], "max_candidates": 10}})
    one, _ = select_samples_for(h5, bb, cfg, 2, tmp_path / "one", proposals=False)
    on_slurm, _ = select_samples_for(h5, bb, cfg, 2, tmp_path / "slurm", proposals=False, block_size=(24, 40, 24),
                                     workers=2, cluster="slurm", sbatch_args=["--cpus-per-task=1", "--mem=1G",
                                                                               "--time=10"])
    np.testing.assert_allclose(on_slurm["scores"], one["scores"], rtol=1e-6)
    assert [s["box"] for s in on_slurm["samples"]] == [s["box"] for s in one["samples"]]
    assert list((tmp_path / "slurm.work").glob("logs/*-*.out"))  # the scores came from SLURM worker jobs
