"""How well does a source-selection estimator predict realised transfer? (pure numpy; lower score = predicted
better, lower VI = better.)

Per target: Spearman and Kendall between scores and mean realised VI, top-1 hit, regret (bits) of the
estimator's pick. Pooled over targets: mean Spearman with a within-target permutation test (scores shuffled
among the sources of each target; raw VI is never pooled across targets). Baselines every estimator must
beat: a random order (in expectation) and "same modality first". The realised ranking's own noise ceiling is
the rank agreement between disjoint halves of the seeds.
"""

from __future__ import annotations

import itertools

import numpy as np

from neuroadda.metrics.stats import kendall_tau, rankdata, spearman


def pick_regret(scores: dict[str, float], vi: dict[str, float]) -> tuple[float, bool]:
    """(regret in bits, top-1 hit) of picking the lowest score; ties in score are averaged over (a random pick
    among the tied sources in expectation)."""
    srcs = [s for s in scores if s in vi and np.isfinite(scores[s])]
    if not srcs:
        return float("nan"), False
    best_vi = min(vi[s] for s in vi)
    low = min(scores[s] for s in srcs)
    picked = [s for s in srcs if scores[s] == low]
    regret = float(np.mean([vi[s] for s in picked]) - best_vi)
    hit = float(np.mean([vi[s] == best_vi for s in picked]))
    return regret, hit


def per_target(scores: dict[str, float], vi: dict[str, float]) -> dict:
    """Agreement of one estimator's ``scores`` with realised mean ``vi`` on one target (same source keys)."""
    srcs = [s for s in vi if s in scores and np.isfinite(scores[s])]
    a, b = [scores[s] for s in srcs], [vi[s] for s in srcs]
    regret, hit = pick_regret({s: scores[s] for s in srcs}, vi)
    return {"spearman": spearman(a, b), "kendall": kendall_tau(a, b), "top1": hit, "regret": regret,
            "n_sources": len(srcs)}


def pooled(per_target_scores: dict[str, dict[str, float]], per_target_vi: dict[str, dict[str, float]], *,
           permutations: int = 10_000, seed: int = 0) -> dict:
    """Mean over targets of Spearman / top-1 / regret, and a one-sided permutation p-value for the mean
    Spearman (scores permuted among each target's sources; H0: the scores carry no information)."""
    targets = [t for t in per_target_vi if t in per_target_scores]
    rows = {t: per_target(per_target_scores[t], per_target_vi[t]) for t in targets}
    rho = [rows[t]["spearman"] for t in targets if np.isfinite(rows[t]["spearman"])]
    observed = float(np.mean(rho)) if rho else float("nan")
    rng = np.random.default_rng(seed)
    keyed = {t: ([per_target_scores[t][s] for s in per_target_vi[t] if s in per_target_scores[t]],
                 [per_target_vi[t][s] for s in per_target_vi[t] if s in per_target_scores[t]]) for t in targets}
    # Spearman of permuted scores = Pearson of permuted score ranks with the VI ranks; the index permutations
    # are drawn in the same order as one rng.permutation(scores) per target per round would draw them
    idx = {t: np.empty((permutations, len(a)), int) for t, (a, _) in keyed.items()}
    for i in range(permutations):
        for t, (a, _) in keyed.items():
            idx[t][i] = rng.permutation(len(a))
    rhos = []
    for t, (a, b) in keyed.items():
        ra, rb = rankdata(a), rankdata(b)
        if len(ra) < 2 or ra.std() == 0 or rb.std() == 0:
            continue  # NaN in every round: left out of the mean, as in the observed statistic
        x = ra[idx[t]] - ra.mean()
        y = rb - rb.mean()
        rhos.append(x @ y / np.sqrt((x ** 2).sum(1) * (y ** 2).sum()))
    count = int(np.count_nonzero(np.mean(rhos, axis=0) >= observed - 1e-12)) if rhos else 0
    return {"per_target": rows, "spearman": observed,
            "top1": float(np.mean([rows[t]["top1"] for t in targets])) if targets else float("nan"),
            "regret": float(np.mean([rows[t]["regret"] for t in targets])) if targets else float("nan"),
            "p_value": (count + 1) / (permutations + 1) if np.isfinite(observed) else float("nan")}


def random_order_baseline(per_target_vi: dict[str, dict[str, float]]) -> dict:
    """What a random ranking achieves in expectation: Spearman 0, top-1 1/k, regret = mean VI - best VI."""
    rows = {}
    for t, vi in per_target_vi.items():
        v = np.array(list(vi.values()), float)
        rows[t] = {"spearman": 0.0, "kendall": 0.0, "top1": float(np.mean(v == v.min())),
                   "regret": float(v.mean() - v.min()), "n_sources": len(v)}
    return {"per_target": rows, "spearman": 0.0, "top1": float(np.mean([r["top1"] for r in rows.values()])),
            "regret": float(np.mean([r["regret"] for r in rows.values()])), "p_value": 1.0}


def modality_scores(target_modality: str, source_modalities: dict[str, str]) -> dict[str, float]:
    """'Same modality first': 0 for a source imaged like the target, 1 otherwise."""
    return {s: 0.0 if m == target_modality else 1.0 for s, m in source_modalities.items()}


def noise_ceiling(vi_by_seed: dict[str, list[float]]) -> float:
    """Mean Spearman between the sources' mean VI over one half of the seeds and over the other half, across
    every split of the seeds into two disjoint halves (sizes floor(k/2) and the rest). It is how well a
    perfect estimator could agree with one noisy realised ranking; NaN with fewer than 2 seeds or sources."""
    srcs = list(vi_by_seed)
    k = min(len(v) for v in vi_by_seed.values()) if srcs else 0
    if k < 2 or len(srcs) < 2:
        return float("nan")
    m = np.array([vi_by_seed[s][:k] for s in srcs], float)  # (sources, seeds)
    vals = []
    for half in itertools.combinations(range(k), k // 2):
        rest = [i for i in range(k) if i not in half]
        r = spearman(m[:, list(half)].mean(1), m[:, rest].mean(1))
        if np.isfinite(r):
            vals.append(r)
    return float(np.mean(vals)) if vals else float("nan")


def choose_default(assessed: dict[str, dict], candidates: list[str], *, incumbent: str = "mmd2") -> dict:
    """The pre-registered rule for the default estimator among ``candidates`` (names in ``assessed``, the output
    of :func:`pooled` per estimator): lowest mean regret, ties broken by higher top-1 then higher pooled
    Spearman; it must also beat the random order's regret, and it must have no larger regret than the
    ``incumbent`` on any target, else the incumbent stays. Returns ``{"name", "why"}``."""
    rows = {n: assessed[n] for n in candidates if n in assessed and np.isfinite(assessed[n]["regret"])}
    if not rows:
        return {"name": incumbent, "why": "no candidate was assessed"}
    key = {n: (round(r["regret"], 9), -r["top1"], -(r["spearman"] if np.isfinite(r["spearman"]) else -1))
           for n, r in rows.items()}
    best = min(rows, key=lambda n: key[n])
    rand = assessed.get("random order", {}).get("regret", float("inf"))
    inc = assessed.get(incumbent)
    if best != incumbent and inc is not None:
        worse = [t for t, r in rows[best]["per_target"].items()
                 if r["regret"] > inc["per_target"].get(t, {}).get("regret", float("inf")) + 1e-12]
        if worse:
            return {"name": incumbent, "why": f"{best} had the lowest mean regret but a larger regret than "
                                              f"{incumbent} on {', '.join(worse)}"}
    if not rows[best]["regret"] < rand:
        return {"name": best, "why": f"lowest mean regret ({rows[best]['regret']:.3f} bits) of the candidates, "
                                     f"but not below a random order's ({rand:.3f}): no estimator beat chance"}
    return {"name": best, "why": f"lowest mean regret ({rows[best]['regret']:.3f} bits; random order {rand:.3f}), "
                                 f"top-1 {rows[best]['top1']:.2f}, pooled Spearman {rows[best]['spearman']:.2f}"}
