"""The active-learning factor of the transfer study: the rule that picks the default strategy, annotation
savings by hand, and the factor end to end on tiny synthetic datasets (shape of results.json, results.md
recomputed from it, reuse of the transfer study's elements)."""

import json

import numpy as np
import pytest

from neuroadda.workflows.study_al_results import RULE, al_tables, decide_strategy, savings, versus


@pytest.mark.parametrize("ns, means, target, expected", [
    ([1, 2, 4, 8], [3.0, 2.5, 2.0, 1.5], 2.0, 4.0),           # reached exactly at a budget
    ([1, 2, 4, 8], [3.0, 2.5, 2.0, 1.5], 2.25, 2 ** 1.5),     # halfway on log2 n between 2 and 4
    ([1, 2, 4, 8], [3.0, 2.5, 2.0, 1.5], 3.5, 1.0),           # scratch is there at once
    ([1, 2, 4, 8], [3.0, 2.9, 2.8, 2.7], 2.0, None),          # never: more than 8
    ([1, 2, 4, 8], [3.0, 2.0, 2.4, 1.0], 2.2, 2 ** 0.8),      # the first crossing counts
])
def test_savings_by_hand(ns, means, target, expected):
    got = savings(ns, means, target)
    assert got == pytest.approx(expected) if expected is not None else got is None


def _record(effects: dict, seeds: int = 6, noise: float = 0.01) -> dict:
    """Two targets, VI = 2 + effect[strategy] + seed noise, scratch 3."""
    rng = np.random.default_rng(0)
    targets = {}
    for t in ("a", "b"):
        base = rng.normal(0, 0.2, seeds)
        arms = {}
        for n in (1, 4):
            for s, e in {**effects, "scratch": 1.0}.items():
                vi = (2 + e + base + rng.normal(0, noise, seeds)).tolist()
                arms[f"{s}@n{n}"] = {"vi": vi, "vi_split": vi, "vi_merge": [0.0] * seeds}
        targets[t] = {"source": "x", "seeds": list(range(seeds)), "arms": arms, "zero_shot": 4.0,
                      "ceiling": {"seeds": [0, 1], "vi": [1.0, 1.1]}}
    return {"targets": targets, "strategies": list(effects), "budgets": [1, 4], "decision_n": 4,
            "source_estimator": "consistency", "rule": RULE}


@pytest.mark.parametrize("effects, default", [
    ({"random": 0.0, "median-uncertainty": -0.3, "k-center": -0.1}, "median-uncertainty"),  # rule 1
    ({"random": 0.0, "median-uncertainty": -0.1, "k-center": -0.4}, "k-center"),            # rule 2
    ({"random": 0.0, "median-uncertainty": 0.2, "k-center": -0.2}, "k-center"),              # rule 2
    ({"random": 0.0, "median-uncertainty": 0.0, "k-center": 0.1}, "random"),                 # rule 3
])
def test_the_preregistered_rule(effects, default):
    res = decide_strategy(_record(effects))
    assert res["default_strategy"] == default, res["decision"]["why"]


def test_pooled_difference_is_the_mean_of_per_target_means():
    res = _record({"random": 0.0, "median-uncertainty": -0.3})
    v = versus(res, "median-uncertainty", 4)
    per = [np.mean(np.subtract(b["arms"]["median-uncertainty@n4"]["vi"], b["arms"]["random@n4"]["vi"]))
           for b in res["targets"].values()]
    assert v["pooled"]["mean"] == pytest.approx(np.mean(per))
    assert v["pooled"]["ci_low"] < v["pooled"]["mean"] < v["pooled"]["ci_high"] < 0


@pytest.mark.integration
def test_active_learning_factor_end_to_end(study_env, capsys):
    from neuroadda.cli.main import main

    tmp_path, cfg = study_env
    cfg.write_text(cfg.read_text().replace("estimators: [mmd2, compat+entropy, zero-shot-vi]",
                                           "estimators: [mmd2, entropy]")
                   + "active_learning:\n  strategies: [random, median-uncertainty]\n  budgets: [1, 2]\n"
                     "  seeds: 2\n  source_estimator: entropy\n  ceiling_seeds: 1\n  ceiling_steps: 3\n")
    assert main(["transfer-study", "--config", str(cfg), "--quiet"]) == 0
    out = tmp_path / "study" / "active_learning"
    res = json.loads((out / "results.json").read_text())
    assert (out / "results.md").read_text() == al_tables(res) and (out / "vi_vs_n.png").is_file()
    assert set(res["targets"]) == {"a", "b"} and res["default_strategy"] in ("random", "median-uncertainty")
    for t, b in res["targets"].items():
        est = json.loads((tmp_path / "study" / t / "estimators" / "entropy.json").read_text())["scores"]
        assert b["source"] == min(sorted(est), key=est.get) and b["seeds"] == [0, 1]
        assert set(b["arms"]) == {f"{s}@n{n}" for s in ("random", "median-uncertainty", "scratch") for n in (1, 2)}
        assert all(len(a["vi"]) == 2 for a in b["arms"].values())
        assert len(b["ceiling"]["vi"]) == 1 and b["zero_shot"] is not None
        # random@n1 is the transfer study's own fine-tune of the source on the shared picks: reused, not rerun
        rec = json.loads((tmp_path / "study" / t / "active" / "n1" / "seed0" / "random.json").read_text())
        shared = tmp_path / "study" / t / "n1" / "seed0" / b["source"] / "eval.json"
        assert rec["from"] == str(shared) and rec["vi"] == json.loads(shared.read_text())["vi"]
        mu = json.loads((tmp_path / "study" / t / "n1" / "seed0" / f"median-uncertainty-{b['source']}" /
                         "samples.json").read_text())
        assert mu["sampling"] == "median-uncertainty" and len(mu["boxes"]) == 1
    assert "active learning: default strategy" in capsys.readouterr().out
