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

from neuroadda.cluster.grid import write_tasks, tasks
from neuroadda.config import ExperimentConfig
from neuroadda.errors import InputError
from neuroadda.report import write_json
from neuroadda.selection.select import safe_name

_SAFE = re.compile(r"^[A-Za-z0-9._,:=-]+$")


def template_dir() -> Path:
    from neuroadda.paths import templates_dir

    return templates_dir()


def absolute(cfg: ExperimentConfig) -> ExperimentConfig:
    """The config with every local path made absolute (array tasks do not depend on the submit directory).
    Dataset names stay names; dataset paths that exist here become absolute."""
    def fix(p):
        return str(Path(p).resolve()) if p is not None and Path(p.split(":")[0]).exists() else p

    for key in ("backbones", "adapt_config"):
        value = getattr(cfg, key)
        if value is not None and not Path(value).exists():
            raise InputError(f"{key} '{value}' not found (relative paths are taken from the current directory)")

    return cfg.model_copy(update={
        "out": str(Path(cfg.out).resolve()), "backbones": fix(cfg.backbones), "adapt_config": fix(cfg.adapt_config),
        "targets": [fix(t) for t in cfg.targets], "sources": [fix(s) for s in cfg.sources]})


def _directives(cfg: ExperimentConfig) -> str:
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
    """Write OUT/slurm/<target>.tasks.json, <target>.sbatch and aggregate.sbatch; returns their paths."""
    cfg = absolute(cfg)
    d = Path(cfg.out) / "slurm"
    (d / "logs").mkdir(parents=True, exist_ok=True)
    q, py = shlex.quote, shlex.quote(sys.executable)
    common = {"workdir": q(str(d)), "python": py, "directives": _directives(cfg)}
    arrays = []
    for target in cfg.targets:
        stem = safe_name(target)
        tasks_file = write_tasks(cfg, target, d / f"{stem}.tasks.json")
        script = d / f"{stem}.sbatch"
        _write(script, render("array.sbatch", job_name=f"{cfg.name}-{stem}", last_index=len(tasks(cfg, target)) - 1,
                              ntasks=max(1, cfg.resources.gpus), cpus=cfg.resources.cpus, mem=cfg.resources.mem,
                              time=cfg.resources.time, tasks_file=q(str(tasks_file)), **common))
        arrays.append({"target": target, "script": str(script), "tasks": str(tasks_file)})
    cfg_copy = write_json(d / "experiment.json", cfg.model_dump(mode="json"))
    agg = d / "aggregate.sbatch"
    _write(agg, render("aggregate.sbatch", job_name=f"{cfg.name}-aggregate", config_file=q(str(cfg_copy)), **common))
    return {"dir": str(d), "arrays": arrays, "aggregate": str(agg), "config": str(config_file)}


def _write(path: Path, text: str) -> None:
    import os

    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def sbatch_commands(scripts: dict, array_ids: list[str] | None = None) -> list[list[str]]:
    """The sbatch argument lists (arrays first, then the aggregation depending on all of them)."""
    cmds = [["sbatch", "--parsable", f"--chdir={scripts['dir']}", a["script"]] for a in scripts["arrays"]]
    dep = ":".join(array_ids) if array_ids else "<array job ids>"
    cmds.append(["sbatch", "--parsable", f"--chdir={scripts['dir']}", f"--dependency=afterok:{dep}",
                 scripts["aggregate"]])
    return cmds


def submit(cfg: ExperimentConfig, config_file: str | Path, *, dry_run: bool = False) -> dict:
    """Write the scripts and (unless ``dry_run``) submit them; returns scripts, commands and job ids."""
    scripts = write_scripts(cfg, config_file)
    if dry_run:
        return {**scripts, "commands": [shlex.join(c) for c in sbatch_commands(scripts)], "job_ids": None}
    ids = []
    for cmd in sbatch_commands(scripts)[:-1]:
        ids.append(_sbatch(cmd))
    cmd = sbatch_commands(scripts, ids)[-1]
    ids.append(_sbatch(cmd))
    result = {**scripts, "commands": [shlex.join(c) for c in sbatch_commands(scripts, ids[:-1])], "job_ids": ids}
    write_json(Path(scripts["dir"]) / "submitted.json", result)
    return result


def _sbatch(cmd: list[str]) -> str:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise InputError("sbatch not found: submit needs a SLURM client (or use --dry-run, or 'neuroadda experiment' "
                         "to run the grid here)") from None
    if res.returncode != 0:
        raise InputError(f"sbatch failed: {res.stderr.strip().splitlines()[-1] if res.stderr.strip() else res.returncode}")
    return res.stdout.strip().split(";")[0]
