"""Every how-to page's examples run, so none rots: the marked fenced blocks of ``docs/how-to/*.md`` are extracted
and run in order against tiny synthetic files (``lab``: two labelled source volumes, a labelled target, a tiny
backbone per source, tiny ``configs/adapt.yaml`` and ``configs/pretrain.yaml``).

Markers (HTML comments: invisible on the site), each right before a fenced block:

- ``<!-- test -->``: run the block (bash: every ``neuroadda`` line in this process, other lines in bash;
  python: executed); ``<!-- test: slow -->`` too, and the page joins the integration lane;
- ``<!-- test: file=NAME -->``: write the block into the lab as NAME (a config shown on the page);
- ``<!-- test: repo -->``: run the block's non-``neuroadda`` lines in the repository root, not in the lab;
- ``<!-- test-setup: page=OTHER.md -->``: run another how-to page's examples first (what this page builds on).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from neuroadda.cli.main import main
from tests.conftest import ADAPT_CONFIG, PRETRAIN_CONFIG, labelled_volume, tiny_backbone

REPO = Path(__file__).resolve().parents[2]
HOWTO = REPO / "docs" / "how-to"
UNTESTED = {"index.md": "the list of how-to pages"}
MARK = re.compile(r"<!-- test(?P<setup>-setup)?(?::\s*(?P<opts>[^\n]*?))?\s*-->\n"
                  r"(?:```(?P<lang>\w*)[^\n]*\n(?P<code>.*?)```)?", re.S)


@dataclass
class Step:
    kind: str  # run | file | setup
    lang: str
    code: str
    name: str = ""  # file: where to write it; setup: the page to run first
    slow: bool = False
    repo: bool = False


def steps(page: Path) -> list[Step]:
    out = []
    for m in MARK.finditer(page.read_text()):
        opts = dict(o.partition("=")[::2] for o in (m["opts"] or "").split())
        if m["setup"]:
            setup = steps(page.parent / opts["page"])
            out.append(Step("setup", "", "", opts["page"], slow=any(s.slow for s in setup)))
        elif "file" in opts:
            out.append(Step("file", m["lang"], m["code"] or "", opts["file"]))
        elif m["code"] is not None:
            out.append(Step("run", m["lang"] or "bash", m["code"], slow="slow" in opts, repo="repo" in opts))
    return out


def commands(code: str) -> list[str]:
    """Shell lines of a bash block: continuations joined, comments and blanks dropped."""
    joined = re.sub(r"\s*\\\n\s*", " ", code)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def run_step(step: Step, lab: Path) -> None:
    if step.kind == "setup":
        for s in steps(HOWTO / step.name):
            run_step(s, lab)
        return
    if step.kind == "file":
        (lab / step.name).parent.mkdir(parents=True, exist_ok=True)
        (lab / step.name).write_text(step.code)
        return
    if step.lang == "python":
        exec(compile(step.code, f"<{step.lang} block>", "exec"), {"__name__": "__main__"})
        return
    for line in commands(step.code):
        argv = shlex.split(line, comments=True)
        if argv[0] == "neuroadda":
            rc = main(argv[1:])
            assert rc == 0, f"'{line}' exited {rc}"
        else:
            env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
            r = subprocess.run(["bash", "-c", line], cwd=REPO if step.repo else lab, env=env, capture_output=True,
                               text=True)
            assert r.returncode == 0, f"'{line}' exited {r.returncode}: {r.stderr[-500:]}"


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """The files the how-to pages name: sources old-a.h5, old-b.h5 and target new.h5 (24x40x48, 10 nm, labelled),
    backbones/<source>/model.pt, and tiny configs/adapt.yaml and configs/pretrain.yaml (a few steps)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    labelled_volume(tmp_path / "old-a.h5", 1)
    labelled_volume(tmp_path / "old-b.h5", 2, dark=True)
    labelled_volume(tmp_path / "new.h5", 0)
    for i, s in enumerate(("old-a.h5", "old-b.h5"), 1):
        tiny_backbone(tmp_path / "backbones" / s / "model.pt", i)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "adapt.yaml").write_text(ADAPT_CONFIG)
    (tmp_path / "configs" / "pretrain.yaml").write_text(PRETRAIN_CONFIG)
    return tmp_path


def pages() -> list:
    out = []
    for page in sorted(HOWTO.glob("*.md")):
        if page.name not in UNTESTED:
            slow = any(s.slow for s in steps(page))
            out.append(pytest.param(page, id=page.stem, marks=[pytest.mark.integration] if slow else []))
    return out


def test_the_markers_are_read():
    page = """text
<!-- test-setup: page=datasets.md -->
<!-- test: file=a.yaml -->
```yaml
k: 1
```
<!-- test: slow -->
```bash
neuroadda x --a 1 \\
          --b 2   # comment
# only a comment
```
```bash
neuroadda not-marked
```
"""
    path = HOWTO / ".markers.md"
    try:
        path.write_text(page)
        got = steps(path)
    finally:
        path.unlink(missing_ok=True)
    assert [(s.kind, s.slow) for s in got] == [("setup", False), ("file", False), ("run", True)]
    assert got[1].name == "a.yaml" and got[1].code == "k: 1\n"
    assert commands(got[2].code) == ["neuroadda x --a 1 --b 2   # comment"]
    assert shlex.split(commands(got[2].code)[0], comments=True) == ["neuroadda", "x", "--a", "1", "--b", "2"]


def test_every_howto_page_has_a_tested_example():
    missing = [p.name for p in HOWTO.glob("*.md") if p.name not in UNTESTED
               and not any(s.kind == "run" for s in steps(p))]
    assert not missing, f"how-to pages without a tested example: {missing}"
    assert len(pages()) >= 8


@pytest.mark.parametrize("page", pages())
def test_howto_examples_run(page, lab, capsys):
    for step in steps(page):
        run_step(step, lab)
