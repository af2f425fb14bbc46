"""``neuroadda select-source``: rank candidate source backbones for a new target by MMD²."""

from __future__ import annotations

from pathlib import Path

from neuroadda.cli.common import (
    add_backbone_args,
    add_logger_arg,
    at_least_4,
    backbones_from_args,
    nonneg_int,
    positive_float,
    space_arg,
    track_run,
)


def register(sub) -> None:
    p = sub.add_parser("select-source", help="rank source backbones for a target (label-free, or on a few "
                                             "annotated samples)",
                       description="Score every candidate source's backbone for the target with one or more "
                                   "estimators (lower = better transfer expected; the first one ranks), flag "
                                   "task-incompatible sources, and say whether the leaders can be told apart. "
                                   "Writes OUT/selection.json and a bar chart.")
    p.add_argument("--target", required=True, help="target dataset name or PATH[:KEY] (unlabelled is fine)")
    p.add_argument("--sources", nargs="*", default=[], help="candidate source dataset names or PATH[:KEY] (their "
                                                            "models: --backbone/--backbones; others: --model)")
    add_backbone_args(p)
    p.add_argument("--estimator", default=None, metavar="NAME[,NAME...]",
                   help="mmd2 | mmd2-common | compat | entropy | consistency | consistency-input | zero-shot-vi | "
                        "logme, or compat+NAME (incompatible sources ranked last); the first ranks. Default: the "
                        "transfer study's best label-free estimator (compat+mmd2-common; consistency when some "
                        "candidate's training data or encoder features are not at hand, consistency-input when one "
                        "is an imported model), or the best label-using one with --labels (logme)")
    p.add_argument("--labels", default=None, metavar="SAMPLES",
                   help="re-rank on annotated samples before fine-tuning: a select-samples output folder (samples.json "
                        "with annotations in its annotate/ folder, or none there: the target's own labels, oracle)")
    p.add_argument("--config", default=None,
                   help="an adapt YAML whose select_source section sets estimator, patches, permutations, pooling "
                        "and space (e.g. configs/adapt.yaml, what adapt and demo use); flags override it")
    p.add_argument("--patches", type=at_least_4, default=None, help="patches per volume (default: 256)")
    p.add_argument("--permutations", type=nonneg_int, default=None, help="permutations for p-values (default: 1000)")
    p.add_argument("--pooling", choices=("mean", "max", "meanmax", "meanstd"), default=None,
                   help="mmd2: global pooling of the bottleneck activations (default: mean)")
    p.add_argument("--space", default=None, type=space_arg,
                   help="mmd2: per-backbone normalization: standardize | pca:K | none (default: standardize)")
    p.add_argument("--voxel-size", nargs=3, type=positive_float, default=None, metavar=("Z", "Y", "X"),
                   help="the target's voxel size in nm where its card or file does not give it; each backbone "
                        "then sees the target where the two meet (in-plane at the backbone's pixel size)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/select", help="output folder (default: %(default)s)")
    add_logger_arg(p)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from neuroadda.cli.common import table
    from neuroadda.config import AdaptConfig, load_config
    from neuroadda.errors import InputError
    from neuroadda.selection.estimators import known
    from neuroadda.selection.ranking import rank, verdict_line, write_ranking
    from neuroadda.selection.select import safe_name
    from neuroadda.workflows.select_samples import annotated_samples

    sc = load_config(args.config, AdaptConfig, overrides={
        f"select_source.{k}": getattr(args, k) for k in ("estimator", "patches", "permutations", "pooling", "space")
    }).select_source
    names = [n.strip() for n in sc.estimator.split(",")] if sc.estimator else None
    bad = [n for n in names or [] if not known(n)]
    if bad:
        where = "--estimator" if args.estimator else f"{args.config}: select_source.estimator"
        raise InputError(f"{where}: unknown {', '.join(bad)} (mmd2, mmd2-common, compat, entropy, consistency, "
                         "consistency-input, zero-shot-vi, logme, compat+NAME)")
    from neuroadda.workflows.backbones import check_specs

    check_specs({"--target": [args.target], "--sources": args.sources})  # before any work, whatever the estimator
    stored = tuple(args.voxel_size) if args.voxel_size else None
    labelled, kind, grid = annotated_samples(args.target, args.labels, stored) if args.labels \
        else ((), "3d_instance", None)
    backbones = backbones_from_args(args, args.sources, args.out)
    rec = rank(args.target, backbones, names, voxel_size=grid, stored_voxel_size=stored, n_patches=sc.patches,
               seed=args.seed,
               permutations=sc.permutations, labelled=labelled, labels_kind=kind, pooling=sc.pooling,
               space=sc.space, progress=not args.quiet)
    path = write_ranking(rec, args.out)
    others = [n for n in rec["settings"]["estimators"][1:]]
    rows = []
    for r in rec["ranking"]:
        ci = f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]" if "ci_low" in r else "—"
        extra = [f"{r['scores'][n]:.4f}" for n in others]
        rows.append([r["rank"], r["source"], f"{r['score']:.4f}", ci,
                     f"{r['p_value']:.4f}" if "p_value" in r else "—", *extra, "; ".join(r["flags"]) or "—"])
    if rec.get("substituted"):
        print(f"note: ranked by {', '.join(rec['substituted']['to'])}, not {', '.join(rec['substituted']['from'])}: "
              f"{rec['substituted']['why']}")
    print(f"ranked by {rec['estimator']} (lower = better transfer expected)"
          + (f" on {len(labelled)} annotated samples" if labelled else ""))
    for name, res in rec["estimators"].items():
        for src, d in res["detail"].items():
            if (d or {}).get("skipped"):
                print(f"note: {name} skipped {src}: {d['skipped']}")
    print(table(rows, ["rank", "source", rec["estimator"], "95% CI", "p-value", *others, "flags"]))
    if rec["estimator"] == "mmd2":
        print("noise floor: the target's own half-vs-half MMD² " + ", ".join(
            f"{r['source']} {r['target_self_mmd2']:.4f}" for r in rec["ranking"]))
    print(f"{verdict_line(rec)}; wrote {path}")
    metrics = {f"{rec['estimator']}/{r['source']}": r["score"] for r in rec["ranking"]}
    metrics.update({f"p_value/{r['source']}": r["p_value"] for r in rec["ranking"] if "p_value" in r})
    track_run(args.logger, args.out, f"select-source-{safe_name(args.target)}",
              {"target": args.target, "best": rec["best"], "estimator": rec["estimator"]}, metrics,
              tags=["select-source"])
    return 0


def register_analysis(sub) -> None:
    m = sub.add_parser("mmd-matrix", help="pairwise MMD² among datasets with one fixed encoder",
                       description="Embed each dataset with ONE encoder and write OUT/mmd_matrix.json, a heatmap "
                                   "and a UPGMA dendrogram.")
    m.add_argument("--datasets", nargs="+", required=True, help="dataset names or PATH[:KEY]")
    m.add_argument("--encoder", required=True, help="backbone checkpoint whose encoder embeds every dataset")
    m.add_argument("--patches", type=at_least_4, default=256)
    m.add_argument("--pooling", choices=("mean", "max", "meanmax", "meanstd"), default="mean")
    m.add_argument("--voxel-size", nargs=3, type=positive_float, default=None, metavar=("Z", "Y", "X"),
                   help="common voxel size in nm (default: the encoder's training voxel size)")
    m.add_argument("--patch-size", nargs=3, type=int, default=None, metavar=("Z", "Y", "X"),
                   help="patch in voxels at that voxel size, a multiple of the encoder's stride; must fit every "
                        "dataset (default: the encoder's training patch)")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--out", default="runs/mmd_matrix")
    m.add_argument("--quiet", action="store_true")
    m.set_defaults(func=run_matrix)
    p = sub.add_parser("phylogeny", help="correlate dataset MMD² with species divergence (Mantel test)")
    p.add_argument("--matrix", required=True, help="mmd_matrix.json from 'neuroadda mmd-matrix'")
    p.add_argument("--tree", default=None, help="species tree YAML (default datasets/phylogeny.yaml)")
    p.add_argument("--permutations", type=nonneg_int, default=9999)
    p.add_argument("--out", default=None, help="output folder (default: the matrix's folder)")
    p.set_defaults(func=run_phylogeny)


def run_matrix(args) -> int:
    from neuroadda.cli.common import table
    from neuroadda.selection.matrix import mmd_matrix, write_matrix
    from neuroadda.selection.select import EmbedSettings

    settings = EmbedSettings(n_patches=args.patches, seed=args.seed, pooling=args.pooling,
                             voxel_size=tuple(args.voxel_size) if args.voxel_size else None,
                             patch_size=tuple(args.patch_size) if args.patch_size else None)
    res = mmd_matrix(args.datasets, args.encoder, settings, progress=not args.quiet)
    path = write_matrix(res, args.out)
    names = res["datasets"]
    print(table([[n] + [f"{v:.4f}" for v in row] for n, row in zip(names, res["mmd2"])], ["MMD²"] + names))
    print(f"wrote {path}, mmd_matrix.png and mmd_dendrogram.png")
    return 0


def run_phylogeny(args) -> int:
    from neuroadda.selection.phylogeny import phylogeny_analysis

    out = Path(args.out) if args.out else Path(args.matrix).parent
    res = phylogeny_analysis(Path(args.matrix), Path(args.tree) if args.tree else None, out,
                             permutations=args.permutations)
    for method, r in res["mantel"].items():
        rs = "undefined" if r.get("r") is None else f"{r['r']:.3f} (p = {r['p_value']:.4g})"
        print(f"Mantel {method}: r = {rs}")
    for scheme, block in res["modality"].items():
        for what, key in (("MMD² vs divergence given modality", "partial_divergence_given_modality"),
                          ("MMD² vs modality given divergence", "partial_modality_given_divergence")):
            r = block[key]["spearman"]
            rs = "undefined" if r.get("r") is None else f"{r['r']:.3f} (p = {r['p_value']:.4g})"
            print(f"partial Mantel spearman, {what} ({scheme} classes): r = {rs}")
    if res.get("note"):
        print(f"note: {res['note']}")
    print(f"wrote {out / 'phylogeny.json'} and {out / 'phylogeny.png'}")
    return 0
