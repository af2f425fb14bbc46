"""``neuroadda demo``: the method end to end on the bundled crops with the shipped small backbones."""

from __future__ import annotations

import json
from pathlib import Path

from neuroadda.cli.common import table


def register(sub) -> None:
    d = sub.add_parser("demo", help="run the whole method on the bundled real EM crops (minutes, CPU)",
                       description="Rank the source backbones for the bundled neuroproof target (default "
                                   "estimator), pick 4 samples by median uncertainty, fine-tune from the chosen "
                                   "backbone and from "
                                   "scratch on them, segment and score the held-out region by VI. Uses the small "
                                   "backbones shipped in datasets/backbones (--retrain rebuilds them). Writes "
                                   "figures and demo.json to --out.")
    d.add_argument("--out", default="runs/demo", help="output folder (default: %(default)s)")
    d.add_argument("--config", default=None, help="demo config YAML (default: configs/demo.yaml)")
    d.add_argument("--retrain", action="store_true",
                   help="first rebuild the shipped backbones (pretrain one per source, a few minutes each on a CPU)")
    d.add_argument("--resume", action="store_true",
                   help="keep what an earlier demo left in --out and skip its finished steps (default: start over)")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    d.set_defaults(func=run)


def run(args) -> int:
    from neuroadda.workflows.demo import run_demo

    summary = run_demo(args.out, config=args.config, retrain=args.retrain, fresh=not args.resume,
                       progress=not args.quiet)
    print(summary_text(summary, args.out))
    return 0


def summary_text(summary: dict, out: str | Path) -> str:
    """The demo's closing table: MMD² ranking with p-values, VI per arm, % reduction, stage times."""
    rep = summary["report"]
    sel = json.loads((Path(out) / "select" / "selection.json").read_text())
    from neuroadda.selection.ranking import verdict_line

    est = sel.get("estimator", "mmd2")
    lines = [f"\nSource selection for target {rep['target']} by {est} (lower = better transfer expected):"]
    lines.append(table([[i, r["source"], f"{r.get('score', r.get('mmd2')):.4f}",
                         f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]" if "ci_low" in r else "—",
                         f"{r['p_value']:.4f}" if "p_value" in r else "—", "; ".join(r.get("flags", [])) or "—"]
                        for i, r in enumerate(sel["ranking"], 1)],
                       ["rank", "source", est, "95% CI", "p-value", "flags"]))
    if "noise" in sel:
        lines.append(verdict_line(sel))
    arms = rep["arms"]
    rows = []
    if rep.get("zero_shot"):
        z = rep["zero_shot"]
        rows.append([f"zero-shot {rep['source']} (0 samples)", f"{z['vi_split']:.3f}", f"{z['vi_merge']:.3f}",
                     f"{z['vi']:.3f}"])
    k = len(rep["seeds"])

    def pm(a, m):
        return f"{arms[a][f'{m}_mean']:.3f} ± {arms[a][f'{m}_sd']:.3f}" if k > 1 else f"{arms[a][f'{m}_mean']:.3f}"

    rows += [[f"{name} ({rep['n']} samples)", pm(a, "vi_split"), pm(a, "vi_merge"), pm(a, "vi")]
             for a, name in (("scratch", "from scratch"), ("finetuned", f"fine-tuned from {rep['source']}"))]
    lines.append(f"\nSegmentation of the held-out region ({rep['n']} samples picked by {rep['strategy']}, {k} seed"
                 f"{'s' if k > 1 else ''}{', mean ± sd' if k > 1 else ''}; VI in bits, lower is better):")
    lines.append(table(rows, ["", "VI split", "VI merge", "VI total"]))
    lines.append(f"VI reduction, fine-tuned vs scratch: {rep['vi_reduction_pct']:.1f}%")
    pd = rep.get("paired")
    if pd:
        lines.append(f"Paired over {pd['seeds']} seeds (same samples per seed): fine-tuned − scratch "
                     f"{pd['mean']:+.3f} bits, 95% bootstrap CI [{pd['ci_low']:+.3f}, {pd['ci_high']:+.3f}], "
                     f"Wilcoxon p = {pd['wilcoxon_p']:.3f}: {pd['reading']}.")
    stages = "; ".join(f"{k} {v:.0f} s" for k, v in summary["stage_seconds"].items())
    lines.append(f"\nStage times: {stages}. Total {summary['total_seconds']:.0f} s, peak memory "
                 f"{summary['peak_rss_gb']:.2f} GB.")
    lines.append(f"Figures are in {Path(out)}: " + ", ".join(Path(f).relative_to(out).as_posix()
                                                               for f in summary["figures"])
                 + f"; numbers in {Path(out) / 'demo.json'}.")
    return "\n".join(lines)
