"""The active-learning factor's results: ``active_learning/results.json`` (every per-seed VI), ``results.md``
and ``vi_vs_n.png``, all recomputable from ``results.json`` alone (:func:`al_tables` is what ``results.md`` prints).

results.json: ``{"targets": {T: {"source", "seeds", "arms": {"STRATEGY@nN": {"vi", "vi_split", "vi_merge"},
"scratch@nN": {...}}, "zero_shot", "ceiling": {"seeds", "vi"}}}, "strategies", "budgets", "default_strategy",
"decision", "rule"}``; per-seed lists follow ``seeds`` (the seeds with every arm finished: paired).

Statistics are within target (VI is never pooled across targets): each strategy against random is the paired
difference per seed with a bootstrap 95 % CI; pooled is the mean over targets of the per-target mean
difference, its CI from a bootstrap that resamples seeds within each target.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from neuroadda.metrics.stats import bootstrap_ci, mean_sd, stratified_bootstrap_ci
from neuroadda.report import save_figure, write_json, write_text

INCUMBENT = "median-uncertainty"  # the paper's rule and the tool's default before this study
RANDOM = "random"
DECISION_N = 4  # the budget the rule is applied at (the transfer study's n)
# Pre-registered (written into the code before the study's first active-learning element ran):
RULE = ("At n = 4, pooled over targets (mean of the per-target mean paired differences; 95 % CI from a bootstrap "
        "resampling seeds within each target): (1) median-uncertainty stays the default if its difference to "
        "random has a CI entirely below 0 and no other strategy's difference to median-uncertainty has a CI "
        "entirely below 0; (2) otherwise the strategy with the lowest pooled difference to random among those "
        "whose CI lies entirely below 0 becomes the default; (3) if no strategy beats random so, random becomes "
        "the default (picking by uncertainty would cost a forward pass per candidate and buy nothing).")


def arm(strategy: str, n: int) -> str:
    return f"{strategy}@n{n}"


def collect_active_learning(cfg) -> dict:
    """Read every finished element of the factor into the results record (missing ones listed)."""
    from neuroadda.workflows.study import SCRATCH, Element, output

    al = cfg.active_learning
    res = {"targets": {}, "missing": [], "strategies": list(al.strategies), "budgets": list(al.budgets),
           "source_estimator": al.source_estimator, "rule": RULE, "decision_n": DECISION_N,
           "study": {"name": cfg.name, "seeds": al.seeds, "finetune_steps": cfg.finetune_steps}}
    for t in cfg.targets:
        rows, source = {}, None
        for n in al.budgets:
            for seed in range(al.seeds):
                els = {arm(s, n): Element("active", t.name, None, n, seed, s) for s in al.strategies}
                els[arm(SCRATCH, n)] = Element("finetune", t.name, SCRATCH, n, seed)  # on the random picks
                for a, e in els.items():
                    p = output(cfg, e)
                    if not p.is_file():
                        res["missing"].append(str(p))
                        continue
                    rows.setdefault(a, {})[seed] = rec = json.loads(p.read_text())
                    source = rec.get("source", source)
        names = [arm(s, n) for n in al.budgets for s in list(al.strategies) + [SCRATCH]]
        seeds = [s for s in range(al.seeds) if all(s in rows.get(a, {}) for a in names)]
        block = {"source": source, "seeds": seeds,
                 "arms": {a: {k: [rows[a][s][k] for s in seeds] for k in ("vi", "vi_split", "vi_merge")}
                          for a in names}}
        if source is not None:
            z = output(cfg, Element("zero-shot", t.name, source))
            block["zero_shot"] = json.loads(z.read_text())["vi"] if z.is_file() else None
        ceil = {s: output(cfg, Element("ceiling", t.name, None, None, s)) for s in range(al.ceiling_seeds)}
        done = [s for s, p in ceil.items() if p.is_file()]
        res["missing"] += [str(p) for s, p in ceil.items() if s not in done]
        block["ceiling"] = {"seeds": done, "vi": [json.loads(ceil[s].read_text())["vi"] for s in done]}
        res["targets"][t.name] = block
    return decide_strategy(res)


def versus(res: dict, strategy: str, n: int, baseline: str = RANDOM) -> dict:
    """``strategy`` minus ``baseline`` at budget n: per target (mean, CI) and pooled (mean, stratified CI)."""
    per, groups = {}, []
    for t, b in res["targets"].items():
        if not b["seeds"]:
            continue
        d = np.subtract(b["arms"][arm(strategy, n)]["vi"], b["arms"][arm(baseline, n)]["vi"])
        m, lo, hi = bootstrap_ci(d)
        per[t] = {"mean": m, "ci_low": lo, "ci_high": hi, "diffs": d.tolist()}
        groups.append(d)
    pooled = dict(zip(("mean", "ci_low", "ci_high"), stratified_bootstrap_ci(groups))) if groups else None
    return {"per_target": per, "pooled": pooled}


def decide_strategy(res: dict) -> dict:
    """Apply :data:`RULE`: sets ``default_strategy`` and ``decision`` (the numbers it was decided on)."""
    n = res["decision_n"]
    others = [s for s in res["strategies"] if s != RANDOM]
    if n not in res["budgets"] or not any(b["seeds"] for b in res["targets"].values()):
        res.update({"default_strategy": INCUMBENT, "decision": {"why": "no complete results at n = 4 yet"}})
        return res
    vs_random = {s: versus(res, s, n)["pooled"] for s in others}
    beats = {s: v for s, v in vs_random.items() if v["ci_high"] < 0}
    vs_incumbent = {s: versus(res, s, n, INCUMBENT)["pooled"] for s in others if s != INCUMBENT} \
        if INCUMBENT in others else {}
    better = [s for s, v in vs_incumbent.items() if v["ci_high"] < 0]
    if INCUMBENT in beats and not better:
        choice, why = INCUMBENT, "median-uncertainty beats random and no strategy beats it (rule 1)"
    elif beats:
        choice = min(beats, key=lambda s: (beats[s]["mean"], s != INCUMBENT))
        why = f"{choice} beats random with the lowest pooled difference (rule 2)"
    else:
        choice, why = RANDOM, "no strategy's pooled difference to random has a CI entirely below 0 (rule 3)"
    res.update({"default_strategy": choice,
                "decision": {"why": why, "n": n, "vs_random": vs_random, "vs_incumbent": vs_incumbent}})
    return res


def savings(ns, scratch_means, target: float) -> float | None:
    """The budget at which scratch's mean VI first reaches ``target``, interpolated linearly on log2 n between
    the budgets ``ns`` (ascending); ``ns[0]`` when scratch is there at once; None when it never is."""
    ns, m = np.asarray(ns, float), np.asarray(scratch_means, float)
    if m[0] <= target:
        return float(ns[0])
    for i in range(len(ns) - 1):
        if m[i + 1] <= target < m[i]:
            x = np.log2(ns[i]) + (m[i] - target) / (m[i] - m[i + 1]) * (np.log2(ns[i + 1]) - np.log2(ns[i]))
            return float(2 ** x)
    return None


def savings_record(b: dict, budgets, strategy: str, n_ref: int = DECISION_N, *, n_boot: int = 2000) -> dict:
    """Scratch's budget matching the fine-tuned VI at ``n_ref`` (``strategy``): point value and a bootstrap
    95 % interval over seeds (every arm of a seed resampled together); None = more than the largest budget."""
    ns = sorted(budgets)
    sc = np.array([b["arms"][arm("scratch", n)]["vi"] for n in ns])  # (budgets, seeds)
    ft = np.asarray(b["arms"][arm(strategy, n_ref)]["vi"])
    point = savings(ns, sc.mean(1), float(ft.mean()))
    rng = np.random.default_rng(0)
    draws = []
    for _ in range(n_boot):
        idx = rng.integers(0, ft.size, ft.size)
        s = savings(ns, sc[:, idx].mean(1), float(ft[idx].mean()))
        draws.append(np.inf if s is None else s)
    lo, hi = np.quantile(draws, [0.025, 0.975])
    return {"n": point, "ci_low": float(lo), "ci_high": float(hi), "finetuned_vi": float(ft.mean()),
            "strategy": strategy, "n_ref": n_ref}


def fmt_n(v, top: int = 8) -> str:
    """A savings budget for a table: one decimal, or "more than TOP" when scratch never gets there."""
    if v is None or not np.isfinite(v):
        return f"more than {top}"
    return f"{v:.1f}"


def al_tables(res: dict) -> str:
    """``results.md``: everything in it is computed here from ``res`` (a test recomputes it)."""
    ns = sorted(res["budgets"])
    strategies = res["strategies"]
    default = res["default_strategy"]
    out = ["# Active learning: which samples to annotate, and how many", "",
           f"Source per target: the one `{res['source_estimator']}` ranks first. Seeds paired on the samples; "
           "VI in bits (lower is better); mean ± sd over seeds.", ""]
    for t, b in res["targets"].items():
        if not b["seeds"]:
            out += [f"## {t}", "", "no complete seed yet", ""]
            continue
        out += [f"## {t} (source {b['source']}, {len(b['seeds'])} seeds)", "",
                "| arm | " + " | ".join(f"n = {n}" for n in ns) + " |", "|---|" + "---|" * len(ns)]
        for s in strategies + ["scratch"]:
            cells = ["{:.3f} ± {:.3f}".format(*mean_sd(b["arms"][arm(s, n)]["vi"])) for n in ns]
            out.append(f"| {s} | " + " | ".join(cells) + " |")
        zs = b.get("zero_shot")
        ceil = b["ceiling"]["vi"]
        ceil_txt = "{:.3f} ± {:.3f} ({} seeds)".format(*mean_sd(ceil), len(ceil)) if ceil else "not run"
        out += ["", f"zero-shot {b['source']}: {zs:.3f}" if zs is not None else "zero-shot: not run",
                f"; fully supervised ceiling: {ceil_txt}", ""]
        arms = [np.mean(b["arms"][arm(default, n)]["vi"]) for n in ns]
        if ceil and zs is not None and np.mean(ceil) < min([zs, *arms]):
            gap = [(zs - a) / (zs - np.mean(ceil)) for a in arms]
            out += [f"Share of the gap from zero-shot to the ceiling closed by {default}: "
                    + ", ".join(f"n = {n}: {g:.0%}" for n, g in zip(ns, gap)), ""]
        elif ceil and zs is not None:
            out += [f"The ceiling is not below both zero-shot and every {default} arm: trained too briefly at this "
                    "budget to be a ceiling (no share of the gap computed).", ""]
    out += ["## Each strategy against random (VI − random, paired on seeds; bootstrap 95 % CI)", "",
            "| strategy | n | " + " | ".join(res["targets"]) + " | pooled |",
            "|---|---|" + "---|" * (len(res["targets"]) + 1)]
    for s in (s for s in strategies if s != RANDOM):
        for n in ns:
            v = versus(res, s, n)
            cells = [f"{r['mean']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]" if (r := v["per_target"].get(t))
                     else "—" for t in res["targets"]]
            p = v["pooled"]
            cells.append(f"**{p['mean']:+.3f} [{p['ci_low']:+.3f}, {p['ci_high']:+.3f}]**" if p else "—")
            out.append(f"| {s} | {n} | " + " | ".join(cells) + " |")
    out += ["", f"## Annotation savings (scratch's n that matches {default} fine-tuned at n = {DECISION_N})", "",
            "| target | fine-tuned VI at n = 4 | scratch reaches it at n | 95 % interval |", "|---|---:|---:|---|"]
    for t, b in res["targets"].items():
        if b["seeds"] and DECISION_N in ns:
            r = savings_record(b, ns, default)
            out.append(f"| {t} | {r['finetuned_vi']:.3f} | {fmt_n(r['n'], max(ns))} | "
                       f"[{fmt_n(r['ci_low'], max(ns))}, {fmt_n(r['ci_high'], max(ns))}] |")
    d = res["decision"]
    out += ["", "## The default strategy", "", f"Rule (pre-registered): {res['rule']}", "",
            f"**Default: `{default}`** — {d['why']}."]
    for name, v in sorted(d.get("vs_random", {}).items()):
        out.append(f"- {name} − random at n = {d['n']}, pooled: {v['mean']:+.3f} [{v['ci_low']:+.3f}, "
                   f"{v['ci_high']:+.3f}]")
    for name, v in sorted(d.get("vs_incumbent", {}).items()):
        out.append(f"- {name} − {INCUMBENT} at n = {d['n']}, pooled: {v['mean']:+.3f} [{v['ci_low']:+.3f}, "
                   f"{v['ci_high']:+.3f}]")
    return "\n".join(out) + "\n"


def plot_vi_vs_n(res: dict, path: Path) -> Path:
    """VI against n (log2 axis) per target: each strategy fine-tuned and scratch (mean ± sd over seeds), with
    the zero-shot source and the fully supervised ceiling as horizontal references."""
    from neuroadda.report import pyplot

    plt = pyplot()
    targets = [t for t, b in res["targets"].items() if b["seeds"]]
    ns = sorted(res["budgets"])
    cols = max(1, min(3, len(targets)))
    rows = max(1, -(-len(targets) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows), squeeze=False, layout="constrained")
    for ax in axes.ravel()[len(targets):]:
        ax.set_visible(False)
    colours = dict(zip(res["strategies"], plt.get_cmap("tab10").colors))
    for ax, t in zip(axes.ravel(), targets):
        b = res["targets"][t]
        for s in res["strategies"] + ["scratch"]:
            m = np.array([np.mean(b["arms"][arm(s, n)]["vi"]) for n in ns])
            sd = np.array([np.std(b["arms"][arm(s, n)]["vi"], ddof=1) for n in ns])
            style = {"color": "black", "ls": "--"} if s == "scratch" else {"color": colours[s]}
            ax.errorbar(ns, m, yerr=sd, marker="o", ms=3, capsize=2, label=s, **style)
        if b.get("zero_shot") is not None:
            ax.axhline(b["zero_shot"], color="grey", ls=":", label="zero-shot (the panel's source)")
        if b["ceiling"]["vi"]:
            c, csd = mean_sd(b["ceiling"]["vi"])
            ax.axhspan(c - csd, c + csd, color="goldenrod", alpha=0.15, lw=0)
            ax.axhline(c, color="goldenrod", lw=1, label="fully supervised, from scratch (mean ± sd)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.set_xlabel("annotated samples n")
        ax.set_ylabel("held-out VI (bits)")
        ax.set_title(f"{t} (from {b['source']}, {len(b['seeds'])} seeds)", fontsize=10)
    if targets:
        handles, labels = axes.ravel()[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)), fontsize=8)
    return save_figure(fig, path)


def write_active_learning(res: dict, out_dir: str | Path) -> dict[str, Path]:
    """``results.json``, ``results.md`` and ``vi_vs_n.png`` into ``out_dir`` (atomically)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": write_json(out_dir / "results.json", res),
             "md": write_text(out_dir / "results.md", al_tables(res))}
    if any(b["seeds"] for b in res["targets"].values()):
        paths["figure"] = plot_vi_vs_n(res, out_dir / "vi_vs_n.png")
    return paths
