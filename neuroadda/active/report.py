"""The ``adapt`` report: VI per arm over seeds (mean ± sd), % reduction vs scratch, a Markdown table, a figure."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from neuroadda.report import label_colors, save_figure, write_json, write_text

METRICS = ("vi", "vi_split", "vi_merge", "adapted_rand")
ARMS = ("finetuned", "scratch")


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value)."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def arm_summary(evals: list[dict]) -> dict:
    """Per-seed lists of each metric (VI in bits) plus their mean and sd."""
    out = {m: [float(e[m]) for e in evals] for m in METRICS}
    out["threshold"] = [float(e["threshold"]) for e in evals]
    for m in METRICS:
        out[f"{m}_mean"], out[f"{m}_sd"] = mean_sd(out[m])
    return out


def reduction_pct(finetuned: dict, scratch: dict) -> float:
    """100 * (mean VI scratch - mean VI fine-tuned) / mean VI scratch (positive = fine-tuning helps)."""
    return 100.0 * (scratch["vi_mean"] - finetuned["vi_mean"]) / scratch["vi_mean"]


def build_report(*, target: str, source: str, n: int, strategy: str, seeds: list[int], rounds: list[dict],
                 selection: dict, zero_shot: dict | None) -> dict:
    """``rounds``: [{"n_total", "arms": {arm: [eval per seed]}}]; the top-level arms are the last round's."""
    summarized = []
    for r, rd in enumerate(rounds, 1):
        arms = {a: arm_summary(rd["arms"][a]) for a in ARMS}
        summarized.append({"round": r, "n_total": rd["n_total"], "arms": arms,
                           "vi_reduction_pct": reduction_pct(arms["finetuned"], arms["scratch"])})
    last = summarized[-1]
    others = {a.split(":", 1)[1]: arm_summary(v) for a, v in rounds[-1]["arms"].items() if a.startswith("from:")}
    return {"target": target, "source": source, "n": n, "strategy": strategy, "seeds": list(seeds),
            "arms": last["arms"], "vi_reduction_pct": last["vi_reduction_pct"],
            "paired": paired_difference(last["arms"]["finetuned"]["vi"], last["arms"]["scratch"]["vi"]),
            "zero_shot": zero_shot, "rounds": summarized,
            "per_source": per_source(selection, source, last["arms"]["finetuned"], others) if others else None,
            "estimator": selection.get("estimator", "mmd2"),
            "ranking": [{"source": r["source"], "score": r.get("score", r.get("mmd2")), "p_value": r.get("p_value"),
                         "flags": r.get("flags", [])} for r in selection["ranking"]],
            "vi_units": "bits; split = H(seg|gt), merge = H(gt|seg); gt label 0 ignored"}


def paired_difference(finetuned: list[float], scratch: list[float]) -> dict:
    """Fine-tuned minus scratch VI over seeds paired on the same samples: mean, 95 % bootstrap CI, exact
    Wilcoxon p, and the reading ("fine-tuning better", "worse" when the CI excludes 0, else "within noise")."""
    from neuroadda.metrics.stats import bootstrap_ci, wilcoxon_signed_rank

    d = [f - s for f, s in zip(finetuned, scratch)]
    m, lo, hi = bootstrap_ci(d)
    reading = "fine-tuning better" if hi < 0 else "fine-tuning worse" if lo > 0 else "within noise"
    return {"diffs": d, "mean": m, "ci_low": lo, "ci_high": hi, "wilcoxon_p": wilcoxon_signed_rank(d),
            "seeds": len(d), "reading": reading if len(d) > 1 else "one seed: no claim"}


def per_source(selection: dict, best: str, finetuned: dict, others: dict) -> dict:
    """Fine-tuned VI from every source next to its selection score, and their Spearman correlation (positive =
    the source scored better also reaches the lower VI, i.e. the estimator predicts transfer)."""
    from scipy.stats import spearmanr

    vi = {best: finetuned, **others}
    rows = [{"source": r["source"], "score": r.get("score", r.get("mmd2")), "vi": vi[r["source"]]["vi"],
             "vi_mean": vi[r["source"]]["vi_mean"], "vi_sd": vi[r["source"]]["vi_sd"]}
            for r in selection["ranking"] if r["source"] in vi]
    rho = p = None
    if len(rows) >= 3:
        res = spearmanr([r["score"] for r in rows], [r["vi_mean"] for r in rows])
        rho, p = float(res.statistic), float(res.pvalue)
    return {"sources": rows, "estimator": selection.get("estimator", "mmd2"), "spearman_score_vs_vi": rho,
            "spearman_p": p, "note": "Spearman needs at least 3 sources" if rho is None else
                                     "rho > 0: the better-scored source went with lower fine-tuned VI"}


def _pm(arm: dict, m: str) -> str:
    return f"{arm[f'{m}_mean']:.3f} ± {arm[f'{m}_sd']:.3f}"


def markdown(report: dict) -> str:
    """The report as Markdown tables: the source ranking, then VI per round and arm (mean ± sd over seeds)."""
    est = report.get("estimator", "mmd2")
    lines = [f"# NeuroADDA adapt: target {report['target']}, source {report['source']}", "",
             f"n = {report['n']} samples per round, strategy {report['strategy']}, seeds {report['seeds']}; "
             f"VI in bits on the held-out region.", "", f"| source | {est} | p-value | flags |", "|---|---|---|---|"]
    lines += [f"| {r['source']} | {r['score']:.4f} | {'—' if r['p_value'] is None else format(r['p_value'], '.4f')} "
              f"| {'; '.join(r['flags']) or '—'} |" for r in report["ranking"]]
    lines += ["", "| samples | arm | VI | VI split | VI merge | adapted Rand | VI reduction |",
              "|---|---|---|---|---|---|---|"]
    for rd in report["rounds"]:
        for a in ARMS:
            arm = rd["arms"][a]
            red = f"{rd['vi_reduction_pct']:.1f}%" if a == "finetuned" else ""
            lines.append(f"| {rd['n_total']} | {a} | {_pm(arm, 'vi')} | {_pm(arm, 'vi_split')} "
                         f"| {_pm(arm, 'vi_merge')} | {_pm(arm, 'adapted_rand')} | {red} |")
    if report.get("zero_shot"):
        z = report["zero_shot"]
        lines.append(f"| 0 | zero-shot {report['source']} | {z['vi']:.3f} | {z['vi_split']:.3f} | {z['vi_merge']:.3f} "
                     f"| {z['adapted_rand']:.3f} | |")
    if report.get("paired"):
        pd = report["paired"]
        lines += ["", f"Fine-tuned − scratch VI (paired over {pd['seeds']} seeds): {pd['mean']:+.3f} bits, "
                      f"95% bootstrap CI [{pd['ci_low']:+.3f}, {pd['ci_high']:+.3f}], "
                      f"Wilcoxon p = {pd['wilcoxon_p']:.3f}: {pd['reading']}."]
    if report.get("per_source"):
        ps = report["per_source"]
        lines += ["", f"| fine-tuned from | {est} | VI after fine-tuning |", "|---|---|---|"]
        lines += [f"| {r['source']} | {r['score']:.4f} | {r['vi_mean']:.3f} ± {r['vi_sd']:.3f} |"
                  for r in ps["sources"]]
        if ps["spearman_score_vs_vi"] is not None:
            lines += ["", f"Spearman ({est} vs fine-tuned VI): {ps['spearman_score_vs_vi']:.2f} "
                          f"(p = {ps['spearman_p']:.2f})"]
    return "\n".join(lines) + "\n"


def plot_report(report: dict, path: str | Path) -> Path:
    """``report.png``: :func:`report_figure` saved to ``path``."""
    return save_figure(report_figure(report), path)


def report_figure(report: dict):
    """VI per arm and round: split + merge stacked (mean over seeds), mean ± sd, every seed as a dot, and the
    zero-shot VI as a dashed line; the legend sits outside the axes (nothing drawn over the data)."""
    from neuroadda.data.io import short_name
    from neuroadda.report import pyplot

    plt = pyplot()
    rounds = report["rounds"]
    fig, ax = plt.subplots(figsize=(4.8 + 1.5 * len(rounds), 3.8), layout="constrained")
    colors = {"finetuned": "tab:blue", "scratch": "0.45"}
    names = {"finetuned": f"fine-tuned from {short_name(report['source'])}", "scratch": "from scratch"}
    ticks, tick_labels, top = [], [], 0.0
    for r, rd in enumerate(rounds):
        for j, a in enumerate(ARMS):
            arm, x, first = rd["arms"][a], r + (j - 0.5) * 0.4, r == 0
            ax.bar(x, arm["vi_split_mean"], 0.38, color=colors[a], label=f"{names[a]}: split" if first else None)
            ax.bar(x, arm["vi_merge_mean"], 0.38, bottom=arm["vi_split_mean"], color=colors[a], alpha=0.4,
                   label=f"{names[a]}: merge" if first else None)
            ax.errorbar(x, arm["vi_mean"], yerr=arm["vi_sd"], color="k", capsize=4, lw=1,
                        label="mean ± sd over seeds" if first and j == 0 else None)
            ax.plot([x] * len(arm["vi"]), arm["vi"], "o", color="k", ms=3,
                    label="one seed" if first and j == 0 else None)
            ticks.append(x)
            tick_labels.append(f"{'fine-tuned' if a == 'finetuned' else 'scratch'}\nn = {rd['n_total']}")
            top = max(top, arm["vi_mean"] + arm["vi_sd"], *arm["vi"])
    if report.get("zero_shot"):
        z = report["zero_shot"]["vi"]
        ax.axhline(z, color="tab:red", ls="--", lw=1.2, label=f"zero-shot (0 samples): {z:.2f}")
        top = max(top, z)
    ax.set_ylim(0, 1.08 * top if top > 0 else 1)
    ax.set_xticks(ticks, tick_labels)
    ax.set_xlim(-0.6, len(rounds) - 0.4)
    ax.set_ylabel("VI on the held-out region (bits)")
    seeds = len(report["seeds"])
    ax.set_title(f"{short_name(report['target'])}: VI after fine-tuning (lower is better)\n{report['strategy']} "
                 f"samples, {seeds} seed{'s' if seeds != 1 else ''}", fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: (labels[i].startswith(("mean", "one", "zero")), i))
    fig.legend([handles[i] for i in order], [labels[i] for i in order], loc="outside right upper", fontsize=8,
               frameon=False)  # the arms first, then the markers
    return fig


def write_report(report: dict, out_dir: str | Path) -> Path:
    """``report.json``, ``report.md`` and ``report.png`` in ``out_dir`` (each written atomically)."""
    out_dir = Path(out_dir)
    write_text(out_dir / "report.md", markdown(report))
    plot_report(report, out_dir / "report.png")
    return write_json(out_dir / "report.json", report)


def plot_heldout(raw: np.ndarray, gt: np.ndarray, segs: dict, path: str | Path, *, title: str = "") -> Path:
    """One held-out slice: raw, ground truth, then each ``segs[name] = (seg (y, x), VI bits)`` side by side."""
    from neuroadda.report import pyplot

    plt = pyplot()
    panels = [("raw", raw, None), ("ground truth", gt, None)] + [(k, s, vi) for k, (s, vi) in segs.items()]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.2 * len(panels), 3.1), layout="constrained")
    for ax, (name, img, vi) in zip(np.atleast_1d(axes), panels):
        ax.imshow(img, cmap="gray") if name == "raw" else ax.imshow(label_colors(img))
        name = textwrap.fill(name, 22, break_long_words=True)  # a panel is 2.2 inches wide
        ax.set_title(name if vi is None else f"{name}\nVI {vi:.2f} bits", fontsize=10)
        ax.axis("off")
    if title:
        fig.suptitle(f"{title}\nVI: of the whole held-out region, not only this slice", fontsize=10)
    return save_figure(fig, path)
