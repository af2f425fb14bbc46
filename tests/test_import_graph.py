"""No import circle in ``neuroadda/``: neither between files nor between packages (``neuroadda.X``).

Imports are read with ``ast`` from every file, function-level (lazy) imports included, so a circle hidden behind
a lazy import is a circle too. A package is ``neuroadda.X`` for a folder ``X``; a top-level module
(``neuroadda/config.py``) is its own node, and so is the lazy facade ``neuroadda/__init__.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "neuroadda"


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    """{dotted module name: file} for every .py under ``root`` (a package is its ``__init__``)."""
    out = {}
    for f in sorted(root.rglob("*.py")):
        parts = list(f.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _resolve(name: str, mods: dict) -> str | None:
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def imports(name: str, path: Path, mods: dict) -> set[str]:
    """The neuroadda modules ``name`` imports anywhere in its file (``from P import m`` counts m when m is a
    module, else P)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {_resolve(a.name, mods) for a in node.names if a.name.split(".")[0] == "neuroadda"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            if base.split(".")[0] != "neuroadda":
                continue
            for a in node.names:
                full = f"{base}.{a.name}"
                out.add(full if full in mods else _resolve(base, mods))
    return out - {None, name}


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {m: imports(m, p, mods) for m, p in mods.items()}


def package_of(module: str) -> str:
    """``neuroadda.selection.estimators.distance`` -> ``neuroadda.selection``."""
    return ".".join(module.split(".")[:2])


def package_graph(g: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {package_of(m): set() for m in g}
    for m, targets in g.items():
        out[package_of(m)] |= {package_of(t) for t in targets} - {package_of(m)}
    return out


def circles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative), each sorted."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], 0
    for root in g:
        if root in index:
            continue
        work = [(root, iter(sorted(g[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(g.get(w, ())))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))
    return found


def test_the_checker_finds_a_circle_through_a_lazy_import(tmp_path):
    pkg = tmp_path / "neuroadda"
    (pkg / "a").mkdir(parents=True)
    (pkg / "b").mkdir()
    for f in ("__init__.py", "a/__init__.py", "b/__init__.py"):
        (pkg / f).write_text("")
    (pkg / "a" / "x.py").write_text("from neuroadda.b.y import f\n")
    (pkg / "b" / "y.py").write_text("def f():\n    from neuroadda.a import x\n")
    (pkg / "b" / "z.py").write_text("from . import y\nfrom .y import f\n")
    mods = modules(pkg)
    g = {m: imports(m, p, mods) for m, p in mods.items()}
    assert g["neuroadda.b.z"] == {"neuroadda.b.y"}
    assert circles(g) == [["neuroadda.a.x", "neuroadda.b.y"]]
    assert circles(package_graph(g)) == [["neuroadda.a", "neuroadda.b"]]


def test_no_import_circle_between_files():
    g = graph()
    assert len(g) > 50 and "neuroadda.workflows.grid" in g["neuroadda.cli.experiment_cmd"]  # lazy imports read
    assert circles(g) == [], "import circles between files of neuroadda/"


def test_no_import_circle_between_packages():
    assert circles(package_graph(graph())) == [], "import circles between packages of neuroadda/"
