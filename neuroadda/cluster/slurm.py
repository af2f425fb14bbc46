"""``neuroadda submit``: sbatch scripts from the templates in ``slurm/`` and their submission.

Nothing from the config reaches a shell unquoted: paths are ``shlex.quote``d into the scripts, task arguments
travel as JSON (``run-task`` reads them), and ``sbatch`` is called with an argument list, never a shell string.
SLURM directive values are restricted to safe characters by the config schema.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from string import Template

from neuroadda.cluster.grid import backbones_dir, pretrain_tasks, tasks, validate, write_tasks
from neuroadda.config import ExperimentConfig
from neuroadda.data.io import split_spec
from neuroadda.errors import InputError
from neuroadda.report import write_json, write_text
from neuroadda.selection.select import safe_name

_SAFE = re.compile(r"^[A-Za-z0-9._,:=-]+$")


def template_dir() -> Path:
    from neuroadda.paths import templates_dir

    return templates_dir()


def config_file(key: str, value: str | None) -> str | None:
    """The absolute path of config file ``value`` (found here or among the shipped ones, ``configs/adapt.yaml``);
    a one-line InputError naming ``key`` when there is none."""
    from neuroadda.paths import shipped_file

    if value is None:
        return None
    path = shipped_file(value)
    if not path.is_file():
        raise InputError(f"{key} '{value}' not found (relative paths are taken from the current directory)")
    return str(path.resolve())


def absolute(cfg: ExperimentConfig) -> ExperimentConfig:
    """The config, validated (:func:`~neuroadda.cluster.grid.validate`), with every local path made absolute (array
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


def directives(cfg) -> str:
    """``#SBATCH`` lines for partition, account and GPUs from ``cfg.resources`` (names checked)."""
    r, lines = cfg.resources, []
    for flag, value in (("partition", r.partition), ("account", r.account)):
        if value is not None:
            if not _SAFE.match(value):
                raise InputError(f"resources.{flag} '{value}' has characters SLURM names cannot have")
            lines.append(f"#SBATCH --{flag}={value}")
    if r.gpus:
        lines.append(f"#SBATCH --gpus-per-node={r.gpus}")
    return "\n".join(lines)


def render(name: str, **values) -> str:
    """Fill ``slurm/<name>`` (``${key}`` placeholders; ``$$`` is a literal ``$``)."""
    return Template((template_dir() / name).read_text()).substitute(**values)


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




def sbatch_commands(scripts: dict, array_ids: list[str] | None = None, pretrain_id: str | None = None
                    ) -> list[list[str]]:
    """The sbatch argument lists: the pretraining array (if any) first, then the target arrays (each after the
    pretraining succeeded, ``--dependency=afterok``), then the aggregation depending on all arrays."""
    base = ["sbatch", "--parsable", f"--chdir={scripts['dir']}"]
    cmds, after = [], []
    if scripts.get("pretrain"):
        cmds.append([*base, scripts["pretrain"]["script"]])
        after = [f"--dependency=afterok:{pretrain_id or '<pretrain job id>'}"]
    cmds += [[*base, *after, a["script"]] for a in scripts["arrays"]]
    dep = ":".join(array_ids) if array_ids else "<array job ids>"
    cmds.append([*base, f"--dependency=afterok:{dep}", scripts["aggregate"]])
    return cmds


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


def sbatch(cmd: list[str]) -> str:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise InputError("sbatch not found: submit needs a SLURM client (or use --dry-run, or 'neuroadda experiment' "
                         "to run the grid here)") from None
    if res.returncode != 0:
        raise InputError("sbatch failed: "
                         f"{res.stderr.strip().splitlines()[-1] if res.stderr.strip() else res.returncode}")
    return res.stdout.strip().split(";")[0]
