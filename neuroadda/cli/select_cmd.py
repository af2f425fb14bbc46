"""``neuroadda select-source``: rank candidate source backbones for a new target by MMD²."""

from __future__ import annotations

from pathlib import Path

from neuroadda.cli.common import (add_backbone_args, add_logger_arg, at_least_4, backbones_from_args, nonneg_int,
                                  positive_float, space_arg, track_run)


def register(sub) -> None:
    p = sub.add_parser("select-source", help="rank source backbones for a target by MMD² between embeddings",
                       description="Embed N target patches and N patches of each source's own volume with that "
                                   "source's backbone encoder (bottleneck, pooled), standardize within each "
                                   "backbone's space and rank by unbiased MMD² with permutation p-values and "
                                   "bootstrap CIs. Writes OUT/selection.json and OUT/mmd.png.")
    p.add_argument("--target", required=True, help="target dataset name or PATH[:KEY] (unlabelled is fine)")
    p.add_argument("--sources", nargs="+", required=True, help="candidate source dataset names or PATH[:KEY]")
    add_backbone_args(p)
    p.add_argument("--patches", type=at_least_4, default=256, help="patches per volume (default: %(default)s)")
    p.add_argument("--permutations", type=nonneg_int, default=1000, help="permutations for p-values (default: %(default)s)")
    p.add_argument("--pooling", choices=("mean", "max", "meanmax", "meanstd"), default="mean",
                   help="global pooling of the bottleneck activations (default: %(default)s)")
    p.add_argument("--space", default="standardize", type=space_arg,
                   help="per-backbone normalization: standardize | pca:K | none (default: %(default)s)")
    p.add_argument("--voxel-size", nargs=3, type=positive_float, default=None, metavar=("Z", "Y", "X"),
                   help="common voxel size in nm for all volumes (default: the target's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/select", help="output folder (default: %(default)s)")
    add_logger_arg(p)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from neuroadda.cli.common import table
    from neuroadda.selection.select import EmbedSettings, rank_sources, safe_name, write_selection

    backbones = backbones_from_args(args, args.sources, args.out)
    settings = EmbedSettings(n_patches=args.patches, seed=args.seed, pooling=args.pooling, space=args.space,
                             voxel_size=tuple(args.voxel_size) if args.voxel_size else None)
    sel = rank_sources(args.target, backbones, settings, permutations=args.permutations, progress=not args.quiet)
    path = write_selection(sel, args.out)
    rows = [[i + 1, r["source"], f"{r['mmd2']:.4f}", f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]", f"{r['p_value']:.4f}",
             f"{r['target_self_mmd2']:.4f}" + (" (within)" if r["within_target_variation"] else "")]
            for i, r in enumerate(sel["ranking"])]
    print(table(rows, ["rank", "source", "MMD²", "95% CI", "p-value", "target half vs half"]))
    verdict = "significantly" if sel["best_significantly_closer"] else "not significantly"
    print(f"best source: {sel['best']} ({verdict} closer than the runner-up); wrote {path} and {Path(args.out) / 'mmd.png'}")
    metrics = {f"mmd2/{r['source']}": r["mmd2"] for r in sel["ranking"]}
    metrics.update({f"p_value/{r['source']}": r["p_value"] for r in sel["ranking"]})
    track_run(args.logger, args.out, f"select-source-{safe_name(args.target)}",
              {"target": args.target, "best": sel["best"], **sel["settings"]}, metrics, tags=["select-source"])
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
                             voxel_size=tuple(args.voxel_size) if args.voxel_size else None)
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
    if res.get("note"):
        print(f"note: {res['note']}")
    print(f"wrote {out / 'phylogeny.json'} and {out / 'phylogeny.png'}")
    return 0
