"""Blocks of the transfer study and the active-learning study, from their committed ``results.json``.

Whatever targets, sources, budgets and estimators a ``results.json`` holds are rendered; fields this script does
not know are shown as they are (``transfer.extra``), so a richer study renders without a change here. The
statistics are the study's own (:mod:`neuroadda.workflows.study_results`, :mod:`neuroadda.metrics.stats`).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

STUDY = "docs/results/transfer_study/results.json"
ACTIVE = "docs/results/active_learning/results.json"
KNOWN = {"targets", "by_n", "missing", "default_estimator", "default_labelled_estimator", "default_why", "study"}


# ------------------------------------------------------------------------------------------------- helpers
def load(root: Path, rel: str) -> dict | None:
    path = root / rel
    return json.loads(path.read_text()) if path.is_file() else None


def num(x, d: int = 3, sign: bool = False) -> str:
    """``x`` with ``d`` decimals ('—' for None/NaN)."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:+.{d}f}" if sign else f"{x:.{d}f}"


def pm(mean, sd, d: int = 3) -> str:
    return f"{num(mean, d)} ± {num(sd, d)}"


def interval(lo, hi, d: int = 3, sign: bool = True) -> str:
    return f"[{num(lo, d, sign)}, {num(hi, d, sign)}]"


def table(header: list[str], rows: list[list], align: str = "") -> str:
    """A Markdown table; ``align`` holds one of 'l'/'r' per column (default left)."""
    def cell(c) -> str:
        return str(c).replace("|", "\\|").replace("\n", " ")

    sep = ["---:" if a == "r" else "---" for a in (align or "l" * len(header)).ljust(len(header), "l")]
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join(sep) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def names(items) -> str:
    items = [f"`{i}`" for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1] if items else "none"


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# ------------------------------------------------------------------------------------------ transfer study
def _study(root: Path) -> dict:
    res = load(root, STUDY)
    if res is None:
        raise SystemExit(f"{STUDY} is missing: the transfer study's blocks need it")
    return res


def _done(res: dict) -> list[str]:
    return [t for t, b in res["targets"].items() if b.get("seeds")]


def design(root: Path, arg=None) -> str:
    res = _study(root)
    st, targets = res.get("study", {}), list(res["targets"])
    sources = st.get("sources") or sorted({a for b in res["targets"].values() for a in b["arms"] if a != "scratch"})
    seeds = sorted({len(b.get("seeds", [])) for b in res["targets"].values()})
    est = sorted({e for b in res["targets"].values() for e in b.get("estimators", {})})
    budgets = st.get("budgets") or sorted(int(n) for n in res.get("by_n", {}))
    return (f"This study: {plural(len(targets), 'target')} ({names(targets)}); "
            f"{plural(len(sources), 'candidate source')} ({names(sources)}), never a target's own crop; "
            f"n = {', '.join(map(str, budgets))} samples per (target, seed), drawn "
            f"{'at random' if st.get('sampling', 'random') == 'random' else 'by ' + st['sampling']} without any "
            f"source's model and shared by every source and scratch; "
            f"{' to '.join(map(str, (seeds[0], seeds[-1]) if len(seeds) > 1 else seeds))} complete seeds per target; "
            f"{plural(len(est), 'estimator')} scored ({names(est)}).")


def study_tables(root: Path, arg=None) -> str:
    """``results.md`` as the study writes it (:func:`~neuroadda.workflows.study_results.tables`), headings
    moved two levels down."""
    from neuroadda.workflows.study_results import tables

    text = tables(_study(root))
    text = re.sub(r"^# .*\n\n", "", text)
    return re.sub(r"^(#+) ", lambda m: "#" * (len(m[1]) + 1) + " ", text, flags=re.M)


def _seed_cell(arm: dict, k: int) -> str:
    """'VI (split + merge)' of seed index ``k``; VI alone where the record has no split/merge; '·' if absent."""
    vi = arm.get("vi", [])
    if k >= len(vi):
        return "·"
    if len(arm.get("vi_split", [])) > k and len(arm.get("vi_merge", [])) > k:
        return f"{num(vi[k])} ({num(arm['vi_split'][k])} + {num(arm['vi_merge'][k])})"
    return num(vi[k])


def per_seed(root: Path, arg=None) -> str:
    """One table per target: every arm's VI (split + merge) on every seed."""
    res, out = _study(root), []
    for t in _done(res):
        b = res["targets"][t]
        seeds = b["seeds"]
        rows = [[a] + [_seed_cell(v, k) for k in range(len(seeds))] for a, v in b["arms"].items()]
        out += [f"**{t}** (n = {b['n']}; VI (split + merge), bits)", "",
                table(["arm"] + [f"seed {s}" for s in seeds], rows, "l" + "r" * len(seeds)), ""]
    return "\n".join(out)


def by_n(root: Path, arg=None) -> str:
    res = _study(root)
    ns = sorted(res.get("by_n", {}), key=int)
    if len(ns) < 2:
        return f"One budget only (n = {', '.join(ns) or '—'}): VI against n needs several."
    rows = []
    for t in res["targets"]:
        arms = res["by_n"][ns[0]].get(t, {}).get("arms", {})
        for a in arms:
            cells = []
            for n in ns:
                v = res["by_n"][n].get(t, {}).get("arms", {}).get(a, {}).get("vi", [])
                cells.append(pm(*mean_sd(v)) if v else "·")
            rows.append([t, a, *cells])
    return table(["target", "arm", *[f"n = {n}" for n in ns]], rows, "ll" + "r" * len(ns))


def mean_sd(v) -> tuple[float, float]:
    """(mean, sd) of ``v`` (:func:`neuroadda.metrics.stats.mean_sd`); NaNs when empty."""
    from neuroadda.metrics.stats import mean_sd as stats_mean_sd

    return stats_mean_sd(v) if len(v) else (float("nan"), float("nan"))


_ASSESSED: dict[str, dict] = {}


def assess(res: dict) -> dict:
    """:func:`~neuroadda.workflows.study_results.assess_estimators`, once per distinct record (it permutes)."""
    from neuroadda.workflows.study_results import assess_estimators

    key = json.dumps(res, sort_keys=True, default=str)
    if key not in _ASSESSED:
        _ASSESSED[key] = assess_estimators(res)
    return _ASSESSED[key]


def best_rows(res: dict) -> list[dict]:
    """Per target: scratch, the best source (lowest mean VI) and its paired difference to scratch."""
    from neuroadda.workflows.study_results import SCRATCH, transfer_table

    rows = []
    for t in _done(res):
        tt = {r["arm"]: r for r in transfer_table(res["targets"][t])}
        srcs = [r for a, r in tt.items() if a != SCRATCH and "diff" in r]
        if SCRATCH not in tt or not srcs:
            continue
        best = min(srcs, key=lambda r: r["mean"])
        rows.append({"target": t, "scratch": tt[SCRATCH], "best": best,
                     "better": sum(r["positive_transfer"] for r in srcs),
                     "negative": sum(r["negative_transfer"] for r in srcs), "sources": len(srcs)})
    return rows


def reading(r: dict) -> str:
    return ("better than scratch" if r["positive_transfer"] else "negative transfer" if r["negative_transfer"]
            else "within noise")


def summary(root: Path, arg=None) -> str:
    """What transfers and which estimator picks, in sentences computed from the json."""
    res = _study(root)
    rows = best_rows(res)
    beat = [r for r in rows if r["best"]["positive_transfer"]]
    neg = [(r["target"], r["negative"]) for r in rows if r["negative"]]
    lines = [f"- **What transfers.** Fine-tuning from the best source beat scratch, with a 95 % interval "
             f"excluding 0, on {len(beat)} of {plural(len(rows), 'target')}"
             + (f" (by {num(min(-r['best']['diff'] for r in beat))}–{num(max(-r['best']['diff'] for r in beat))} "
                f"bits)" if beat else "") + ". "
             + ("Negative transfer (worse than scratch, interval above 0): "
                + "; ".join(f"{t}: {plural(k, 'source')}" for t, k in neg) + "." if neg
                else "No source transferred negatively.")]
    same = [r["target"] for r in rows if res["targets"][r["target"]].get("source_modality", {}).get(r["best"]["arm"])
            == res["targets"][r["target"]].get("modality")]
    if rows and all("modality" in res["targets"][r["target"]] for r in rows):
        lines.append(f"- **Modality.** The best source shares the target's imaging modality on {len(same)} of "
                     f"{plural(len(rows), 'target')}" + (f" ({names(same)})." if same else "."))
    for r in rows:
        b = r["best"]
        lines.append(f"- `{r['target']}`: best `{b['arm']}` {pm(b['mean'], b['sd'])} against scratch "
                     f"{pm(r['scratch']['mean'], r['scratch']['sd'])}; paired {num(b['diff'], sign=True)} "
                     f"{interval(b['ci_low'], b['ci_high'])} ({reading(b)}); {r['better']} of "
                     f"{plural(r['sources'], 'source')} better than scratch, {r['negative']} worse.")
    a = assess(res)
    est, default = a["estimators"], res.get("default_estimator")
    if default in est:
        e = est[default]
        comp = [f"{n} {num(est[n]['regret'])}" for n in ("mmd2", "random order", "same modality first") if n in est]
        k = len([n for n in est if n not in ("random order", "same modality first")])
        lines.append(f"- **Which estimator picks.** The default, `{default}`: mean regret {num(e['regret'])} bits "
                     f"({', '.join(comp)}), top-1 {num(e['top1'], 2)}, pooled Spearman {num(e['spearman'], 2)} "
                     f"(permutation p = {num(e['p_value'])}) against a mean noise ceiling of "
                     f"{num(a['noise_ceiling_mean'], 2)}. It was chosen among {plural(k, 'estimator')} and its p is "
                     f"not corrected for that (Bonferroni over {k} asks for p < {num(0.05 / k, 4)}).")
    return "\n".join(lines)


def extra(root: Path, arg=None) -> str:
    """Fields of results.json this script does not render otherwise, shown as they are."""
    res = _study(root)
    rest = {k: v for k, v in res.items() if k not in KNOWN}
    out = [f"{plural(len(res.get('missing', [])), 'element')} of the study missing."]
    for k, v in rest.items():
        text = json.dumps(v, indent=1, default=str).splitlines()
        cut = len(text) > 60
        out += ["", f"**{k}**" + (" (first 60 lines)" if cut else ""), "", "```json", *text[:60], "```"]
    return "\n".join(out)


def headline(root: Path, arg=None) -> str:
    """The README's table: per target, scratch against the best source, and the default estimator's pick."""
    res = _study(root)
    a = assess(res)
    default = res.get("default_estimator")
    per = a["estimators"].get(default, {}).get("per_target", {})
    rows = []
    for r in best_rows(res):
        b, p = r["best"], per.get(r["target"], {})
        seeds = len(res["targets"][r["target"]]["seeds"])
        rows.append([r["target"], seeds, pm(r["scratch"]["mean"], r["scratch"]["sd"]),
                     f"{b['arm']}: {pm(b['mean'], b['sd'])}",
                     f"{num(b['diff'], sign=True)} {interval(b['ci_low'], b['ci_high'])}",
                     num(p.get("regret")) if p else "—"])
    head = ["target", "seeds", "scratch VI", "best source: VI", "best − scratch [95 % CI]",
            f"regret of `{default}`'s pick"]
    return (table(head, rows, "lrrrrr") + "\n\nHeld-out VI in bits (mean ± sd over seeds; lower is better); the "
            "interval is a paired bootstrap over seeds; regret = VI of the default estimator's pick minus the best "
            "source's VI.")


def decision(root: Path, arg=None) -> str:
    """The README's reading of the study: which default estimators the pre-registered rule chose and why, and
    the cross-species rows (same-species preference, Mantel tests)."""
    res = _study(root)
    why = res.get("default_why") or {}
    lines = []
    for key, label, reason in (("default_estimator", "before annotation", "label-free"),
                               ("default_labelled_estimator", "with labelled samples (`--labels`)", "labelled")):
        name = res.get(key)
        if name:
            lines.append(f"- **Default estimator {label}: `{name}`** — {why.get(reason, 'not decided')}.")
    cs = res.get("cross_species") or {}
    for r in cs.get("preference", []):
        lines.append(f"- **`{r['target']}`** (*{r['species']}*): best same-species source `{r['same']}` against the "
                     f"best other-species source `{r['other']}`: {num(r['diff'], sign=True)} "
                     f"{interval(r['ci_low'], r['ci_high'])} bits, Wilcoxon p = {num(r['wilcoxon_p'])} "
                     f"({r['reading']}).")
    mantel = cs.get("mantel") or {}
    if mantel:
        parts = [f"{k}: r = {num(m['r'], 2)}, p = {num(m['p_value'])}" for k, m in mantel.items()
                 if k.startswith("transfer") and m.get("r") is not None]
        lines.append(f"- **Does realised transfer follow species, modality or MMD²?** Mantel tests over "
                     f"{plural(len(cs['items']), 'dataset')}: " + "; ".join(parts) + ".")
    return "\n".join(lines) if lines else "The study's decision is not recorded yet."


# --------------------------------------------------------------------------------------- active learning
def active_learning(root: Path, arg=None) -> str:
    """The factor's tables as ``results.md`` has them (strategies against random with CIs, annotation savings,
    the ceiling, the default strategy and why), without its title."""
    from neuroadda.workflows.study_al_results import al_tables

    res = load(root, ACTIVE)
    if res is None:
        return (f"No active-learning study is committed yet (`{ACTIVE}`); this section fills in when it lands "
                "(`python docs/render.py`).")
    text = al_tables(res).split("\n", 2)[2].strip()  # drop the '# ...' title line and the blank after it
    return text.replace("\n## ", "\n### ")


def active_headline(root: Path, arg=None) -> str:
    """The README's active-learning lines: each strategy against random pooled over targets at every budget,
    per target the default strategy at n = 4 against scratch and scratch's matching n, the default and why."""
    from neuroadda.workflows.study_al_results import DECISION_N, RANDOM, arm, fmt_n, savings_record, versus

    res = load(root, ACTIVE)
    if res is None:
        return f"No active-learning study is committed yet (`{ACTIVE}`)."
    ns, default = sorted(res["budgets"]), res["default_strategy"]
    done = {t: b for t, b in res["targets"].items() if b["seeds"]}
    rows = []
    for s in (s for s in res["strategies"] if s != RANDOM):
        pooled = [versus(res, s, n)["pooled"] for n in ns]
        rows.append([s] + [f"{num(p['mean'], sign=True)} {interval(p['ci_low'], p['ci_high'])}" if p else "—"
                           for p in pooled])
    vs = table(["strategy − random (pooled over targets)"] + [f"n = {n}" for n in ns], rows, "l" + "r" * len(ns))
    rows = []
    for t, b in done.items():
        r = savings_record(b, ns, default) if DECISION_N in ns else None
        rows.append([t, b["source"], len(b["seeds"]), pm(*mean_sd(b["arms"][arm(default, DECISION_N)]["vi"])),
                     pm(*mean_sd(b["arms"][arm("scratch", DECISION_N)]["vi"])),
                     "—" if r is None else fmt_n(r["n"], max(ns))])
    per = table(["target", "source", "seeds", f"{default}, n = {DECISION_N}", f"scratch, n = {DECISION_N}",
                 "scratch matches it at n"], rows, "lllrrr")
    return (vs + "\n\nVI difference in bits, paired on seeds within each target, mean over targets with a "
            "stratified bootstrap 95 % CI (below 0: the strategy beats random).\n\n" + per
            + f"\n\n**Default strategy: `{default}`** ({res['decision']['why']}; the rule was written before the "
            "runs).")


# --------------------------------------------------------------------------------------- imported models
IMPORTED = {"package": "gala-train exported as a bioimage.io package, imported back",
            "native": "the same backbone as a NeuroADDA checkpoint",
            "plain-boundary": "a plain-PyTorch boundary UNet (TorchScript + sidecar)"}


def imported(root: Path, arg=None) -> str:
    """The README's rows for a lab's own models: fine-tuned on neuroproof (n = 4) against their own zero-shot
    VI, paired on seeds (docs/results/imported/finetune_neuroproof*.json; every arm at its largest seed count)."""
    rows, seen = [], set()
    for rel in (f"docs/results/imported/finetune_neuroproof{x}.json" for x in ("", "_plain")):
        res = load(root, rel)
        for a, d in ((res or {}).get("finetuned_minus_zero_shot") or {}).items():
            if a in seen:
                continue
            seen.add(a)
            rows.append([IMPORTED.get(a, a), len(d["per_seed"]), num(res["zero_shot"][a]["vi"]),
                         pm(*mean_sd(res["arms"][a]["vi"])),
                         f"{num(d['mean'], sign=True)} {interval(*d['ci95'])}",
                         "better than its zero-shot" if d["ci95"][1] < 0 else
                         "worse" if d["ci95"][0] > 0 else "within noise"])
    if not rows:
        return "No imported-model results are committed yet (`docs/results/imported/`)."
    return (table(["model", "seeds", "zero-shot VI", "fine-tuned VI", "fine-tuned − zero-shot [95 % CI]", "reading"],
                  rows, "lrrrrl")
            + "\n\nHeld-out VI in bits on neuroproof after fine-tuning on 4 samples; paired on seeds, bootstrap CI.")


# --------------------------------------------------------------------------------------- a lab's volume
def lab_path(root: Path, arg=None) -> str:
    """The README's lab-path table: every step of bench/lab_path.py on a precomputed volume, seconds and peak
    memory per size (docs/results/lab_path/lab_path_<size>.json), and select-samples' cost per scored voxel
    relative to block-wise predict's per voxel."""
    runs = {n: r for n in (1024, 512) if (r := load(root, f"docs/results/lab_path/lab_path_{n}.json"))}
    if not runs:
        return "No lab-path run is committed yet (`docs/results/lab_path/`)."
    steps = list(dict.fromkeys(k for r in runs.values() for k in r["steps"]))

    def cell(r, k):
        st = r["steps"].get(k)
        if st is None:
            return "not run"
        mem = max(st["peak_rss_gb"], st.get("workers_peak_rss_gb") or 0)
        ratio = r.get("ratios", {}).get(k)
        return f"{st['seconds']:.0f} s, {mem:.2f} GB" + (f"; {ratio:.2f}× predict per voxel" if ratio else "")
    rows = [[k] + [cell(r, k) for r in runs.values()] for k in steps]
    return (table(["step"] + [f"{n}³ ({runs[n]['workers']} workers, {runs[n]['cpus']} cores)" for n in runs], rows)
            + "\n\nPeak memory is the largest of the command's process and each worker's; the ratio is "
            "select-samples' seconds per scored voxel over block-wise predict's seconds per voxel.")


BLOCKS = {"transfer.design": design, "transfer.tables": study_tables, "transfer.per_seed": per_seed,
          "transfer.by_n": by_n, "transfer.summary": summary, "transfer.extra": extra, "headline": headline,
          "transfer.decision": decision, "active_learning": active_learning, "active.headline": active_headline,
          "imported": imported, "lab_path": lab_path}
