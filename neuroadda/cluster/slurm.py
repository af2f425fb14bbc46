"""SLURM scripts from the templates in ``slurm/`` and their submission with ``sbatch`` (a pure stage: it imports
no workflow; the experiment grid and the transfer study compose it in :mod:`neuroadda.workflows`).

Nothing from a config reaches a shell unquoted: paths are ``shlex.quote``d into the scripts, task arguments
travel as JSON (``run-task`` reads them), and ``sbatch`` is called with an argument list, never a shell string.
SLURM directive values are restricted to safe characters by the config schema.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from string import Template

from neuroadda.errors import InputError

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
