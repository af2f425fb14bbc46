"""The committed transfer study (docs/results/transfer_study/): results.md is exactly what results.json gives,
its numbers recomputed here independently (numpy, scipy), the record has the shape the issue asks for, and the
tool's default estimators are the ones the study chose."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from neuroadda.selection import ranking
from neuroadda.workflows.study_results import tables

DIR = Path(__file__).resolve().parents[2] / "docs" / "results" / "transfer_study"


@pytest.fixture(scope="module")
def res():
    return json.loads((DIR / "results.json").read_text())


def test_results_md_is_what_results_json_gives(res):
    assert tables(res) == (DIR / "results.md").read_text()


def test_the_record_covers_two_species_every_pair_and_eight_seeds(res):
    assert len(res["targets"]) >= 5 and "mouse-ac4-b" in res["targets"]
    assert len({res["datasets"][t]["species"] for t in res["targets"]}) >= 2
    for t, b in res["targets"].items():
        sources = [a for a in b["arms"] if a != "scratch"]
        assert len(sources) >= 4 and "scratch" in b["arms"] and t not in sources
        assert len(b["seeds"]) >= 8
        for arm in b["arms"].values():
            assert len(arm["vi"]) == len(arm["vi_split"]) == len(arm["vi_merge"]) == len(b["seeds"])
            np.testing.assert_allclose(arm["vi"], np.add(arm["vi_split"], arm["vi_merge"]), atol=1e-9)
        assert set(b["zero_shot"]) == set(sources)
        for name, scores in b["estimators"].items():
            assert set(scores) == set(sources), (t, name)


def test_vi_matrix_numbers_recomputed(res):
    md = (DIR / "results.md").read_text()
    for t, b in res["targets"].items():
        row = next(line for line in md.splitlines() if line.startswith(f"| {t} (n="))
        for arm, v in b["arms"].items():
            assert f"{np.mean(v['vi']):.3f} ± {np.std(v['vi'], ddof=1):.3f}" in row, (t, arm)


def test_paired_differences_recomputed(res):
    md = (DIR / "results.md").read_text()
    for t, b in res["targets"].items():
        sc = np.asarray(b["arms"]["scratch"]["vi"])
        for arm, v in b["arms"].items():
            if arm == "scratch":
                continue
            d = np.asarray(v["vi"]) - sc
            line = next(ln for ln in md.splitlines() if ln.startswith(f"| {t} | {arm} |"))
            assert f"{d.mean():+.3f} [" in line, (t, arm, line)
            p = float(re.search(r"\] \| ([0-9.]+) \|", line).group(1))
            if np.any(d != 0):
                ref = stats.wilcoxon(d, method="exact").pvalue  # two-sided exact signed-rank test
                assert abs(p - ref) < 1.5e-3, (t, arm, p, ref)


def test_estimator_agreement_recomputed_with_scipy(res):
    md = (DIR / "results.md").read_text()
    for name in {n for b in res["targets"].values() for n in b["estimators"]}:
        line = next(ln for ln in md.splitlines() if ln.startswith(f"| {name} |"))
        per = {}
        for t, b in res["targets"].items():
            vi = {a: np.mean(v["vi"]) for a, v in b["arms"].items() if a != "scratch"}
            sc = b["estimators"][name]
            srcs = sorted(vi)
            rho = stats.spearmanr([sc[s] for s in srcs], [vi[s] for s in srcs]).statistic
            per[t] = rho
            if np.isfinite(rho):
                assert f"{t} {rho:.2f}" in line, (name, t, rho, line)
        finite = [r for r in per.values() if np.isfinite(r)]
        if finite:
            assert f"| {name} | {np.mean(finite):.2f} |" in line, (name, line)


def test_the_defaults_are_the_studys_choice(res):
    assert ranking.DEFAULT_ESTIMATOR == res["default_estimator"]
    assert ranking.DEFAULT_LABELLED_ESTIMATOR == res["default_labelled_estimator"]


def test_cross_species_rows_recomputed(res):
    """Per target with sources of both species: the best same-species against the best other-species source
    (by mean VI), the paired mean difference and the exact Wilcoxon p, from the per-seed VIs (numpy, scipy)."""
    info, md = res["datasets"], (DIR / "results.md").read_text()
    rows = {r["target"]: r for r in res["cross_species"]["preference"]}
    for t, b in res["targets"].items():
        vi = {a: np.asarray(v["vi"]) for a, v in b["arms"].items() if a != "scratch"}
        same = [a for a in vi if info[a]["species"] == info[t]["species"]]
        other = [a for a in vi if info[a]["species"] != info[t]["species"]]
        if not same or not other:
            assert t not in rows
            continue
        bs, bo = (min(g, key=lambda a: vi[a].mean()) for g in (same, other))
        d = vi[bs] - vi[bo]
        r = rows[t]
        assert (r["same"], r["other"]) == (bs, bo) and r["diff"] == pytest.approx(d.mean())
        assert r["wilcoxon_p"] == pytest.approx(stats.wilcoxon(d, method="exact").pvalue, abs=1.5e-3)
        line = next(ln for ln in md.splitlines() if ln.startswith(f"| {t} | *"))
        assert f"{bs} ({vi[bs].mean():.3f})" in line and f"{d.mean():+.3f} [" in line, line
    assert "mouse-ac4-b" in rows  # the mouse target has a mouse source and fly sources
