"""The transfer study as SLURM job arrays: ``neuroadda transfer-study --submit [--dry-run]``.

Three stages, each waiting for the one before (``--dependency=afterok``):

1. ``prepare``: one array task per missing backbone (pretraining), and one per target drawing every shared
   sample set and the scratch initialisation (cheap, but every later task reads them, so they exist first);
2. ``elements``: one array task per (target, arm, n, seed) fine-tune, per (target, source) zero-shot VI, per
   target for the label-free estimators and per (target, n, seed) for the label-using ones;
3. ``aggregate``: ``transfer-study --aggregate-only`` writes results.{json,md} and the figures.

A task runs its elements in order with :func:`~neuroadda.workflows.study.run_element`, which skips finished
ones, so a requeued or resubmitted task continues where it stopped. Task lists travel as JSON
(``run-task --tasks FILE --index I``); paths are made absolute here, as array tasks run in OUT/slurm.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import asdict
from pathlib import Path

from neuroadda.config import TransferStudyConfig
from neuroadda.errors import InputError
from neuroadda.report import write_json, write_text
from neuroadda.workflows import study
from neuroadda.workflows.study import Element

KIND = "transfer-study"


def absolute(cfg: TransferStudyConfig) -> TransferStudyConfig:
    """``cfg`` with out, backbones and every config file absolute (config files: here or the shipped ones)."""
    from neuroadda.cluster.slurm import config_file

    return cfg.model_copy(update={
        "out": str(Path(cfg.out).resolve()), "backbones": str(Path(cfg.backbones).resolve()),
        "adapt_config": config_file("adapt_config", cfg.adapt_config),
        "pretrain_config": config_file("pretrain_config", cfg.pretrain_config),
        "pretrain_configs": {k: config_file(f"pretrain_configs.{k}", v) for k, v in cfg.pretrain_configs.items()}})


def stages(cfg: TransferStudyConfig) -> dict[str, list[list[Element]]]:
    """The unfinished work as array tasks, each a list of elements: ``{"prepare": [...], "elements": [...]}``."""
    todo = [el for el in study.plan(cfg) if not study.output(cfg, el).is_file()]
    prepare = [[el] for el in todo if el.kind == "pretrain"]
    for t in cfg.targets:
        samples = [el for el in todo if el.kind == "samples" and el.target == t.name]
        if samples or not study.scratch_path(cfg, t.name).is_file():
            prepare.append([Element("scratch-init", t.name), *samples])
    groups: dict[tuple, list[Element]] = {}
    for el in todo:
        if el.kind in ("pretrain", "samples"):
            continue
        if el.kind == "estimator":  # gated ones read their base's and compat's files: same task, after them
            key = ("estimator", el.target, el.n, el.seed)
        else:
            key = (el.kind, el.target, el.source, el.n, el.seed, el.factor)
        groups.setdefault(key, []).append(el)
    return {"prepare": prepare, "elements": list(groups.values())}


def write_tasks(cfg: TransferStudyConfig, tasks: list[list[Element]], path: Path) -> Path:
    return write_json(path, {"kind": KIND, "config": cfg.model_dump(mode="json"),
                             "tasks": [{"label": "; ".join(el.label() for el in task),
                                        "elements": [asdict(el) for el in task]} for task in tasks]})


def write_scripts(cfg: TransferStudyConfig) -> dict:
    """Write OUT/slurm/{prepare,elements}.{tasks.json,sbatch}, study.json and aggregate.sbatch; returns paths
    (a stage with nothing left to do gets no script)."""
    from neuroadda.cluster.slurm import directives, render

    cfg = absolute(cfg)
    study.check(cfg)
    work = stages(cfg)
    d = Path(cfg.out) / "slurm"
    q = shlex.quote
    common = {"workdir": q(str(d)), "python": q(sys.executable), "directives": directives(cfg),
              "ntasks": max(1, cfg.resources.gpus), "cpus": cfg.resources.cpus, "mem": cfg.resources.mem,
              "time": cfg.resources.time}
    (d / "logs").mkdir(parents=True, exist_ok=True)  # validated: now write
    out = {"dir": str(d)}
    for stage, tasks in work.items():
        script = d / f"{stage}.sbatch"
        if not tasks:
            script.unlink(missing_ok=True)
            out[stage] = None
            continue
        tasks_file = write_tasks(cfg, tasks, d / f"{stage}.tasks.json")
        write_text(script, render("array.sbatch", job_name=f"{cfg.name}-{stage}", last_index=len(tasks) - 1,
                                  tasks_file=q(str(tasks_file)), **common))
        out[stage] = {"script": str(script), "tasks": str(tasks_file), "n_tasks": len(tasks)}
    cfg_file = write_json(d / "study.json", cfg.model_dump(mode="json"))
    agg = d / "aggregate.sbatch"
    write_text(agg, render("aggregate.sbatch", job_name=f"{cfg.name}-aggregate", verb=KIND,
                           config_file=q(str(cfg_file)),
                           **{k: common[k] for k in ("workdir", "python", "directives")}))
    return {**out, "aggregate": str(agg), "config": str(cfg_file)}


def sbatch_commands(scripts: dict, ids: dict | None = None) -> list[list[str]]:
    """sbatch argument lists, each stage ``afterok`` on the one before (placeholders where ids are unknown)."""
    ids = ids or {}
    base = ["sbatch", "--parsable", f"--chdir={scripts['dir']}"]
    cmds, before = [], None
    for stage in ("prepare", "elements", "aggregate"):
        script = scripts[stage] if stage == "aggregate" else (scripts[stage] or {}).get("script")
        if script is None:
            continue
        dep = [f"--dependency=afterok:{ids.get(before, f'<{before} job id>')}"] if before else []
        cmds.append([*base, *dep, script])
        before = stage
    return cmds


def submit(cfg: TransferStudyConfig, *, dry_run: bool = False) -> dict:
    """Write the scripts and (unless ``dry_run``) submit them in order; returns scripts, commands, job ids."""
    from neuroadda.cluster.slurm import sbatch

    scripts = write_scripts(cfg)
    stages_present = [s for s in ("prepare", "elements", "aggregate") if scripts[s]]
    if dry_run:
        return {**scripts, "commands": [shlex.join(c) for c in sbatch_commands(scripts)], "job_ids": None}
    ids: dict = {}
    for stage in stages_present:
        ids[stage] = sbatch(sbatch_commands(scripts, ids)[len(ids)])
    result = {**scripts, "commands": [shlex.join(c) for c in sbatch_commands(scripts, ids)], "job_ids": ids}
    write_json(Path(scripts["dir"]) / "submitted.json", result)
    return result


def _run_elements(cfg: TransferStudyConfig, elements: list[Element]) -> str:
    for el in elements:
        if el.kind == "scratch-init":
            study.scratch_init(cfg, el.target)
        else:
            study.run_element(cfg, el)
    return "; ".join(el.label() for el in elements)


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _pool_task(args: tuple[str, list[dict]]) -> str:
    cfg_json, elements = args
    return _run_elements(TransferStudyConfig.model_validate_json(cfg_json), [Element(**e) for e in elements])


def run_local(cfg: TransferStudyConfig, workers: int, *, echo=print) -> int:
    """Run the unfinished work here on ``workers`` processes, grouped as the SLURM arrays are: the prepare tasks
    one after another in this process, then the element tasks in a pool (each worker with cpu_count // workers
    torch threads). Returns the number of tasks run."""
    import multiprocessing as mp
    import os

    work = stages(cfg)
    for i, task in enumerate(work["prepare"], 1):
        echo(f"[prepare {i}/{len(work['prepare'])}] {'; '.join(el.label() for el in task)} ...", flush=True)
        _run_elements(cfg, task)
    tasks = work["elements"]
    threads = max(1, (os.cpu_count() or 1) // workers)
    jobs = [(cfg.model_dump_json(), [asdict(el) for el in task]) for task in tasks]
    with mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(threads,)) as pool:
        for i, label in enumerate(pool.imap_unordered(_pool_task, jobs), 1):
            echo(f"[{i}/{len(tasks)}] done: {label}", flush=True)
    return len(work["prepare"]) + len(tasks)


def run_task(data: dict, index: int, *, echo=print) -> int:
    """Run task ``index`` of a study tasks file's ``data`` (the body of one array element)."""
    if not 0 <= index < len(data["tasks"]):
        raise InputError(f"no task {index} (the tasks file has {len(data['tasks'])})")
    cfg = TransferStudyConfig.model_validate(data["config"])
    elements = [Element(**e) for e in data["tasks"][index]["elements"]]
    echo(f"task {index}: {'; '.join(el.label() for el in elements)}", flush=True)
    _run_elements(cfg, elements)
    return 0


def is_study_tasks(data: dict) -> bool:
    """Whether a parsed tasks file holds transfer-study tasks (else: experiment-grid tasks)."""
    return data.get("kind") == KIND
