"""Cross-species reading of the transfer study: do targets prefer sources of their own species, and does
realised transfer follow species, imaging modality or MMD²?

Datasets cut from one volume (gala-train / gala-test, the mouse-ac4 halves) are one *item*. Realised transfer
from source s to target t is the within-target z-score of s's mean held-out VI among t's sources (lower = s
transferred better than t's other sources); the transfer distance between two items is the mean of the two
directions. MMD² (the paper's estimator, each backbone's own space) is made a distance the same way. Each is
compared with species divergence (TimeTree, ``datasets/phylogeny.yaml``) and with "same modality class or not"
by an exact Mantel test (all n! relabellings; Spearman, one-sided: do the distances agree?).
"""

from __future__ import annotations

import numpy as np

from neuroadda.metrics.stats import bootstrap_ci, wilcoxon_signed_rank

SCRATCH = "scratch"


def datasets_info(names) -> dict[str, dict]:
    """{name: {"species", "modality", "item"}} from the dataset cards (items: datasets sharing a folder)."""
    from neuroadda.data.cards import get_card
    from neuroadda.selection.modality import modality_class

    cards = {n: get_card(n) for n in names}
    groups: dict[str, list[str]] = {}
    for n, c in cards.items():
        groups.setdefault(c.local_dir or n, []).append(n)
    item = {n: "/".join(sorted(g)) for g in groups.values() for n in g}
    return {n: {"species": c.species, "modality": modality_class(c.modality), "item": item[n]}
            for n, c in cards.items()}


def _z(values: dict[str, float]) -> dict[str, float]:
    v = np.array(list(values.values()), float)
    sd = v.std(ddof=1) if len(v) > 1 else 0.0
    return {k: float((x - v.mean()) / sd) if sd > 0 else 0.0 for k, x in values.items()}


def item_distance(per_target: dict[str, dict[str, float]], info: dict, items: list[str]) -> np.ndarray:
    """(items, items) symmetric distance: mean over both directions of the within-target z-scores in
    ``per_target`` ({target: {source: value}}; lower = closer); NaN where no direction was measured."""
    idx = {it: i for i, it in enumerate(items)}
    acc = np.zeros((len(items), len(items)))
    cnt = np.zeros_like(acc)
    for t, vals in per_target.items():
        for s, z in _z(vals).items():
            i, j = idx[info[t]["item"]], idx[info[s]["item"]]
            if i != j:
                for a, b in ((i, j), (j, i)):
                    acc[a, b] += z
                    cnt[a, b] += 1
    with np.errstate(invalid="ignore"):
        d = acc / cnt
    np.fill_diagonal(d, 0.0)
    return d


def preference_rows(res: dict, info: dict) -> list[dict]:
    """Per target: the best same-species source against the best other-species source (by mean VI), paired on
    seeds (bootstrap 95 % CI of the difference, exact Wilcoxon p)."""
    rows = []
    for t, b in res["targets"].items():
        if not b["seeds"]:
            continue
        srcs = {a: np.asarray(v["vi"], float) for a, v in b["arms"].items() if a != SCRATCH}
        same = {s: v for s, v in srcs.items() if info[s]["species"] == info[t]["species"]}
        other = {s: v for s, v in srcs.items() if info[s]["species"] != info[t]["species"]}
        if not same or not other:
            continue
        bs, bo = min(same, key=lambda s: same[s].mean()), min(other, key=lambda s: other[s].mean())
        d = same[bs] - other[bo]
        m, lo, hi = bootstrap_ci(d)
        rank = sorted(srcs, key=lambda s: srcs[s].mean()).index(bs) + 1
        rows.append({"target": t, "species": info[t]["species"], "same": bs, "other": bo,
                     "same_vi": float(same[bs].mean()), "other_vi": float(other[bo].mean()), "diff": m,
                     "ci_low": lo, "ci_high": hi, "wilcoxon_p": wilcoxon_signed_rank(d),
                     "same_rank": rank, "n_sources": len(srcs),
                     "reading": "prefers its own species" if hi < 0 else
                                "prefers the other species" if lo > 0 else "within noise"})
    return rows


def cross_species(res: dict) -> dict:
    """The cross-species block of results.json (computed from ``res`` and ``res["datasets"]`` alone)."""
    from neuroadda.errors import ConfigError, InputError
    from neuroadda.selection.phylogeny import divergence_matrix, load_tree, mantel_test

    info = res["datasets"]
    items = sorted({v["item"] for v in info.values()})
    vi = {t: {a: float(np.mean(v["vi"])) for a, v in b["arms"].items() if a != SCRATCH}
          for t, b in res["targets"].items() if b["seeds"]}
    mmd = {t: b["estimators"]["mmd2"] for t, b in res["targets"].items() if "mmd2" in b.get("estimators", {})}
    rep = {it: next(n for n in sorted(info) if info[n]["item"] == it) for it in items}
    try:
        species = divergence_matrix([info[rep[it]]["species"] for it in items], load_tree())
    except (ConfigError, InputError) as e:  # no phylogeny file for these cards, or a species not in it
        species, species_note = None, str(e)
    modality = np.array([[float(info[rep[a]]["modality"] != info[rep[b]]["modality"]) for b in items]
                         for a in items])
    transfer = item_distance(vi, info, items)
    out = {"items": items, "species": {it: info[rep[it]]["species"] for it in items},
           "modality": {it: info[rep[it]]["modality"] for it in items},
           "transfer_distance": transfer.tolist(),
           "divergence_mya": None if species is None else species.tolist(),
           "modality_distance": modality.tolist(), "preference": preference_rows(res, info), "mantel": {}}
    pairs = {"transfer ~ species": (transfer, species), "transfer ~ modality": (transfer, modality)}
    if mmd:
        mmd_d = item_distance(mmd, info, items)
        out["mmd2_distance"] = mmd_d.tolist()
        pairs.update({"transfer ~ MMD²": (transfer, mmd_d), "MMD² ~ species": (mmd_d, species),
                      "MMD² ~ modality": (mmd_d, modality)})
    for name, (a, b) in pairs.items():
        if a is None or b is None:
            out["mantel"][name] = {"r": None, "p_value": None, "note": species_note}
        elif np.isfinite(a).all() and np.isfinite(b).all():
            r = mantel_test(a, b)
            out["mantel"][name] = {k: r[k] for k in ("r", "p_value", "n", "n_pairs", "exact", "note")}
        else:
            out["mantel"][name] = {"r": None, "p_value": None, "note": "some pair of items was never measured"}
    return out


def species_tables(cs: dict) -> str:
    """The cross-species section of results.md."""
    def f(x, fmt):
        return "—" if x is None else format(x, fmt)

    lines = ["", "## Across species", "",
             "Best source of the target's own species against the best of the other species (by mean VI; "
             "paired on seeds, bootstrap 95 % CI; rank = place of the best same-species source among all):", "",
             "| target | species | same species: best (VI) | other species: best (VI) | same − other [95% CI] "
             "| Wilcoxon p | rank | reading |", "|---|---|---|---|---|---:|---|---|"]
    for r in cs["preference"]:
        lines.append(f"| {r['target']} | *{r['species']}* | {r['same']} ({r['same_vi']:.3f}) | {r['other']} "
                     f"({r['other_vi']:.3f}) | {r['diff']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] | "
                     f"{r['wilcoxon_p']:.3f} | {r['same_rank']} of {r['n_sources']} | {r['reading']} |")
    lines += ["", f"Mantel tests over {len(cs['items'])} items ({', '.join(cs['items'])}; exact over all "
              "relabellings, Spearman, one-sided): transfer distance = mean within-target z-score of realised VI "
              "over both directions.", "", "| matrices | r | p |", "|---|---:|---:|"]
    for name, m in cs["mantel"].items():
        lines.append(f"| {name} | {f(m['r'], '.3f')} | {f(m['p_value'], '.3f')} |")
    return "\n".join(lines) + "\n"
