"""The adapt report: mean ± sd, % reduction and the Markdown table, against hand-computed values."""

from __future__ import annotations

import json

import pytest

from neuroadda.active.report import build_report, markdown, mean_sd, report_figure, write_report


def _eval(vi_split, vi_merge, t=0.5):
    return {"vi_split": vi_split, "vi_merge": vi_merge, "vi": vi_split + vi_merge, "adapted_rand": 0.25, "threshold": t}


def test_mean_sd_hand_computed():
    assert mean_sd([1.0, 2.0, 3.0]) == (2.0, 1.0)  # sample sd: sqrt(((1)^2 + 0 + 1^2) / 2) = 1
    assert mean_sd([4.0]) == (4.0, 0.0)


def test_report_schema_reduction_and_table(tmp_path):
    rounds = [{"n_total": 4, "arms": {"finetuned": [_eval(1.0, 1.0), _eval(1.5, 1.5)],
                                      "scratch": [_eval(2.0, 2.0), _eval(2.0, 3.0)]}}]
    sel = {"ranking": [{"source": "gala", "mmd2": 0.1, "p_value": 0.01},
                       {"source": "isbi", "mmd2": 0.3, "p_value": 0.01}]}
    rep = build_report(target="t", source="gala", n=4, strategy="median-uncertainty", seeds=[0, 1], rounds=rounds,
                       selection=sel, zero_shot=_eval(3.0, 1.0))
    assert rep["arms"]["finetuned"]["vi"] == [2.0, 3.0] and rep["arms"]["scratch"]["vi"] == [4.0, 5.0]
    assert rep["arms"]["finetuned"]["vi_mean"] == 2.5 and rep["arms"]["scratch"]["vi_mean"] == 4.5
    assert rep["vi_reduction_pct"] == pytest.approx(100 * (4.5 - 2.5) / 4.5)  # 44.4 %
    md = markdown(rep)
    assert "| 4 | finetuned | 2.500 ± 0.707 |" in md and "44.4%" in md and "| gala | 0.1000 | 0.0100 |" in md
    path = write_report(rep, tmp_path)
    assert json.loads(path.read_text())["vi_reduction_pct"] == pytest.approx(44.444444, abs=1e-4)
    assert (tmp_path / "report.md").read_text() == md and (tmp_path / "report.png").stat().st_size > 1000
    assert not list(tmp_path.glob("*.tmp*"))


@pytest.mark.parametrize("n_rounds, target", [(1, "t"), (3, "/data/lab/a rather long target volume name.h5:raw")])
def test_report_figure_title_and_legend_stay_clear_of_the_data(n_rounds, target):
    """The title fits in the figure and the legend (outside the axes) overlaps neither the axes nor the title."""
    rounds = [{"n_total": 4 * (r + 1), "arms": {"finetuned": [_eval(1.0, 1.0), _eval(1.5, 1.5)],
                                                "scratch": [_eval(2.0, 2.0), _eval(2.0, 3.0)]}}
              for r in range(n_rounds)]
    sel = {"ranking": [{"source": "isbi2012", "mmd2": 0.1, "p_value": 0.01}]}
    rep = build_report(target=target, source="isbi2012", n=4, strategy="median-uncertainty", seeds=[0, 1],
                       rounds=rounds, selection=sel, zero_shot=_eval(3.5, 0.63))
    fig = report_figure(rep)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    (ax,), (legend,) = fig.axes, fig.legends
    page, box, leg, title = (fig.bbox, ax.get_window_extent(r), legend.get_window_extent(r),
                             ax.title.get_window_extent(r))
    for inner in (box, leg, title):
        assert (page.x0 - 1 <= inner.x0 and inner.x1 <= page.x1 + 1
                and page.y0 - 1 <= inner.y0 and inner.y1 <= page.y1 + 1)
    assert not leg.overlaps(box) and not leg.overlaps(title)
    assert len(legend.get_texts()) == 7  # 2 arms x (split, merge), one seed, mean ± sd, zero-shot
    assert ax.get_ylim()[1] > 4.13  # the zero-shot line is inside the axes, not on its edge
