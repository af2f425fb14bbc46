"""``neuroadda experiment``, ``neuroadda submit`` and ``neuroadda run-task`` (one SLURM array element)."""

from __future__ import annotations

import json
from pathlib import Path

from neuroadda.cli.common import nonneg_int


def _load(args):
    from neuroadda.config import ExperimentConfig, load_config

    overrides = {f"resources.{k}": getattr(args, k, None)
                 for k in ("partition", "account", "gpus", "cpus", "mem", "time")}
    return load_config(args.config, ExperimentConfig, overrides=overrides)


def register(sub) -> None:
    e = sub.add_parser("experiment", help="run the experiment grid here and aggregate it",
                       description="Run every (target, n, strategy, seed) adapt task of configs/experiment.yaml "
                                   "one after another (finished tasks are skipped), then write OUT/results.json, "
                                   "results.md and vi_vs_n.png.")
    e.add_argument("--config", required=True, help="experiment YAML, e.g. configs/experiment.yaml")
    e.add_argument("--aggregate-only", action="store_true", help="only aggregate the tasks that have finished")
    e.set_defaults(func=run_experiment)

    s = sub.add_parser("submit", help="submit the experiment grid to SLURM: one job array per target + aggregation",
                       description="Write OUT/slurm/<target>.sbatch (array over n, strategy, seed), "
                                   "OUT/slurm/aggregate.sbatch (--dependency=afterok on the arrays) and submit them. "
                                   "Backbones missing from the config's backbones folder become a pretraining "
                                   "array (OUT/slurm/pretrain.sbatch) that the target arrays wait for.")
    s.add_argument("--config", required=True, help="experiment YAML")
    s.add_argument("--dry-run", action="store_true", help="write and print the scripts and sbatch commands only")
    for flag, kind in (("partition", str), ("account", str), ("gpus", int), ("cpus", int), ("mem", str), ("time", str)):
        s.add_argument(f"--{flag}", type=kind, default=None, help=f"override resources.{flag}")
    s.set_defaults(func=run_submit)

    t = sub.add_parser("run-task", help="run one task of a tasks file (what a SLURM array element calls)")
    t.add_argument("--tasks", required=True, help="OUT/slurm/<target>.tasks.json")
    t.add_argument("--index", type=nonneg_int, required=True, help="task index ($SLURM_ARRAY_TASK_ID)")
    t.set_defaults(func=run_task)


def run_task(args) -> int:
    """One array element: a transfer-study task (a list of study elements) or an experiment task (argv)."""
    from neuroadda.errors import InputError
    from neuroadda.workflows.study_submit import is_study_tasks

    try:
        data = json.loads(Path(args.tasks).read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"--tasks {args.tasks}: cannot read it as a tasks file ({e})") from None
    if is_study_tasks(data):
        from neuroadda.workflows.study_submit import run_task as run_study_task

        return run_study_task(data, args.index)
    from neuroadda.config import ExperimentConfig
    from neuroadda.workflows.grid import PretrainTask, Task

    if not 0 <= args.index < len(data["tasks"]):
        raise InputError(f"--tasks {args.tasks}: no task {args.index} (it has {len(data['tasks'])})")
    raw = data["tasks"][args.index]
    kind = Task if "target" in raw else PretrainTask
    task = kind(**{k: raw[k] for k in kind.__dataclass_fields__})
    print(f"task {args.index}: {task.label} -> {task.out}", flush=True)
    _run_and_print(task, ExperimentConfig.model_validate(data["config"]))
    return 0


def _run_and_print(task, cfg) -> None:
    """Run one grid task in this process and print its adapt report (or the pretrained checkpoint's path)."""
    result = task.run(cfg)
    if isinstance(result, dict):  # an adapt report
        from neuroadda.active.report import markdown

        print(markdown(result))
    else:
        print(f"wrote {result}")


def run_experiment(args) -> int:
    from neuroadda.workflows.grid import aggregate, pretrain_tasks, tasks, validate

    cfg = _load(args)
    if not args.aggregate_only:
        validate(cfg)
        for stage, todo in (("pretrain", pretrain_tasks(cfg)), ("task", tasks(cfg))):
            for i, t in enumerate(todo, 1):
                print(f"== {stage} {i}/{len(todo)}: {t.label}", flush=True)
                _run_and_print(t, cfg)
    res = aggregate(cfg)
    print(open(f"{cfg.out}/results.md").read(), end="")
    print(f"wrote {cfg.out}/results.json, results.md and vi_vs_n.png"
          + (f" ({len(res['missing'])} task(s) not finished)" if res["missing"] else ""))
    return 0


def run_submit(args) -> int:
    from neuroadda.workflows.experiment_submit import submit

    res = submit(_load(args), args.config, dry_run=args.dry_run)
    if res["pretrain"]:
        print(f"pretraining ({len(res['pretrain']['sources'])} missing backbone(s): "
              f"{', '.join(res['pretrain']['sources'])}): {res['pretrain']['script']}")
    for a in res["arrays"]:
        print(f"{a['target']}: {a['script']}")
    print(f"aggregation: {res['aggregate']}")
    for c in res["commands"]:
        print(("would run: " if args.dry_run else "ran: ") + c)
    if res["job_ids"]:
        pre = f"pretraining array {res['pretrain_job_id']}, " if res["pretrain_job_id"] else ""
        print(f"submitted {pre}job arrays {', '.join(res['job_ids'][:-1])} and aggregation job {res['job_ids'][-1]}")
    return 0
