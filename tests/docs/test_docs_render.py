"""The rendered documentation is current and renders any study: every number on the results pages and in the
README comes from a committed json through ``docs/render.py``."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "docs"))

import render  # noqa: E402
import render_results  # noqa: E402

from tests.test_figures import study  # noqa: E402

RESULT_PAGES = ["README.md", *(f"docs/results/{p}.md" for p in
                               ("index", "transfer-study", "active-learning", "demo", "recipe", "blockwise",
                                "cross-species"))]


def test_every_page_and_the_readme_are_current():
    assert render.stale() == [], "re-render with: python docs/render.py"
    assert "<!-- render:headline -->" in (REPO / "README.md").read_text()


def test_a_changed_json_makes_its_page_stale_and_rendering_updates_it(tmp_path):
    (tmp_path / "docs/results/demo").mkdir(parents=True)  # the demo page and its json only: quick to render
    shutil.copy(REPO / "docs/results/demo.md", tmp_path / "docs/results/demo.md")
    root, demo = tmp_path, tmp_path / "docs/results/demo/demo.json"
    shutil.copy(REPO / "docs/results/demo/demo.json", demo)
    data = json.loads(demo.read_text())
    data["vi_reduction_pct"] = 98.7
    demo.write_text(json.dumps(data))
    stale = render.stale(root)
    assert any(s.startswith("docs/results/demo.md") and "demo.summary" in s for s in stale), stale
    for page, (_, new) in render.render(root).items():
        page.write_text(new)
    assert "**98.7 %**" in (root / "docs/results/demo.md").read_text() and render.stale(root) == []


def test_an_unknown_block_is_an_error(tmp_path):
    with pytest.raises(SystemExit, match="unknown block 'nope'"):
        render.fill("<!-- render:nope -->\n<!-- /render:nope -->", tmp_path, "x.md")


@pytest.mark.parametrize("shape", [(1, 1, 2), (2, 5, 8)], ids=["1target-1source", "2targets-5sources-8seeds"])
def test_the_study_blocks_render_whatever_the_json_holds(shape, tmp_path):
    from neuroadda.workflows.study_results import decide_defaults

    res = study(*shape, budgets=(2, 4), estimators=("mmd2", "consistency", "consistency-input", "logme"))
    decide_defaults(res)
    res["future_block"] = {"mouse-ac4-b": {"vnc-gerhard2013": [1.0, 2.0]}}  # a field this renderer does not know
    first = next(iter(res["targets"].values()))
    del first["arms"]["scratch"]["vi_split"]  # a field a study may not record
    path = tmp_path / render_results.STUDY
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(res))
    text = "\n".join(render.BLOCKS[name](tmp_path, None) for name in render.BLOCKS
                     if name.startswith("transfer.") or name == "headline")
    for t, b in res["targets"].items():
        assert f"`{t}`" in text
        assert all(a in text for a in b["arms"])
    assert all(e in text for e in ("mmd2", "consistency-input", "logme"))
    assert "**future_block**" in text and "mouse-ac4-b" in text
    assert "n = 2" in text and "n = 4" in text  # the VI-vs-n table of both budgets


def test_the_decision_block_reads_the_rule_and_the_species_rows(tmp_path):
    from neuroadda.workflows.study_results import decide_defaults

    res = decide_defaults(study(2, 3, 5, budgets=(4,), estimators=("mmd2", "consistency", "logme")))
    res["cross_species"] = {"items": ["a", "b", "c", "d"], "preference": [
        {"target": "mouse-ac4-b", "species": "Mus musculus", "same": "mouse-ac4-a", "other": "isbi2012",
         "diff": -1.15, "ci_low": -1.4, "ci_high": -0.9, "wilcoxon_p": 0.0078, "reading": "prefers its own species"}],
        "mantel": {"transfer ~ species": {"r": 0.61, "p_value": 0.04}, "MMD² ~ species": {"r": 0.2, "p_value": 0.3},
                   "transfer ~ modality": {"r": None, "p_value": None, "note": "x"}}}
    path = tmp_path / render_results.STUDY
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(res))
    text = render_results.decision(tmp_path)
    assert f"before annotation: `{res['default_estimator']}`**" in text
    assert f"(`--labels`): `{res['default_labelled_estimator']}`**" in text
    assert "`mouse-ac4-a` against the best other-species source `isbi2012`: -1.150 [-1.400, -0.900]" in text
    assert "p = 0.008 (prefers its own species)" in text
    assert "transfer ~ species: r = 0.61, p = 0.040." in text and "MMD² ~ species" not in text


def test_the_imported_rows_are_the_committed_json():
    text = render_results.imported(REPO)
    res = {x: json.loads((REPO / f"docs/results/imported/finetune_neuroproof{x}.json").read_text())
           for x in ("", "_plain")}
    for x, arm in (("", "package"), ("", "native"), ("_plain", "plain-boundary")):  # each from its largest run
        r = res[x]
        vi = np.asarray(r["arms"][arm]["vi"])
        row = next(line for line in text.splitlines() if line.startswith(f"| {render_results.IMPORTED[arm]} |"))
        assert f"| {len(vi)} | {r['zero_shot'][arm]['vi']:.3f} | {vi.mean():.3f} ± {vi.std(ddof=1):.3f} |" in row
        assert f"| {(vi - r['zero_shot'][arm]['vi']).mean():+.3f} [" in row, row

def test_the_lab_path_rows_are_the_committed_json():
    text = render_results.lab_path(REPO)
    for n in (512, 1024):
        r = json.loads((REPO / f"docs/results/lab_path/lab_path_{n}.json").read_text())
        col = next(i for i, c in enumerate(text.splitlines()[0].split(" | ")) if c.startswith(f"{n}³"))
        for k, st in r["steps"].items():
            row = next(line for line in text.splitlines() if line.startswith(f"| {k} |")).split(" | ")
            mem = max(st["peak_rss_gb"], st.get("workers_peak_rss_gb") or 0)
            assert row[col].startswith(f"{st['seconds']:.0f} s, {mem:.2f} GB"), (n, k, row)
            if k in r["ratios"]:
                assert f"{r['ratios'][k]:.2f}× predict" in row[col]


def test_active_learning_renders_only_when_present(tmp_path):
    from neuroadda.workflows.study_al_results import RULE, decide_strategy

    assert "No active-learning study is committed yet" in render_results.active_learning(tmp_path)
    assert "No active-learning study is committed yet" in render_results.active_headline(tmp_path)
    path = tmp_path / render_results.ACTIVE
    path.parent.mkdir(parents=True)
    arms = {"median-uncertainty@n4": [1.0, 1.2, 1.1], "random@n4": [1.3, 1.4, 1.2], "scratch@n4": [1.5, 1.6, 1.7],
            "median-uncertainty@n8": [0.9, 1.0, 0.8], "random@n8": [1.0, 1.1, 1.0], "scratch@n8": [1.2, 1.1, 1.3]}
    res = decide_strategy({"targets": {"mouse-ac4-b": {
        "source": "vnc-gerhard2013", "seeds": [0, 1, 2], "zero_shot": 2.0, "ceiling": {"seeds": [0], "vi": [0.5]},
        "arms": {a: {"vi": v, "vi_split": v, "vi_merge": [0.0] * 3} for a, v in arms.items()}}},
        "strategies": ["random", "median-uncertainty"], "budgets": [4, 8], "decision_n": 4,
        "source_estimator": "consistency", "rule": RULE})
    path.write_text(json.dumps(res))
    text = render_results.active_learning(tmp_path)
    assert "mouse-ac4-b (source vnc-gerhard2013, 3 seeds)" in text and "### The default strategy" in text
    rows = [line for line in text.splitlines() if line.startswith("| median-uncertainty | ")]
    assert "1.100 ± 0.100" in rows[0]  # the VI table: n = 4, then n = 8
    assert any(line.startswith("| median-uncertainty | 4 | -0.200 [") for line in text.splitlines())  # vs random
    assert sum(line.startswith("| scratch |") for line in text.splitlines()) == 1
    head = render_results.active_headline(tmp_path)  # the README's lines: pooled vs random, savings, the default
    assert "| median-uncertainty | -0.200 [" in head  # (1.0-1.3, 1.2-1.4, 1.1-1.2) -> mean -0.2 at n = 4
    row = next(line for line in head.splitlines() if line.startswith("| mouse-ac4-b |"))
    assert "1.100 ± 0.100" in row and "1.600 ± 0.100" in row and "more than 8" in row  # scratch: 1.6, 1.2 > 1.1
    assert f"**Default strategy: `{res['default_strategy']}`**" in head


def prose(text: str) -> str:
    """``text`` without rendered blocks, code, HTML comments, link targets and image paths."""
    text = render.MARKER.sub("", text)
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    text = re.sub(r"`[^`]*`", "", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    return re.sub(r"arXiv:\d+\.\d+|\b95 % (?=CI|interval|bootstrap|t-interval)", "", text)  # names, not data


def test_no_measured_number_outside_a_rendered_block():
    numbers = re.compile(r"\d+\.\d+|\d+\s*%|\d+\s*(?:bits|GB|MB|ms|s|min|seconds|minutes)\b")
    for rel in RESULT_PAGES:
        found = numbers.findall(prose((REPO / rel).read_text()))
        assert not found, f"{rel}: numbers outside rendered blocks: {found}"
    assert numbers.findall(prose("VI 2.31 bits, 23.8 %, 182 s and `1.0` <!-- render:x -->\n9.9\n<!-- /render:x -->"))\
        == ["2.31", "23.8", "182 s"]


def test_readme_is_a_front_door():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    fences = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    assert fences[0].strip().endswith("neuroadda demo") and "pip install -e ." in fences[0]
    assert fences[1].strip().endswith("python -m pytest -q") and '".[dev]"' in fences[1]
    ci = (REPO / ".ci/run").read_text()
    assert "python -m pytest -q" in ci and "mkdocs build --strict" in ci
