"""``neuroadda select-samples``, ``neuroadda finetune`` and ``neuroadda adapt``."""

from __future__ import annotations

from pathlib import Path

from neuroadda.cli.common import (
    MODEL_KINDS,
    VOLUME_FORMATS,
    add_backbone_args,
    add_label_zero,
    backbones_from_args,
    positive_int,
    table,
)
from neuroadda.cli.infer_cmd import add_blockwise as _add_blockwise
from neuroadda.vocab import LOGGERS


def _add_config(p, steps: bool = True, strategy: bool = True) -> None:
    p.add_argument("--config", default=None, help="adapt config YAML (default configs/adapt.yaml)")
    p.add_argument("--seed", type=int, default=None, help="seed (default: the config's)")
    if strategy:
        p.add_argument("--strategy", default=None, help="random (the default: the active-learning study's rule) | "
                                                        "median-uncertainty | max-uncertainty | k-center | "
                                                        "median-diverse")
    if steps:
        p.add_argument("--max-steps", type=int, default=None, help="fine-tuning steps for both arms")
        p.add_argument("--logger", choices=LOGGERS, default=None,
                       help="override finetune.logger (wandb runs offline without an API key)")
    p.add_argument("--quiet", action="store_true")


def _config(args):
    from neuroadda.config import AdaptConfig, default_config_dir, load_config

    return load_config(args.config or default_config_dir() / "adapt.yaml", AdaptConfig,
                       overrides={"seed": args.seed, "active.strategy": getattr(args, "strategy", None),
                                  "finetune.max_steps": getattr(args, "max_steps", None),
                                  "finetune.logger": getattr(args, "logger", None)})


def register(sub) -> None:
    s = sub.add_parser("select-samples", help="pick n target sub-volumes to annotate (source-free active learning)",
                       description="Tile the whole target into candidates (no held-out slab on your own volume; "
                                   "adapt, experiment and the study keep one to score on), score each by the "
                                   "backbone's predictive uncertainty and pick n (--strategy; default: at random). "
                                   "A pool larger than --max-candidates is scored through a spatially stratified "
                                   "subsample. Writes OUT/samples.json, OUT/samples.png and "
                                   "OUT/annotate/sample_XX.{h5,tif} with the backbone's segmentation of each as a "
                                   "proposal to correct (sample_XX_proposal.tif, dataset 'proposal').")
    s.add_argument("--target", required=True, help=f"target {VOLUME_FORMATS}; unlabelled is fine")
    s.add_argument("--backbone", required=True, help=f"source model: {MODEL_KINDS}")
    s.add_argument("--n", type=positive_int, default=4, help="samples to pick (default: %(default)s)")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--max-candidates", type=int, default=None, metavar="N",
                   help="score at most N candidates, a spatially stratified subsample of a larger pool (default: "
                        "active.max_candidates, 1000; 0 = every candidate)")
    s.add_argument("--holdout", action="store_true",
                   help="keep the config's held-out slab (active.holdout_fraction) out of the pool, as adapt does; "
                        "off by default: samples may come from anywhere in your volume")
    s.add_argument("--no-proposals", action="store_true", help="export the raw samples only (no segmentation "
                                                                 "proposals)")
    _add_blockwise(s, "score candidates")
    _add_config(s, steps=False)
    s.set_defaults(func=run_select_samples)

    f = sub.add_parser("finetune", help="train on the annotated samples, from a backbone or from scratch",
                       description="Fine-tune on the samples of samples.json with labels from --labels DIR (files "
                                   "annotators returned; the exported 'proposal' is never read) or, without it, the "
                                   "target's own ground truth (oracle). No held-out slab: every sample trains. "
                                   "The waterz threshold is chosen on the labelled samples. Writes OUT/model.pt.")
    f.add_argument("--target", required=True, help="target dataset name or PATH[:KEY] the samples came from")
    f.add_argument("--samples", required=True, help="samples.json written by select-samples")
    f.add_argument("--backbone", required=True, help="model to start from (a checkpoint, a bioimage.io package or "
                                                     "TorchScript + sidecar), or 'scratch' (the architecture of the "
                                                     "backbone recorded in samples.json, fresh weights)")
    f.add_argument("--labels", default=None, metavar="DIR",
                   help="annotations: DIR/sample_XX.h5 (dataset 'labels') or DIR/sample_XX_labels.tif")
    f.add_argument("--out", required=True, help="output folder for model.pt")
    add_label_zero(f)
    _add_config(f, strategy=False)
    f.set_defaults(func=run_finetune)

    a = sub.add_parser("adapt", help="the method end to end: select-source, select-samples, fine-tune vs scratch, VI",
                       description="For each seed: rank sources (default estimator), pick n samples with the best "
                                   "source's backbone, fine-tune from it and from scratch on the same samples "
                                   "(labels from the target's ground truth), segment and score the held-out region. "
                                   "Writes OUT/report.{json,md,png}. Killed runs resume with the same command.")
    a.add_argument("--target", required=True, help="target dataset name or PATH[:KEY] with labels")
    a.add_argument("--sources", nargs="*", default=[], help="candidate source dataset names or PATH[:KEY] (their "
                                                            "models: --backbone/--backbones; others: --model)")
    add_backbone_args(a)
    a.add_argument("--n", type=positive_int, default=4, help="samples per round (default: %(default)s)")
    a.add_argument("--seeds", type=positive_int, default=3, help="number of seeds (default: %(default)s)")
    a.add_argument("--rounds", type=positive_int, default=1,
                   help="active-learning rounds, n new samples each (default: 1)")
    a.add_argument("--all-sources", action="store_true",
                   help="also fine-tune from every other source on the same samples: does the MMD² ranking predict "
                        "the VI after fine-tuning? (Spearman in the report)")
    a.add_argument("--out", default="runs/adapt", help="output folder (default: %(default)s)")
    add_label_zero(a)
    _add_config(a)
    a.set_defaults(func=run_adapt)


def run_select_samples(args) -> int:
    from neuroadda.cli.infer_cmd import check_blockwise
    from neuroadda.workflows.select_samples import select_samples_for

    check_blockwise(args)
    cfg = _config(args)
    if args.max_candidates is not None:
        from neuroadda.errors import InputError

        if args.max_candidates < 0:
            raise InputError(f"--max-candidates must be >= 0 (0 = every candidate), got {args.max_candidates}")
        cfg = cfg.model_copy(update={"active": cfg.active.model_copy(
            update={"max_candidates": args.max_candidates or None})})
    rec, path = select_samples_for(args.target, args.backbone, cfg, args.n, args.out, holdout=args.holdout,
                                   proposals=not args.no_proposals, block_size=args.block_size,
                                   workers=args.workers or 1, cluster=args.cluster or "local",
                                   sbatch_args=args.sbatch_arg, work_dir=args.work_dir, progress=not args.quiet)
    rows = [[s["name"], s["offset_voxels"], [round(v) for v in s["offset_nm"]], s["shape"], f"{s['score']:.4f}"]
            for s in rec["samples"]]
    print(table(rows, ["sample", "offset (voxels)", "offset (nm)", "shape", "uncertainty"]))
    print(f"median uncertainty {rec['median_score']:.4f} over {len(rec['scores'])} scored candidates of a pool of "
          f"{rec['pool_size']}; wrote {path}, "
          f"{Path(args.out) / 'samples.png'} and the raw samples for annotators in {Path(args.out) / 'annotate'}")
    return 0


def run_finetune(args) -> int:
    from neuroadda.models.checkpoint import load_backbone
    from neuroadda.workflows.finetune import finetune_from_samples

    path = finetune_from_samples(args.target, args.samples, args.backbone, _config(args), args.out,
                                 labels_dir=args.labels, label_zero=args.label_zero, progress=not args.quiet)
    bb = load_backbone(path)
    print(f"wrote {path} ({bb.meta['steps']} steps on {bb.meta['n_train']} samples; waterz threshold "
          f"{bb.threshold:.2f} chosen on the {bb.threshold_region['what']})")
    return 0


def run_adapt(args) -> int:
    from neuroadda.workflows.adapt import adapt
    from neuroadda.workflows.backbones import check_specs

    cfg = _config(args)
    check_specs({"--target": [args.target], "--sources": args.sources})
    backbones = backbones_from_args(args, args.sources, args.out)
    rep = adapt(args.target, backbones, cfg, args.out, n=args.n, seeds=[cfg.seed + i for i in range(args.seeds)],
                rounds=args.rounds, all_sources=args.all_sources, label_zero=args.label_zero, progress=not args.quiet)
    from neuroadda.active.report import markdown

    print(markdown(rep))
    print(f"fine-tuning from {rep['source']}: VI {rep['vi_reduction_pct']:.1f}% lower than scratch "
          f"(mean over {len(rep['seeds'])} seeds); wrote {Path(args.out) / 'report.json'}, report.md and report.png")
    return 0
