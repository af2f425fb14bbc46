"""``neuroadda transfer-study``: fine-tune every source and scratch on every target, on shared samples."""

from __future__ import annotations

from neuroadda.cli.common import positive_int


def register(sub) -> None:
    p = sub.add_parser("transfer-study", help="measure which source transfers best to each target (every pair, "
                                              "several seeds, paired statistics, estimators judged)",
                       description="For every target, n and seed: one sample set drawn without any source model, "
                                   "shared by every source's fine-tune and by scratch; held-out VI per arm, zero-shot "
                                   "VI per source and every estimator's scores. Resumable (finished elements are "
                                   "skipped). Writes OUT/results.{json,md}, vi_matrix.png, estimators.png.")
    p.add_argument("--config", required=True, help="study YAML, e.g. configs/transfer_study.yaml")
    p.add_argument("--out", default=None, help="output folder (default: the config's 'out')")
    p.add_argument("--aggregate-only", action="store_true", help="only collect the finished elements")
    p.add_argument("--plan", action="store_true", help="print the elements and whether each is done, run nothing")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="run here on N processes (grouped as the SLURM arrays; each with cpu_count // N torch "
                        "threads); default 1: one element after another")
    p.add_argument("--submit", action="store_true",
                   help="submit to SLURM instead: a prepare array (missing backbones, sample sets), an elements array "
                        "(one task per fine-tune, zero-shot and estimator group) and the aggregation, each "
                        "--dependency=afterok on the one before; scripts in OUT/slurm")
    p.add_argument("--dry-run", action="store_true", help="with --submit: write and print the scripts and sbatch "
                                                          "commands only")
    p.set_defaults(func=run)


def run(args) -> int:
    from neuroadda.config import TransferStudyConfig, load_config
    from neuroadda.errors import InputError
    from neuroadda.workflows import study
    from neuroadda.workflows.study_results import collect, decide_defaults, write_results

    cfg = load_config(args.config, TransferStudyConfig, overrides={"out": args.out})
    if args.dry_run and not args.submit:
        raise InputError("--dry-run goes with --submit")
    if args.submit:
        from neuroadda.workflows.study_submit import submit

        res = submit(cfg, dry_run=args.dry_run)
        for stage in ("prepare", "elements"):
            if res[stage]:
                print(f"{stage}: {res[stage]['n_tasks']} array task(s), {res[stage]['script']}")
        print("\n".join(res["commands"]))
        if res["job_ids"]:
            print("submitted: " + ", ".join(f"{k} {v}" for k, v in res["job_ids"].items()))
        return 0
    study.check(cfg)
    if args.plan:
        els = study.plan(cfg)
        done = [study.output(cfg, e).is_file() for e in els]
        for e, d in zip(els, done):
            print(f"{'done' if d else 'todo'}  {e.label()}")
        print(f"{sum(done)} of {len(els)} elements done")
        return 0
    if not args.aggregate_only and args.workers > 1:
        from neuroadda.workflows.study_submit import run_local

        run_local(cfg, args.workers)
    elif not args.aggregate_only:
        study.run(cfg, progress=not args.quiet)
    res = decide_defaults(collect(cfg))
    paths = write_results(res, cfg.out)
    print(open(paths["md"]).read(), end="")
    print(f"wrote {', '.join(str(p) for p in paths.values())}"
          + (f" ({len(res['missing'])} element(s) not finished)" if res["missing"] else ""))
    if cfg.active_learning is not None:
        from pathlib import Path

        from neuroadda.workflows.study_al_results import collect_active_learning, write_active_learning

        al = collect_active_learning(cfg)
        al_paths = write_active_learning(al, Path(cfg.out) / "active_learning")
        print(f"active learning: default strategy {al['default_strategy']} ({al['decision']['why']}); wrote "
              f"{', '.join(str(p) for p in al_paths.values())}"
              + (f" ({len(al['missing'])} element(s) not finished)" if al["missing"] else ""))
    return 0
