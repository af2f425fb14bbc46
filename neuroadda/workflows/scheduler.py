"""Run one function over the blocks of a volume with daisy (funkelab's block-wise scheduler, v2).

Workers are local processes by default; with ``cluster="slurm"`` each worker slot is a SLURM job
(``sbatch --wait``) that runs :mod:`neuroadda.workflows.daisy_worker` and connects back to the daisy server over
TCP. daisy records finished blocks under ``WORK/done/<stage>``, so a killed run started again skips them; a
stage whose outputs were removed must drop that record (:func:`reset_stage`). Each block also leaves
``WORK/stats/<stage>/<index>.json`` (seconds, peak RSS of its worker process so far, and whatever dict the
block function returned) for the summaries and benchmarks.

A block is handed to the function as :class:`BlockInfo`: its index in the block grid (row-major, z slowest)
and its core slices, clipped to the volume. Blocks write disjoint regions, so they run in any order.
"""

from __future__ import annotations

import itertools
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from neuroadda.data import regions
from neuroadda.errors import InputError, NeuroAddaError
from neuroadda.report import write_json

CLUSTERS = ("local", "slurm")


class BlockwiseError(NeuroAddaError):
    """A stage finished with blocks that kept failing."""


@dataclass(frozen=True)
class BlockInfo:
    """One block: ``index`` in the row-major block grid, ``grid_pos`` (i, j, k) and its core ``box`` slices."""

    index: int
    grid_pos: tuple[int, int, int]
    box: tuple[slice, slice, slice]

    @property
    def box_shape(self) -> tuple[int, int, int]:
        return regions.box_shape(self.box)


@dataclass(frozen=True)
class Cluster:
    """Where the workers run: ``workers`` processes here, or as SLURM jobs with extra ``sbatch_args``."""

    kind: str = "local"
    workers: int = 1
    sbatch_args: tuple[str, ...] = field(default_factory=tuple)

    def check(self) -> None:
        if self.kind not in CLUSTERS:
            raise InputError(f"cluster must be one of {', '.join(CLUSTERS)}, got '{self.kind}'")
        if int(self.workers) < 1:
            raise InputError(f"workers must be >= 1, got {self.workers}")
        if self.kind == "slurm" and shutil.which("sbatch") is None:
            raise InputError("--cluster slurm: sbatch not found (needs a SLURM client on this machine)")


def grid_shape(shape: Sequence[int], block: Sequence[int]) -> tuple[int, int, int]:
    return tuple(-(-int(s) // int(b)) for s, b in zip(shape, block))  # type: ignore[return-value]


def block_info(pos: Sequence[int], shape: Sequence[int], block: Sequence[int]) -> BlockInfo:
    """The :class:`BlockInfo` of grid position ``pos``."""
    g = grid_shape(shape, block)
    pos = tuple(int(p) for p in pos)
    index = (pos[0] * g[1] + pos[1]) * g[2] + pos[2]
    box = tuple(slice(p * b, min((p + 1) * b, s)) for p, b, s in zip(pos, block, shape))
    return BlockInfo(index, pos, box)  # type: ignore[arg-type]


def all_blocks(shape: Sequence[int], block: Sequence[int]) -> list[BlockInfo]:
    return [block_info(p, shape, block) for p in itertools.product(*(range(n) for n in grid_shape(shape, block)))]


def reset_stage(work_dir: Path, name: str) -> None:
    """Forget which blocks of ``name`` are done (their outputs are gone or stale)."""
    for sub in ("done", "stats"):
        shutil.rmtree(Path(work_dir) / sub / name, ignore_errors=True)


class _PerBlock:
    """daisy's block function: daisy Block -> BlockInfo -> ``fn``, then the block's stats file."""

    def __init__(self, fn, shape, block, stats_dir):
        self.fn, self.shape, self.block, self.stats_dir = fn, tuple(shape), tuple(block), str(stats_dir)

    def __call__(self, block) -> None:
        pos = [int(o) // b for o, b in zip(block.write_roi.offset, self.block)]
        info = block_info(pos, self.shape, self.block)
        t0 = time.perf_counter()
        extra = self.fn(info)
        stats = {"index": info.index, "seconds": time.perf_counter() - t0, "pid": os.getpid(),
                 "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, **(extra or {})}
        write_json(os.path.join(self.stats_dir, f"{info.index}.json"), stats)


class _SlurmWorker:
    """daisy worker function: one SLURM job per worker slot, running the block loop of ``daisy_worker``."""

    def __init__(self, payload: Path, name: str, log_dir: Path, sbatch_args: Sequence[str]):
        self.payload, self.name, self.log_dir, self.sbatch_args = str(payload), name, str(log_dir), list(sbatch_args)

    def __call__(self, *, context) -> None:
        script = (f"#!/bin/bash\nexport OMP_NUM_THREADS=${{SLURM_CPUS_PER_TASK:-1}}\n"
                  f"exec {shlex.quote(sys.executable)} -m neuroadda.workflows.daisy_worker "
                  f"{shlex.quote(self.payload)}\n")
        cmd = ["sbatch", "--wait", "--parsable", f"--job-name=neuroadda-{self.name}", "--ntasks=1",
               f"--output={self.log_dir}/{self.name}-%j.out", *self.sbatch_args]
        env = dict(os.environ, DAISY_CONTEXT=context.to_env())
        res = subprocess.run(cmd, input=script, text=True, capture_output=True, env=env)
        if res.returncode != 0:
            raise RuntimeError(f"SLURM worker job for {self.name} failed ({res.returncode}): "
                               f"{res.stderr.strip()[-500:]} (logs: {self.log_dir})")


def run_stage(name: str, shape: Sequence[int], block: Sequence[int], fn: Callable[[BlockInfo], None], *,
              work_dir: Path, cluster: Cluster, progress: bool = True, max_retries: int = 2) -> None:
    """Run ``fn(BlockInfo)`` on every block of ``shape`` not yet done; raise :class:`BlockwiseError` naming the
    logs if blocks still fail after ``max_retries`` retries. ``fn`` must be picklable (cloudpickle)."""
    import daisy
    from daisy.logging import set_log_basedir
    from funlib.geometry import Roi

    work_dir = Path(work_dir).resolve()
    logs, stats = work_dir / "logs", work_dir / "stats" / name
    for d in (logs, stats, work_dir / "done"):
        d.mkdir(parents=True, exist_ok=True)
    set_log_basedir(logs)
    per_block = _PerBlock(fn, shape, block, stats)
    if cluster.kind == "slurm":
        import cloudpickle

        payload = work_dir / "slurm" / f"{name}.pkl"
        payload.parent.mkdir(exist_ok=True)
        payload.write_bytes(cloudpickle.dumps(per_block))
        process = _SlurmWorker(payload, name, logs, cluster.sbatch_args)
    else:
        process = per_block
    roi = Roi((0, 0, 0), tuple(int(b) for b in block))
    task = daisy.Task(name, total_roi=Roi((0, 0, 0), tuple(int(s) for s in shape)), read_roi=roi, write_roi=roi,
                      process_function=process, read_write_conflict=False, fit="overhang",
                      max_workers=int(cluster.workers), max_retries=max_retries, timeout=None,
                      tracking_path=str(work_dir / "done" / name))
    try:
        states = daisy.run_blockwise(task, progress=progress, summary=progress, return_states=True)
    except RuntimeError as e:  # daisy abandons a task whose workers keep dying
        raise BlockwiseError(f"stage '{name}' abandoned: {str(e).splitlines()[0]} (worker logs in {logs})") from None
    st = states[name]
    if st.completed_count != st.total_block_count:
        raise BlockwiseError(f"stage '{name}': {st.failed_count + st.orphaned_count} of {st.total_block_count} "
                             f"blocks failed (worker logs in {logs}); run the same command again to retry them, "
                             "finished blocks are skipped")


def stage_stats(work_dir: Path, name: str) -> list[dict]:
    """The per-block stats files of a stage (see the module docstring)."""
    d = Path(work_dir) / "stats" / name
    return [json.loads(p.read_text()) for p in sorted(d.glob("*.json"))] if d.exists() else []
