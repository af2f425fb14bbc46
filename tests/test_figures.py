"""Every figure the tool writes reads at a glance with one and with many targets, sources, seeds and rounds:
every text and artist stays inside the figure (matplotlib's renderer: the figure's tight bounding box within its
page), reference lines are drawn inside their axes (not on the frame), and titles count in the singular when
there is one."""

from __future__ import annotations

import numpy as np
import pytest

from neuroadda.active import report as active_report
from neuroadda.active import samples as active_samples
from neuroadda.report import save_figure as real_save_figure
from neuroadda.selection import phylogeny, ranking, select
from neuroadda.workflows import grid, study_results

MODULES = (active_report, active_samples, study_results, grid, select, ranking)
SOURCES = ["gala-train", "isbi2012", "neuroproof", "vnc-gerhard2013", "mouse-ac4-a", "kasthuri2015-mouse"]
TARGETS = ["neuroproof", "gala-test", "isbi2012", "vnc-gerhard2013", "mouse-ac4-b"]


def check_fits(fig) -> list[str]:
    """What of ``fig`` leaves its page or sits on an axes frame; empty when it reads."""
    if not hasattr(fig.canvas, "get_renderer"):  # a bare Figure (selection.phylogeny): Agg renders it on save
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    page, tight, inches, problems = fig.bbox, fig.get_tightbbox(r), fig.bbox_inches, []  # tight: drawn artists
    if (tight.x0 < inches.x0 - 0.01 or tight.y0 < inches.y0 - 0.01 or tight.x1 > inches.x1 + 0.01
            or tight.y1 > inches.y1 + 0.01):
        problems.append(f"drawn beyond the page: {np.round(tight.bounds, 2)} on {np.round(inches.bounds, 2)}")
    ticks = {id(t) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)  # tick labels: in ``tight`` when drawn
             for tick in axis.get_major_ticks() + axis.get_minor_ticks() for t in (tick.label1, tick.label2)}
    for text in fig.findobj(lambda a: hasattr(a, "get_text") and a.get_visible() and a.get_text()):
        if id(text) in ticks:
            continue
        box = text.get_window_extent(r)
        if box.x0 < page.x0 - 1 or box.x1 > page.x1 + 1 or box.y0 < page.y0 - 1 or box.y1 > page.y1 + 1:
            problems.append(f"text {text.get_text()!r} leaves the figure")
    for ax in fig.axes:
        x0, x1 = sorted(ax.get_xlim())
        y0, y1 = sorted(ax.get_ylim())
        for line in ax.get_lines():
            xs, ys = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
            trans = line.get_transform()
            if trans == ax.get_xaxis_transform() and len(set(xs)) == 1:  # axvline: x in data, y in axes
                if not x0 < xs[0] < x1:
                    problems.append(f"vertical line at x={xs[0]:.3g} on or beyond the frame ({x0:.3g}, {x1:.3g})")
            elif trans == ax.get_yaxis_transform() and len(set(ys)) == 1:  # axhline
                if not y0 < ys[0] < y1:
                    problems.append(f"horizontal line at y={ys[0]:.3g} on or beyond the frame ({y0:.3g}, {y1:.3g})")
    for text in fig.findobj(lambda a: hasattr(a, "get_text") and a.get_visible()):
        words = text.get_text().split()
        for a, b in zip(words, words[1:]):
            if a == "1" and b.rstrip(",;:)") in {"targets", "sources", "seeds", "rounds", "samples"}:
                problems.append(f"text {text.get_text()!r} counts one in the plural")
    return problems


@pytest.fixture
def drawn(monkeypatch):
    """Every figure saved through ``save_figure`` is checked first; returns {file name: problems}."""
    seen = {}

    def checking(fig, path, dpi=150):
        seen[getattr(path, "name", str(path))] = check_fits(fig)
        return real_save_figure(fig, path, dpi)

    for module in (*MODULES, phylogeny):
        monkeypatch.setattr(module, "save_figure", checking)
    return seen


def assert_all_fit(seen: dict, expected: int):
    assert len(seen) == expected, f"expected {expected} figures, drew {sorted(seen)}"
    bad = {name: p for name, p in seen.items() if p}
    assert not bad, bad


def test_the_check_catches_a_label_cut_off_a_line_on_the_frame_and_one_in_the_plural():
    plt = __import__("neuroadda.report", fromlist=["pyplot"]).pyplot()
    fig, ax = plt.subplots(figsize=(3, 2))
    im = ax.imshow(np.zeros((2, 2)))
    fig.colorbar(im, ax=ax, label="a colour-bar label far too long for a figure this small, so it is cut off")
    ax.axvline(ax.get_xlim()[1])
    ax.set_title("estimators on 1 targets")
    problems = check_fits(fig)
    plt.close(fig)
    assert any("beyond the page" in p for p in problems)
    assert any("vertical line" in p for p in problems)
    assert any("in the plural" in p for p in problems)


# ---------------------------------------------------------------------------------------------- the study
def study(n_targets: int, n_sources: int, n_seeds: int, budgets=(4,), estimators=("mmd2", "consistency", "logme"),
          seed: int = 0) -> dict:
    """A results.json record of the transfer study with random VIs (the shape study_results.collect writes)."""
    rng = np.random.default_rng(seed)
    targets = TARGETS[:n_targets]
    res = {"targets": {}, "by_n": {}, "missing": [], "default_estimator": estimators[0],
           "study": {"sources": SOURCES[:n_sources], "budgets": list(budgets), "seeds": n_seeds}}

    def arms(t):
        srcs = [s for s in SOURCES if s != t][:n_sources]
        out = {}
        for a in srcs + ["scratch"]:
            split, merge = rng.uniform(0.2, 1.5, n_seeds), rng.uniform(0.2, 1.5, n_seeds)
            out[a] = {"vi": list(split + merge), "vi_split": list(split), "vi_merge": list(merge)}
        return srcs, out

    for t in targets:
        for n in budgets:
            srcs, a = arms(t)
            res["by_n"].setdefault(str(n), {})[t] = {"n": n, "seeds": list(range(n_seeds)), "arms": a}
        block = dict(res["by_n"][str(budgets[0])][t])
        block.update({"zero_shot": {s: float(rng.uniform(1, 4)) for s in srcs},
                      "estimators": {e: {s: float(rng.normal()) for s in srcs} for e in estimators},
                      "modality": "FIB-SEM",
                      "source_modality": {s: "ssTEM" if "isbi" in s else "FIB-SEM" for s in srcs}})
        res["targets"][t] = block
    return res


@pytest.mark.parametrize("shape", [(1, 1, 2), (1, 3, 5), (3, 2, 3),
                                   pytest.param((5, 6, 8), marks=pytest.mark.integration)],
                         ids=lambda s: f"{s[0]}t{s[1]}s{s[2]}seeds")
def test_study_figures_fit_with_one_and_many(shape, tmp_path, drawn):
    res = study(*shape, budgets=(2, 4, 8) if shape[0] > 1 else (4,))
    study_results.decide_defaults(res)
    study_results.write_results(res, tmp_path)
    assert_all_fit(drawn, 4 if shape[0] > 1 else 3)


@pytest.mark.integration  # the committed record: 11 estimators, 10,000 permutations each
def test_the_committed_study_figures_fit_and_for_one_of_its_targets(tmp_path, drawn):
    import json
    from pathlib import Path

    res = json.loads((Path(__file__).parents[1] / "docs/results/transfer_study/results.json").read_text())
    for name in list(res["targets"])[:1]:
        one = {**res, "targets": {name: res["targets"][name]}}
        for fn, file in ((study_results.plot_matrix, "m1.png"), (study_results.plot_assessment, "a1.png"),
                         (study_results.plot_estimators, "e1.png")):
            fn(one, tmp_path / file)
    for fn, file in ((study_results.plot_matrix, "m.png"), (study_results.plot_assessment, "a.png"),
                     (study_results.plot_estimators, "e.png")):
        fn(res, tmp_path / file)
    assert_all_fit(drawn, 6)


def test_assessment_noise_ceiling_of_one_is_inside_the_axes(tmp_path, drawn):
    res = study(1, 3, 4)
    arms = res["targets"]["neuroproof"]["arms"]
    for k, a in enumerate(a for a in arms if a != "scratch"):  # one order in every half of the seeds: ceiling 1
        arms[a]["vi"] = [1.0 + k + 0.01 * s for s in range(4)]
    assert study_results.assess_estimators(res)["noise_ceiling_mean"] == pytest.approx(1.0)
    study_results.plot_assessment(res, tmp_path / "a.png")
    assert_all_fit(drawn, 1)


# ---------------------------------------------------------------------------------------- the grid, adapt
def _eval(rng):
    s, m = rng.uniform(0.2, 1.5, 2)
    return {"vi_split": s, "vi_merge": m, "vi": s + m, "adapted_rand": 0.3, "threshold": 0.5}


@pytest.mark.parametrize("n_rounds, n_seeds, target", [(1, 1, "t"), (4, 5, "/data/lab/long name of a volume.h5:raw")])
def test_adapt_report_figure_fits(n_rounds, n_seeds, target, tmp_path, drawn):
    rng = np.random.default_rng(1)
    rounds = [{"n_total": 4 * (r + 1), "arms": {a: [_eval(rng) for _ in range(n_seeds)] for a in ("finetuned",
                                                                                              "scratch")}}
              for r in range(n_rounds)]
    rep = active_report.build_report(target=target, source="vnc-gerhard2013", n=4, strategy="median-uncertainty",
                                     seeds=list(range(n_seeds)), rounds=rounds,
                                     selection={"ranking": [{"source": "vnc-gerhard2013", "mmd2": 0.1}]},
                                     zero_shot=_eval(rng))
    active_report.plot_report(rep, tmp_path / "report.png")
    assert_all_fit(drawn, 1)


@pytest.mark.parametrize("n_arms", [1, 6])
def test_heldout_figure_fits(n_arms, tmp_path, drawn):
    rng = np.random.default_rng(2)
    gt = rng.integers(0, 9, (40, 60))
    segs = {f"fine-tuned from {s}" if k else "from scratch": (gt, 1.234) for k, s in enumerate(SOURCES[:n_arms])}
    active_report.plot_heldout(rng.random((40, 60)), gt, segs, tmp_path / "heldout.png",
                               title="neuroproof held-out slab, z 175")
    assert_all_fit(drawn, 1)


@pytest.mark.parametrize("n_samples", [1, 12])
def test_samples_figure_fits(n_samples, tmp_path, drawn):
    from neuroadda.data.volume import LabelledVolume, Volume

    rng = np.random.default_rng(3)
    vol = LabelledVolume("v", Volume(rng.random((16, 64, 64)).astype(np.float32), "v", (1, 1, 1)), None, (1, 1, 1))
    scores = list(rng.random(40))
    record = {"strategy": "median-uncertainty", "uncertainty": "entropy", "scores": scores,
              "median_score": float(np.median(scores)),
              "samples": [{"name": f"sample_{k:02d}", "score": scores[k],
                           "box": [[0, 8], [8 * (k % 4), 8 * (k % 4) + 16], [0, 16]]} for k in range(n_samples)]}
    active_samples.plot_samples(record, vol, tmp_path / "samples.png")
    assert_all_fit(drawn, 1)


@pytest.mark.parametrize("n_targets, budgets, strategies", [(1, (4,), ("random",)),
                                                            (4, (1, 2, 4, 8), ("median-uncertainty", "random"))])
def test_experiment_grid_figure_fits(n_targets, budgets, strategies, tmp_path, drawn):
    rng = np.random.default_rng(4)
    results = [{"target": t, "n": n, "strategy": s, "finetuned_mean": rng.uniform(1, 2), "finetuned_sd": 0.1,
                "scratch_mean": rng.uniform(1, 3), "scratch_sd": 0.2}
               for t in TARGETS[:n_targets] for n in budgets for s in strategies]
    grid.plot_vi_vs_n(results, tmp_path / "vi_vs_n.png")
    assert_all_fit(drawn, 1)


# ----------------------------------------------------------------------------------- source selection
@pytest.mark.parametrize("n_sources", [1, 6])
def test_ranking_figures_fit(n_sources, tmp_path, drawn):
    rng = np.random.default_rng(5)
    rows = [{"source": s, "score": float(v), "ci_low": float(v) - 0.1, "ci_high": float(v) + 0.1, "p_value": 0.01,
             "compatible": k % 2 == 0, "mmd2": float(v)} for k, (s, v) in enumerate(zip(SOURCES, rng.random(6)))]
    rows = rows[:n_sources]
    rec = {"target": "/data/lab/new volume.zarr:raw", "best": rows[0]["source"], "estimator": "compat+consistency",
           "ranking": rows}
    ranking.plot_ranking(rec, tmp_path / "ranking.png")
    select.plot_ranking(rec, tmp_path / "mmd.png")
    assert_all_fit(drawn, 2)


@pytest.mark.parametrize("n", [2, 9])
def test_matrix_and_phylogeny_figures_fit(n, tmp_path, drawn):
    rng = np.random.default_rng(6)
    names = (SOURCES + TARGETS)[:n]
    a = rng.random((n, n))
    d = (a + a.T) / 2
    np.fill_diagonal(d, 0)
    phylogeny.plot_heatmap(d, names, tmp_path / "heat.png", "MMD² among volumes, encoder gala-train", "MMD²")
    phylogeny.plot_dendrogram(d, names, tmp_path / "dendro.png", "UPGMA on MMD², encoder gala-train")
    stats = {m: {"method": m, "r": 0.1, "p_value": 0.5, "exact": True} for m in ("spearman", "pearson")}
    modality = (rng.random((n, n)) > 0.5).astype(float)
    phylogeny.plot_phylogeny_scatter(d, d * 700, names, tmp_path / "scatter.png", stats,
                                     modality_d=np.maximum(modality, modality.T), partial=stats)
    assert_all_fit(drawn, 3)
