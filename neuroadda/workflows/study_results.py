"""The transfer study's results: ``results.json`` (every per-seed VI and estimator score), ``results.md`` and
figures, all recomputable from ``results.json`` alone (:func:`tables` is what ``results.md`` prints).

results.json: ``{"targets": {T: {"n", "seeds", "arms": {arm: {"vi", "vi_split", "vi_merge"}}, "zero_shot":
{source: vi}, "estimators": {name: {source: score}}, "modality", "source_modality"}}, "default_estimator",
"by_n": {n: {T: {"arms": ...}}}, "study": {...}}``; per-seed lists follow ``seeds``; lower score = predicted
better.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from neuroadda.errors import InputError
from neuroadda.metrics.stats import bootstrap_ci, mean_sd, wilcoxon_signed_rank
from neuroadda.report import save_figure, write_json, write_text
from neuroadda.selection.assess import choose_default, modality_scores, noise_ceiling, pooled, random_order_baseline
from neuroadda.selection.estimators import needs_labels

SCRATCH = "scratch"


def modality(dataset: str) -> str:
    """The imaging-modality class of a dataset card (:func:`neuroadda.selection.modality.modality_class`)."""
    from neuroadda.data.cards import get_card
    from neuroadda.selection.modality import modality_class

    return modality_class(get_card(dataset).modality)


def collect(cfg) -> dict:
    """Read every finished element of the study into the results record (missing elements are listed)."""
    from neuroadda.workflows.study import Element, output, sources_for

    res = {"targets": {}, "by_n": {}, "missing": [], "default_estimator": cfg.estimators[0],
           "study": {"sources": cfg.sources, "budgets": cfg.budgets, "seeds": cfg.seeds, "sampling": cfg.sampling,
                     "name": cfg.name}}
    for t in cfg.targets:
        srcs = sources_for(cfg, t.name)
        for n in cfg.budgets:
            arms = {}
            for arm in srcs + [SCRATCH]:
                rows = {}
                for seed in range(cfg.seeds):
                    p = output(cfg, Element("finetune", t.name, arm, n, seed))
                    if p.is_file():
                        rows[seed] = json.loads(p.read_text())
                    else:
                        res["missing"].append(str(p))
                arms[arm] = rows
            seeds = [s for s in range(cfg.seeds) if all(s in arms[a] for a in arms)]  # complete seeds only: paired
            block = {"n": n, "seeds": seeds,
                     "arms": {a: {k: [arms[a][s][k] for s in seeds] for k in ("vi", "vi_split", "vi_merge")}
                              for a in arms}}
            res["by_n"].setdefault(str(n), {})[t.name] = block
        main = dict(res["by_n"][str(cfg.budgets[0])][t.name])
        zs = {}
        for s in srcs:
            p = output(cfg, Element("zero-shot", t.name, s))
            if p.is_file():
                zs[s] = json.loads(p.read_text())["vi"]
        est = {}
        for name in cfg.estimators:
            if needs_labels(name):  # one score per seed's samples: averaged over the complete seeds
                runs = [output(cfg, Element("estimator", t.name, name, cfg.budgets[0], s)) for s in main["seeds"]]
                runs = [json.loads(p.read_text())["scores"] for p in runs if p.is_file()]
                if runs:
                    est[name] = {s: float(np.mean([r[s] for r in runs])) for s in runs[0]}
                continue
            p = output(cfg, Element("estimator", t.name, name))
            if p.is_file():
                est[name] = json.loads(p.read_text())["scores"]
        main.update({"zero_shot": zs, "estimators": est, "modality": modality(t.name),
                     "source_modality": {s: modality(s) for s in srcs}})
        res["targets"][t.name] = main
    from neuroadda.workflows.study_species import cross_species, datasets_info

    res["datasets"] = datasets_info(sorted({t.name for t in cfg.targets} | set(cfg.sources)))
    if any(b["seeds"] for b in res["targets"].values()):
        res["cross_species"] = cross_species(res)
    return res


def decide_defaults(res: dict) -> dict:
    """Set ``default_estimator`` (label-free: what ``select-source`` uses before annotation) and
    ``default_labelled_estimator`` (``select-source --labels``) by :func:`~neuroadda.selection.assess.choose_default`,
    with the reason in ``default_why``; returns ``res``."""
    est = assess_estimators(res)["estimators"]
    names = sorted({n for b in res["targets"].values() for n in b["estimators"]})
    free = choose_default(est, [n for n in names if not needs_labels(n)])
    labelled = choose_default(est, [n for n in names if needs_labels(n)],
                              incumbent=next((n for n in names if needs_labels(n)), "zero-shot-vi"))
    res.update({"default_estimator": free["name"], "default_labelled_estimator": labelled["name"],
                "default_why": {"label-free": free["why"], "labelled": labelled["why"]}})
    return res


def transfer_table(block: dict) -> list[dict]:
    """Per source: mean ± sd VI, paired difference to scratch (bootstrap 95 % CI, Wilcoxon p), negative transfer."""
    sc = np.asarray(block["arms"][SCRATCH]["vi"], float)
    rows = []
    for arm, v in block["arms"].items():
        v = np.asarray(v["vi"], float)
        m, sd = mean_sd(v) if len(v) else (float("nan"), float("nan"))
        row = {"arm": arm, "mean": m, "sd": sd}
        if arm != SCRATCH and len(v) >= 2:
            d = v - sc
            dm, lo, hi = bootstrap_ci(d)
            row.update({"diff": dm, "ci_low": lo, "ci_high": hi, "wilcoxon_p": wilcoxon_signed_rank(d),
                        "negative_transfer": bool(lo > 0), "positive_transfer": bool(hi < 0)})
        rows.append(row)
    return rows


def realised(block: dict) -> dict[str, float]:
    """Mean held-out VI of every source arm (scratch excluded): the truth estimators are judged by."""
    return {a: float(np.mean(v["vi"])) for a, v in block["arms"].items() if a != SCRATCH and len(v["vi"])}


def assess_estimators(res: dict, *, permutations: int = 10_000) -> dict:
    """Every estimator and the two baselines against realised VI, per target and pooled; plus noise ceilings."""
    vi = {t: realised(b) for t, b in res["targets"].items() if b["seeds"]}
    out = {"random order": random_order_baseline(vi),
           "same modality first": pooled({t: modality_scores(b["modality"], b["source_modality"])
                                          for t, b in res["targets"].items() if t in vi},
                                         vi, permutations=permutations)}
    names = sorted({n for b in res["targets"].values() for n in b["estimators"]})
    for name in names:
        scores = {t: b["estimators"][name] for t, b in res["targets"].items() if name in b["estimators"] and t in vi}
        out[name] = pooled(scores, vi, permutations=permutations)
    ceilings = {t: noise_ceiling({a: v["vi"] for a, v in b["arms"].items() if a != SCRATCH})
                for t, b in res["targets"].items() if t in vi}
    finite = [v for v in ceilings.values() if np.isfinite(v)]  # one source: no ranking to agree with itself
    return {"estimators": out, "noise_ceiling": ceilings,
            "noise_ceiling_mean": float(np.mean(finite)) if finite else float("nan")}


def tables(res: dict) -> str:
    """``results.md``: the VI matrix, paired differences to scratch, and the estimators against realised VI."""
    def f(x, d=3):
        return "—" if x is None or not np.isfinite(x) else f"{x:.{d}f}"

    targets = [t for t, b in res["targets"].items() if b["seeds"]]
    arms = sorted({a for t in targets for a in res["targets"][t]["arms"] if a != SCRATCH}) + [SCRATCH]
    lines = ["# Transfer study: held-out VI (bits, mean ± sd over seeds; lower is better)", "",
             "| target (n, seeds) | " + " | ".join(arms) + " |", "|---|" + "---|" * len(arms)]
    for t in targets:
        b = res["targets"][t]
        cells = []
        for a in arms:
            v = b["arms"].get(a, {}).get("vi", [])
            cells.append(f"{np.mean(v):.3f} ± {np.std(v, ddof=1):.3f}" if len(v) > 1 else "·")
        lines.append(f"| {t} (n={b['n']}, {len(b['seeds'])}) | " + " | ".join(cells) + " |")
    lines += ["", "## Each source against scratch (paired on seeds and samples)", "",
              "| target | source | zero-shot VI | VI − scratch [95% bootstrap CI] | Wilcoxon p | reading |",
              "|---|---|---:|---|---:|---|"]
    for t in targets:
        b = res["targets"][t]
        for r in transfer_table(b):
            if r["arm"] == SCRATCH or "diff" not in r:
                continue
            reading = ("negative transfer" if r["negative_transfer"] else "better than scratch"
                       if r["positive_transfer"] else "within noise")
            lines.append(f"| {t} | {r['arm']} | {f(b['zero_shot'].get(r['arm']))} | {r['diff']:+.3f} "
                         f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] | {r['wilcoxon_p']:.3f} | {reading} |")
    a = assess_estimators(res)
    lines += ["", "## Estimators against realised transfer", "",
              "Noise ceiling (Spearman between disjoint halves of the seeds): "
              + ", ".join(f"{t} {f(v, 2)}" for t, v in a["noise_ceiling"].items())
              + f"; mean {f(a['noise_ceiling_mean'], 2)}.", "",
              "| estimator | pooled Spearman | permutation p | top-1 | regret (bits) | per target Spearman |",
              "|---|---:|---:|---:|---:|---|"]
    for name, e in a["estimators"].items():
        per = ", ".join(f"{t} {f(r['spearman'], 2)}" for t, r in e["per_target"].items())
        lines.append(f"| {name} | {f(e['spearman'], 2)} | {f(e['p_value'], 3)} | {f(e['top1'], 2)} | "
                     f"{f(e['regret'])} | {per} |")
    why = res.get("default_why") or {}
    lines += ["", f"Default before annotation: **{res.get('default_estimator', 'not decided')}** "
                  f"({why.get('label-free', 'not decided')})."]
    if res.get("default_labelled_estimator"):
        lines.append(f"Default with labelled samples (`--labels`): **{res['default_labelled_estimator']}** "
                     f"({why.get('labelled', 'not decided')}).")
    text = "\n".join(lines) + "\n"
    if res.get("cross_species"):
        from neuroadda.workflows.study_species import species_tables

        text += species_tables(res["cross_species"])
    return text


def plot_matrix(res: dict, path: Path) -> Path:
    """Heatmap: targets x (sources + scratch); colour = mean held-out VI minus the row's scratch VI (VI is not
    comparable across targets), text = the mean VI itself, the best arm of each row in bold."""
    from neuroadda.report import pyplot

    plt = pyplot()
    targets = [t for t, b in res["targets"].items() if b["seeds"]]
    arms = sorted({a for t in targets for a in res["targets"][t]["arms"] if a != SCRATCH}) + [SCRATCH]
    m = np.full((len(targets), len(arms)), np.nan)
    for i, t in enumerate(targets):
        for j, a in enumerate(arms):
            v = res["targets"][t]["arms"].get(a, {}).get("vi", [])
            if len(v):
                m[i, j] = np.mean(v)
    rel = m - m[:, [arms.index(SCRATCH)]]
    lim = float(np.nanmax(np.abs(rel))) or 1.0
    fig, ax = plt.subplots(figsize=(max(1.6 * len(arms) + 2.5, 6.0), 0.8 * len(targets) + 2.6), layout="constrained")
    im = ax.imshow(rel, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    for i in range(len(targets)):
        for j in range(len(arms)):
            if np.isfinite(m[i, j]):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=9,
                        color="white" if abs(rel[i, j]) > 0.6 * lim else "black",
                        fontweight="bold" if m[i, j] == np.nanmin(m[i]) else "normal")
    ax.set_xticks(range(len(arms)), arms, rotation=30, ha="right")
    ax.set_yticks(range(len(targets)), targets)
    ax.set_xlabel("fine-tuned from (same samples for every arm)")
    ax.set_title("Held-out VI after fine-tuning\n(bits, mean over seeds; bold = best of the row)", fontsize=10)
    # horizontal, under the axes: a vertical label would be longer than a one-target figure is high
    fig.colorbar(im, ax=ax, location="bottom", shrink=min(1.0, 4.0 / fig.get_figwidth() + 0.3), aspect=30,
                 label="VI − the row's scratch VI (bits); blue = better than scratch")
    return save_figure(fig, path)


def plot_assessment(res: dict, path: Path) -> Path:
    """Every estimator and baseline at a glance: mean regret (bits, left) and pooled Spearman with realised VI
    (right, the mean noise ceiling dashed), sorted by regret; the defaults in red."""
    from neuroadda.report import pyplot

    plt = pyplot()
    a = assess_estimators(res)
    rows = sorted(a["estimators"].items(), key=lambda kv: (kv[1]["regret"], -kv[1]["spearman"]))
    names = [n for n, _ in rows]
    defaults = {res.get("default_estimator"), res.get("default_labelled_estimator")}
    colors = ["tab:red" if n in defaults else "0.55" if n in ("random order", "same modality first") else "tab:blue"
              for n in names]
    y = np.arange(len(names))[::-1]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.5, 0.32 * len(names) + 1.6), sharey=True, layout="constrained")
    regrets = [r["regret"] for _, r in rows]
    ax1.barh(y, regrets, color=colors)
    for yi, v in zip(y, regrets):  # the value too: a regret of 0 draws no bar
        if np.isfinite(v):
            ax1.text(v, yi, f" {v:.3f}", va="center", fontsize=7)
    ax1.set_xlim(0, 1.25 * max([v for v in regrets if np.isfinite(v)] + [0.01]))
    ax1.set_yticks(y, names, fontsize=8)
    ax1.set_xlabel("mean regret of the pick (bits; lower is better)")
    ax2.barh(y, [r["spearman"] if np.isfinite(r["spearman"]) else 0 for _, r in rows], color=colors)
    ax2.set_xlim(-1.1, 1.1)  # Spearman's whole range: a ceiling of 1 is drawn inside the frame, not on it
    ax2.set_xticks([-1, -0.5, 0, 0.5, 1])
    ceiling = a["noise_ceiling_mean"]
    if np.isfinite(ceiling):
        ax2.axvline(ceiling, color="k", ls="--", lw=1, label=f"noise ceiling {ceiling:.2f}")
        ax2.legend(fontsize=8, loc="lower right")
    ax2.axvline(0, color="k", lw=0.5)
    ax2.set_xlabel("pooled Spearman with realised VI (higher is better)")
    n_targets = len(a["noise_ceiling"])
    fig.suptitle(f"Source-selection estimators on {n_targets} target{'s' if n_targets != 1 else ''} "
                 "(red: the defaults; grey: baselines)", fontsize=10)
    return save_figure(fig, path)


def plot_estimators(res: dict, path: Path, names: list[str] | None = None) -> Path:
    """One panel per (estimator, target): score (x) against realised mean VI (y), sources labelled. ``names``
    defaults to the chosen default estimator(s) and ``mmd2``, the paper's."""
    from neuroadda.report import pyplot

    plt = pyplot()
    targets = [t for t, b in res["targets"].items() if b["seeds"] and b["estimators"]]
    scored = sorted({n for t in targets for n in res["targets"][t]["estimators"]})
    wanted = names or [n for n in dict.fromkeys([res.get("default_estimator"), "mmd2",
                                                 res.get("default_labelled_estimator")]) if n]
    names = [n for n in wanted if n in scored] or scored
    if not targets or not names:
        raise InputError("no estimator scores to plot yet")
    fig, axes = plt.subplots(len(names), len(targets), figsize=(3.6 * len(targets), 3.2 * len(names)),
                             squeeze=False, layout="constrained")
    for i, name in enumerate(names):
        for j, t in enumerate(targets):
            ax, b = axes[i, j], res["targets"][t]
            vi, sc = realised(b), b["estimators"].get(name, {})
            srcs = [s for s in vi if s in sc]
            ax.scatter([sc[s] for s in srcs], [vi[s] for s in srcs], color="tab:blue")
            for s in srcs:
                ax.annotate(s, (sc[s], vi[s]), fontsize=7, xytext=(3, 3), textcoords="offset points")
            ax.axhline(np.mean(b["arms"][SCRATCH]["vi"]), color="0.5", ls="--", lw=1, label="scratch")
            ax.margins(x=0.3, y=0.15)  # room for the source names
            ax.set_title(f"{t}", fontsize=9)
            ax.set_xlabel(f"{name} (lower = predicted better)", fontsize=8)
            ax.set_ylabel("realised VI (bits)", fontsize=8)
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    return save_figure(fig, path)


def plot_vi_vs_n(res: dict, path: Path) -> Path | None:
    """Mean held-out VI against the budget n per target and arm (only with several budgets)."""
    if len(res["by_n"]) < 2:
        return None
    from neuroadda.report import pyplot

    plt = pyplot()
    ns = sorted(int(n) for n in res["by_n"])
    targets = list(res["targets"])
    fig, axes = plt.subplots(1, len(targets), figsize=(3.8 * len(targets), 3.2), squeeze=False, layout="constrained")
    for ax, t in zip(axes[0], targets):
        arms = res["by_n"][str(ns[0])][t]["arms"]
        for a in arms:
            ys = [np.mean(res["by_n"][str(n)][t]["arms"][a]["vi"]) if res["by_n"][str(n)][t]["arms"][a]["vi"]
                  else np.nan for n in ns]
            ax.plot(ns, ys, marker="o", label=a, ls="--" if a == SCRATCH else "-")
        ax.set_xscale("log", base=2)
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.set_title(t, fontsize=9)
        ax.set_xlabel("annotated samples n")
        ax.set_ylabel("held-out VI (bits)")
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    return save_figure(fig, path)


def write_results(res: dict, out: str | Path) -> dict:
    """Write results.json, results.md and the figures into ``out``; returns the paths."""
    out = Path(out)
    paths = {"json": write_json(out / "results.json", res)}
    paths["md"] = write_text(out / "results.md", tables(res))
    if any(b["seeds"] for b in res["targets"].values()):
        paths["matrix"] = plot_matrix(res, out / "vi_matrix.png")
        try:
            paths["estimators"] = plot_estimators(res, out / "estimators.png")
            paths["assessment"] = plot_assessment(res, out / "assessment.png")
        except InputError:
            pass
        vn = plot_vi_vs_n(res, out / "vi_vs_n.png")
        if vn is not None:
            paths["vi_vs_n"] = vn
    return paths
