"""``neuroadda submit``: the experiment grid as SLURM job arrays (one per target, after a pretraining array when
backbones are missing) and an aggregation job, written from the templates in ``slurm/`` and submitted with
``sbatch`` (:mod:`neuroadda.cluster.slurm`)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from neuroadda.cluster.slurm import config_file, directives, render, sbatch, sbatch_commands
from neuroadda.config import ExperimentConfig
from neuroadda.data.io import split_spec
from neuroadda.report import write_json, write_text
from neuroadda.selection.select import safe_name
from neuroadda.workflows.grid import backbones_dir, pretrain_tasks, tasks, validate, write_tasks


def absolute(cfg: ExperimentConfig) -> ExperimentConfig:
    """The config, validated (:func:`~neuroadda.workflows.grid.validate`), with every local path made absolute (array
    tasks run in OUT/slurm, not in the submit directory). Dataset names stay names; dataset paths that exist here
    become absolute; config files are found here or among the shipped ones (``configs/adapt.yaml``); the
    backbones folder (default OUT/backbones) need not exist yet: missing backbones are pretrained first."""
    def fix(p):
        return str(Path(p).resolve()) if p is not None and split_spec(p)[0].exists() else p

    cfg = cfg.model_copy(update={
        "out": str(Path(cfg.out).resolve()), "backbones": str(backbones_dir(cfg).resolve()),
        "adapt_config": config_file("adapt_config", cfg.adapt_config),
        "pretrain_config": config_file("pretrain_config", cfg.pretrain_config),
        "pretrain_configs": {k: config_file(f"pretrain_configs.{k}", v) for k, v in cfg.pretrain_configs.items()},
        "targets": [fix(t) for t in cfg.targets], "sources": [fix(s) for s in cfg.sources]})
    validate(cfg)
    return cfg


def write_scripts(cfg: ExperimentConfig, config_file: str | Path) -> dict:
    """Write OUT/slurm/<target>.tasks.json, <target>.sbatch, aggregate.sbatch and, when backbones are missing,
    pretrain.tasks.json + pretrain.sbatch (an array over the missing sources); returns their paths."""
    cfg = absolute(cfg)
    d = Path(cfg.out) / "slurm"
    q, py = shlex.quote, shlex.quote(sys.executable)
    common = {"workdir": q(str(d)), "python": py, "directives": directives(cfg), "ntasks": max(1, cfg.resources.gpus),
              "cpus": cfg.resources.cpus, "mem": cfg.resources.mem, "time": cfg.resources.time}
    (d / "logs").mkdir(parents=True, exist_ok=True)  # everything validated: now write

    def array(stem: str, target: str | None, n_tasks: int) -> dict:
        tasks_file = write_tasks(cfg, target, d / f"{stem}.tasks.json")
        script = d / f"{stem}.sbatch"
        write_text(script, render("array.sbatch", job_name=f"{cfg.name}-{stem}", last_index=n_tasks - 1,
                              tasks_file=q(str(tasks_file)), **common))
        return {"script": str(script), "tasks": str(tasks_file)}

    todo = pretrain_tasks(cfg)
    pre = {**array("pretrain", None, len(todo)), "sources": [t.source for t in todo]} if todo else None
    for stale in ([] if todo else [d / "pretrain.sbatch", d / "pretrain.tasks.json"]):  # from an earlier submit
        stale.unlink(missing_ok=True)
    arrays = [{"target": t, **array(safe_name(t), t, len(tasks(cfg, t)))} for t in cfg.targets]
    cfg_copy = write_json(d / "experiment.json", cfg.model_dump(mode="json"))
    agg = d / "aggregate.sbatch"
    write_text(agg, render("aggregate.sbatch", job_name=f"{cfg.name}-aggregate", verb="experiment",
                           config_file=q(str(cfg_copy)),
                       **{k: common[k] for k in ("workdir", "python", "directives")}))
    return {"dir": str(d), "pretrain": pre, "arrays": arrays, "aggregate": str(agg), "config": str(config_file)}


def submit(cfg: ExperimentConfig, config_file: str | Path, *, dry_run: bool = False) -> dict:
    """Write the scripts and (unless ``dry_run``) submit them; returns scripts, commands and job ids
    (``job_ids``: the target arrays then the aggregation; ``pretrain_job_id``: the pretraining array or None)."""
    scripts = write_scripts(cfg, config_file)
    if dry_run:
        return {**scripts, "commands": [shlex.join(c) for c in sbatch_commands(scripts)], "job_ids": None,
                "pretrain_job_id": None}
    pre = sbatch(sbatch_commands(scripts)[0]) if scripts["pretrain"] else None
    ids = [sbatch(cmd) for cmd in sbatch_commands(scripts, pretrain_id=pre)[int(pre is not None):-1]]
    final = sbatch_commands(scripts, ids, pre)
    ids.append(sbatch(final[-1]))
    result = {**scripts, "commands": [shlex.join(c) for c in final], "job_ids": ids, "pretrain_job_id": pre}
    write_json(Path(scripts["dir"]) / "submitted.json", result)
    return result
