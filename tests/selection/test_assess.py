"""Estimator assessment and the study's paired tables, by hand."""

import numpy as np
import pytest

from neuroadda.selection.assess import (
    modality_scores,
    noise_ceiling,
    per_target,
    pick_regret,
    pooled,
    random_order_baseline,
)
from neuroadda.workflows.study_results import tables, transfer_table


def test_pick_regret_and_rank_agreement_by_hand():
    scores, vi = {"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 2.0, "b": 1.0, "c": 3.0}
    assert pick_regret(scores, vi) == (1.0, 0.0)
    r = per_target(scores, vi)
    assert r["spearman"] == pytest.approx(0.5)  # ranks (1,2,3) vs (2,1,3): 1 - 6*2/24
    assert r["kendall"] == pytest.approx(1 / 3)  # 2 concordant, 1 discordant of 3 pairs
    # a tie in score: the pick is either source, regret averaged
    assert pick_regret({"a": 0.0, "b": 0.0, "c": 1.0}, vi) == (0.5, 0.5)


def test_random_and_modality_baselines():
    base = random_order_baseline({"t": {"a": 1.0, "b": 2.0, "c": 3.0}})
    assert base["regret"] == pytest.approx(1.0) and base["top1"] == pytest.approx(1 / 3) and base["spearman"] == 0
    assert modality_scores("FIB-SEM", {"a": "FIB-SEM", "b": "ssTEM"}) == {"a": 0.0, "b": 1.0}


def test_pooled_permutation_p_for_a_perfect_estimator():
    vi = {t: {s: float(i) for i, s in enumerate("abcd")} for t in ("t1", "t2")}
    res = pooled(vi, vi, permutations=5000, seed=0)
    assert res["spearman"] == pytest.approx(1.0) and res["top1"] == 1.0 and res["regret"] == 0.0
    # P(mean rho = 1 under H0) = (1/24)^2 ~ 0.0017
    assert res["p_value"] < 0.01
    anti = pooled({t: {s: -v for s, v in d.items()} for t, d in vi.items()}, vi, permutations=2000)
    assert anti["spearman"] == pytest.approx(-1.0) and anti["p_value"] > 0.9


def test_noise_ceiling():
    stable = {"a": [1.0, 1.1, 0.9, 1.0], "b": [2.0, 2.1, 1.9, 2.0], "c": [3.0, 3.2, 2.9, 3.1]}
    assert noise_ceiling(stable) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    noisy = {s: list(rng.normal(0, 1, 6)) for s in "abcd"}
    assert -1 <= noise_ceiling(noisy) < 0.9
    assert np.isnan(noise_ceiling({"a": [1.0], "b": [2.0]}))


def _block(scratch, arms):
    return {"n": 4, "seeds": list(range(len(scratch))),
            "arms": {**{a: {"vi": v, "vi_split": v, "vi_merge": [0] * len(v)} for a, v in arms.items()},
                     "scratch": {"vi": scratch, "vi_split": scratch, "vi_merge": [0] * len(scratch)}},
            "zero_shot": {a: 4.0 for a in arms}, "estimators": {"mmd2": {"good": 0.1, "bad": 0.2}},
            "modality": "FIB-SEM", "source_modality": {"good": "ssTEM", "bad": "FIB-SEM"}}


def test_transfer_table_flags_positive_and_negative_transfer():
    rows = {r["arm"]: r for r in transfer_table(_block([2.0, 2.0, 2.0], {"good": [1.0, 1.2, 0.8],
                                                                          "bad": [3.0, 2.9, 3.2]}))}
    g, b = rows["good"], rows["bad"]
    assert g["diff"] == pytest.approx(-1.0) and g["positive_transfer"] and not g["negative_transfer"]
    assert g["wilcoxon_p"] == pytest.approx(2 / 8)  # 3 negative differences: the most extreme of 2^3
    assert b["negative_transfer"] and b["ci_low"] > 0
    assert rows["scratch"]["mean"] == 2.0 and "diff" not in rows["scratch"]


def test_results_md_reads_the_numbers():
    res = {"targets": {"t": _block([2.0, 2.0, 2.0], {"good": [1.0, 1.2, 0.8], "bad": [3.0, 2.9, 3.2]})}}
    md = tables(res)
    assert "| t (n=4, 3) | 3.033 ± 0.153 | 1.000 ± 0.200 | 2.000 ± 0.000 |" in md
    assert "| t | good | 4.000 | -1.000" in md and "better than scratch" in md and "negative transfer" in md
    assert "| mmd2 | 1.00 |" in md  # good (0.1) ranked before bad (0.2): Spearman 1 over 2 sources


def _row(regrets: dict, top1=0.5, rho=0.0):
    return {"per_target": {t: {"regret": r} for t, r in regrets.items()},
            "regret": float(np.mean(list(regrets.values()))), "top1": top1, "spearman": rho}


def test_choose_default_lowest_regret_ties_by_top1_then_spearman():
    from neuroadda.selection.assess import choose_default

    rand = _row({"t1": 0.3, "t2": 0.3})
    est = {"random order": rand, "mmd2": _row({"t1": 0.2, "t2": 0.2}),
           "a": _row({"t1": 0.1, "t2": 0.1}, top1=0.5), "b": _row({"t1": 0.1, "t2": 0.1}, top1=1.0, rho=0.1),
           "c": _row({"t1": 0.1, "t2": 0.1}, top1=1.0, rho=0.5)}
    assert choose_default(est, ["mmd2", "a", "b", "c"])["name"] == "c"
    assert choose_default(est, ["mmd2", "a", "b"])["name"] == "b"
    assert choose_default(est, ["mmd2", "a"])["name"] == "a"


def test_choose_default_keeps_the_incumbent_when_the_winner_is_worse_on_one_target():
    from neuroadda.selection.assess import choose_default

    est = {"random order": _row({"t1": 0.5, "t2": 0.5}), "mmd2": _row({"t1": 0.2, "t2": 0.0}),
           "x": _row({"t1": 0.0, "t2": 0.1})}  # mean 0.05 < 0.1, but worse than mmd2 on t2
    out = choose_default(est, ["mmd2", "x"])
    assert out["name"] == "mmd2" and "t2" in out["why"]


def test_choose_default_says_when_nothing_beats_chance():
    from neuroadda.selection.assess import choose_default

    est = {"random order": _row({"t1": 0.1}), "mmd2": _row({"t1": 0.2})}
    out = choose_default(est, ["mmd2"])
    assert out["name"] == "mmd2" and "no estimator beat chance" in out["why"]
    assert choose_default({}, ["mmd2"])["name"] == "mmd2"
