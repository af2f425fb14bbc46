"""Render the generated parts of the documentation from committed data and from the code.

Every number on the results pages and in the README's headline comes from a committed json under
``docs/results/`` through this script; the reference pages come from the argparse parsers and the pydantic
schemas. A page (``README.md`` or any ``docs/**/*.md``) holds generated blocks between markers::

    <!-- render:NAME [ARG] -->
    ...generated Markdown...
    <!-- /render:NAME -->

and this script fills them. From the repository root::

    python docs/render.py            # rewrite every block (after new results land, or a verb or key changed)
    python docs/render.py --check    # exit 1 and name every stale block (tests/docs/test_render.py runs it)

A block whose json is not committed says so in one line instead of failing (``docs/results/active_learning/``).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the block modules beside this file
    sys.path.insert(0, str(HERE))

import render_measurements  # noqa: E402
import render_reference  # noqa: E402
import render_results  # noqa: E402

ROOT = HERE.parent
BLOCKS: dict[str, Callable[[Path, str | None], str]] = {
    **render_results.BLOCKS, **render_measurements.BLOCKS, **render_reference.BLOCKS}
MARKER = re.compile(r"<!-- render:(?P<name>[\w.-]+)(?: (?P<arg>[^>]*?))? -->\n(?P<body>.*?)<!-- /render:(?P=name) -->",
                    re.S)


def pages(root: Path = ROOT) -> list[Path]:
    """The files that may hold blocks: the README and every Markdown page of the site."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def fill(text: str, root: Path = ROOT, where: str = "") -> str:
    """``text`` with every block re-rendered; an unknown block name is an error naming ``where``."""
    def one(m: re.Match) -> str:
        name, arg = m["name"], m["arg"]
        if name not in BLOCKS:
            raise SystemExit(f"{where}: unknown block '{name}' (known: {', '.join(sorted(BLOCKS))})")
        body = BLOCKS[name](root, arg).strip("\n")
        head = f"<!-- render:{name}{' ' + arg if arg else ''} -->"
        return f"{head}\n\n{body}\n\n<!-- /render:{name} -->"

    return MARKER.sub(one, text)


def render(root: Path = ROOT) -> dict[Path, tuple[str, str]]:
    """{page: (text now, text rendered)} for every page that holds a block."""
    out = {}
    for page in pages(root):
        if page.is_file():
            text = page.read_text()
            if "<!-- render:" in text:
                out[page] = (text, fill(text, root, str(page.relative_to(root))))
    return out


def stale(root: Path = ROOT) -> list[str]:
    """'page: block' for every block whose committed text differs from what the data gives now."""
    found = []
    for page, (now, new) in render(root).items():
        if now != new:
            old_blocks = {(m["name"], m["arg"]): m["body"] for m in MARKER.finditer(now)}
            new_blocks = {(m["name"], m["arg"]): m["body"] for m in MARKER.finditer(new)}
            names = [n for n, a in new_blocks if old_blocks.get((n, a)) != new_blocks[(n, a)]]
            found.append(f"{page.relative_to(root)}: {', '.join(names) or 'block layout'}")
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python docs/render.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="only check: exit 1 naming every stale block")
    args = p.parse_args(argv)
    if args.check:
        bad = stale()
        for line in bad:
            print(f"stale: {line}")
        if bad:
            print("re-render with: python docs/render.py")
        return int(bool(bad))
    for page, (now, new) in render().items():
        if now != new:
            page.write_text(new)
            print(f"rendered {page.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
