"""Does image-domain distance track evolutionary distance? Divergence times, Mantel test, UPGMA, figures.

The species tree (``datasets/phylogeny.yaml``) is a rooted ultrametric tree of clade ages in million years
(Mya); the divergence time of two species is the age of their youngest common clade (0 for the same species).
:func:`phylogeny_analysis` correlates a matrix of pairwise MMD² between datasets with their species'
divergence times by a Mantel test. Figures use matplotlib's object API (Agg canvas, no pyplot state).
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.cluster.hierarchy import dendrogram, linkage
from scipy.spatial.distance import squareform
from scipy.stats import rankdata

from neuroadda.errors import ConfigError, InputError, read_yaml_mapping
from neuroadda.report import save_figure, write_json  # atomic: temp name, then os.replace
from neuroadda.selection.modality import (
    EXACT_MAX_N,
    SCHEMES,
    _square,
    modality_class,
    modality_matrix,
    partial_mantel_test,
    perm_chunks,
)

_KEYS = {"top": ({"source", "species", "tree"}, {"url"}), "species": ({"name", "common"}, set()),
         "clade": ({"clade", "age_mya", "children"}, {"note"})}  # (required, optional) keys


@dataclass(frozen=True)
class PhyloTree:
    """A loaded species tree: ``lineage[species]`` lists ``(clade, age_mya)`` from the root down."""

    path: str
    source: str
    common: dict[str, str]
    lineage: dict[str, tuple[tuple[str, float], ...]]

    def mya(self, a: str, b: str) -> float:
        """Divergence time of species ``a`` and ``b`` in Mya (age of the youngest shared clade; 0 if a == b)."""
        shared = list(itertools.takewhile(lambda cd: cd[0] == cd[1], zip(self.lineage[a], self.lineage[b])))
        return 0.0 if a == b else shared[-1][0][1]


def _check_keys(obj, kind: str, where: str, path) -> None:
    required, optional = _KEYS[kind]
    if not isinstance(obj, dict):
        raise ConfigError(f"{path}: field '{where or '(top level)'}': must be a mapping")
    pre = where + "." if where else ""
    for k in [k for k in obj if k not in required | optional] + sorted(required - set(obj)):
        why = "missing" if k not in obj else f"unknown key (allowed: {', '.join(sorted(required | optional))})"
        raise ConfigError(f"{path}: field '{pre}{k}': {why}")


def load_tree(path: str | Path | None = None) -> PhyloTree:
    """Read and validate the species tree (default ``datasets/phylogeny.yaml``).

    Any problem is a :class:`ConfigError` naming the file and the field (e.g. ``tree.children.1.age_mya``).
    """
    from neuroadda.data.cards import datasets_dir
    path = Path(path) if path is not None else datasets_dir() / "phylogeny.yaml"
    data = read_yaml_mapping(path, "phylogeny file")
    _check_keys(data, "top", "", path)
    for k, typ in (("source", str), ("species", list)):
        if not isinstance(data[k], typ) or not data[k]:
            raise ConfigError(f"{path}: field '{k}': must be a non-empty {typ.__name__}")
    common: dict[str, str] = {}
    for i, s in enumerate(data["species"]):
        _check_keys(s, "species", f"species.{i}", path)
        if not isinstance(s["name"], str) or s["name"] in common:
            raise ConfigError(f"{path}: field 'species.{i}.name': must be a unique string")
        common[s["name"]] = str(s["common"])
    lineage: dict[str, tuple] = {}

    def walk(node, where: str, above: tuple, parent_age: float) -> None:
        if isinstance(node, str):
            if node not in common:
                raise ConfigError(f"{path}: field '{where}': species '{node}' is not in the 'species' list")
            if node in lineage:
                raise ConfigError(f"{path}: field '{where}': species '{node}' appears twice in the tree")
            lineage[node] = above
            return
        _check_keys(node, "clade", where, path)
        age = node["age_mya"]
        if isinstance(age, bool) or not isinstance(age, (int, float)) or not 0 < age < parent_age:
            raise ConfigError(f"{path}: field '{where}.age_mya': must be a number > 0 and below the parent clade's "
                              f"age ({parent_age:g}), got {age!r}")
        if not isinstance(node["clade"], str) or not isinstance(node["children"], list) or len(node["children"]) < 2:
            raise ConfigError(f"{path}: field '{where}': a clade needs a name and a list of at least two children")
        for j, child in enumerate(node["children"]):
            walk(child, f"{where}.children.{j}", above + ((str(node["clade"]), float(age)),), float(age))

    walk(data["tree"], "tree", (), math.inf)
    if missing := sorted(set(common) - set(lineage)):
        raise ConfigError(f"{path}: field 'tree': species {', '.join(missing)} listed but not placed in the tree")
    return PhyloTree(str(path), data["source"].strip(), common, lineage)


def divergence_matrix(species: list[str], tree: PhyloTree) -> np.ndarray:
    """(n, n) float64 divergence times in Mya for ``species`` (repeats allowed): symmetric, zero diagonal."""
    for s in species:
        if s not in tree.lineage:
            raise InputError(f"species '{s}' is not in the phylogeny {tree.path}; add it to 'species' and 'tree'")
    n = len(species)
    return np.array([[tree.mya(a, b) for b in species] for a in species], dtype=np.float64).reshape(n, n)


def mantel_test(a, b, *, permutations: int = 9999, method: str = "spearman", alternative: str = "greater",
                seed: int = 0, batch: int = 2048) -> dict:
    """Mantel test between two symmetric (n, n) distance matrices (units irrelevant; diagonals ignored).

    ``r`` is the Pearson or Spearman correlation of the n(n-1)/2 upper-triangle entries. The null distribution
    permutes rows and columns of ``b`` jointly (relabels its objects). ``alternative="greater"`` (default, the
    usual Mantel question "do the distances agree?") counts ``r_perm >= r``; ``"two-sided"`` counts
    ``|r_perm| >= |r|``. For n <= 8 all n! permutations are enumerated (``exact: True``) and
    p = #{hits} / n! (the identity is one of them); otherwise ``permutations`` random ones are drawn and
    p = (1 + #{hits}) / (1 + permutations). If either triangle has zero variance r and p are None and
    ``note`` says why.
    """
    if method not in ("spearman", "pearson") or alternative not in ("greater", "two-sided") or permutations < 1:
        raise InputError(f"mantel_test: bad method '{method}', alternative '{alternative}' or "
                         f"permutations {permutations}")
    a, b = _square(a, "mantel_test a"), _square(b, "mantel_test b")
    if a.shape != b.shape:
        raise InputError(f"mantel_test: shapes differ, {a.shape} vs {b.shape}")
    n = a.shape[0]
    iu = np.triu_indices(n, 1)
    x, y = a[iu], b[iu]
    if method == "spearman":  # ranks move with the entries under relabelling, so rank once
        x, y = rankdata(x), rankdata(y)
    out = dict(r=None, p_value=None, permutations=0, n=n, n_pairs=len(x), method=method,
               alternative=alternative, exact=n <= EXACT_MAX_N, note=None)
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        out["note"] = "correlation undefined: one matrix has fewer than 2 pairs or all its pairwise values are equal"
        return out
    xc, yc = x - x.mean(), y - y.mean()
    xz = xc / np.linalg.norm(xc)
    ym = np.zeros((n, n))
    ym[iu] = yc / np.linalg.norm(yc)  # permuting preserves the multiset of entries, hence mean and norm
    ym = ym + ym.T
    r = float(xz @ ym[iu])

    eps, hits, total = 1e-10, 0, 0
    # (k, n) relabellings -> (k,) correlations, r_perm = y_perm . x (both standardised)
    for perms in perm_chunks(n, permutations, seed, batch):
        rp = ym[perms[:, :, None], perms[:, None, :]][:, iu[0], iu[1]] @ xz
        hits += int(np.sum(rp >= r - eps) if alternative == "greater" else np.sum(np.abs(rp) >= abs(r) - eps))
        total += len(perms)
    p = hits / total if n <= EXACT_MAX_N else (1 + hits) / (1 + total)
    out.update(r=r, p_value=float(p), permutations=total)
    return out


def upgma(d, labels: list[str]) -> np.ndarray:
    """UPGMA (average linkage) of an (n, n) distance matrix: scipy linkage matrix, shape (n-1, 4)."""
    d = _square(d, "upgma")
    if len(labels) != d.shape[0] or d.shape[0] < 2:
        raise InputError(f"upgma: {len(labels)} labels for a {d.shape[0]}x{d.shape[0]} matrix (need n >= 2)")
    return linkage(squareform(d, checks=False), method="average")


def _fig(size):
    import matplotlib
    from matplotlib.figure import Figure  # object API, rendered by Agg on save; no pyplot window or state

    matplotlib.rcParams["text.parse_math"] = False  # a '$' in a dataset name is text, not LaTeX
    return Figure(figsize=size, layout="constrained")


def plot_heatmap(d, labels: list[str], path, title: str, cbar_label: str) -> Path:
    """(n, n) matrix as an annotated heat map written to ``path`` (PNG)."""
    d = np.asarray(d, dtype=float)
    n = len(labels)
    fig = _fig((2.5 + 0.7 * n, 2 + 0.6 * n))
    ax = fig.subplots()
    im = ax.imshow(d, cmap="viridis")
    fig.colorbar(im, ax=ax, label=cbar_label)
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    if n <= 12:
        hi = np.nanmax(d) if d.size else 0
        for i, j in itertools.product(range(n), range(n)):
            ax.text(j, i, f"{d[i, j]:.3g}", ha="center", va="center", fontsize=8,
                    color="black" if d[i, j] > 0.6 * hi else "white")
    ax.set_title(title)
    return save_figure(fig, path)


def plot_dendrogram(d, labels: list[str], path, title: str) -> Path:
    """UPGMA dendrogram of an (n, n) distance matrix written to ``path`` (PNG)."""
    z = upgma(d, labels)
    fig = _fig((7, 1.5 + 0.4 * len(labels)))
    ax = fig.subplots()
    dendrogram(z, labels=list(labels), orientation="left", ax=ax, color_threshold=0)
    ax.set_xlabel("merge height (average linkage)")
    ax.set_title(title)
    return save_figure(fig, path)


def _fmt(s: dict) -> str:
    if s.get("r") is None:
        return f"{s.get('method', '')}: r undefined"
    return f"{s['method']} r = {s['r']:.3f}, p = {s['p_value']:.3g}{' (exact)' if s.get('exact') else ''}"


def plot_phylogeny_scatter(mmd_d, div_d, labels: list[str], path, stats: dict, modality_d=None,
                           partial: dict | None = None) -> Path:
    """Scatter of pairwise MMD² against divergence (Mya), one annotated point per pair; ``stats`` holds
    Mantel results (one result dict, or a dict of them by method) shown in the title. With ``modality_d``
    ((n, n), 0 = same modality) pairs are coloured by same/different modality; ``partial`` (result dicts by
    method) adds the partial Mantel given modality to the title."""
    mmd_d, div_d = np.asarray(mmd_d, float), np.asarray(div_d, float)
    iu = np.triu_indices(len(labels), 1)
    fig = _fig((7.5, 5.5))
    ax = fig.subplots()
    if modality_d is None:
        ax.scatter(div_d[iu], mmd_d[iu], s=30, color="tab:blue", zorder=3)
    else:
        same = np.asarray(modality_d)[iu] == 0
        for mask, color, name in ((same, "tab:blue", "same modality"), (~same, "tab:orange", "different modality")):
            ax.scatter(div_d[iu][mask], mmd_d[iu][mask], s=30, color=color, zorder=3, label=name)
        ax.legend(loc="upper center", fontsize=8)
    groups: dict[tuple, list[str]] = {}  # pairs at the same point share one label
    for i, j in zip(*iu):
        groups.setdefault((div_d[i, j], mmd_d[i, j]), []).append(f"{labels[i]}–{labels[j]}")
    for xy, names in groups.items() if len(iu[0]) <= 45 else ():
        ax.annotate("\n".join(names), xy, fontsize=7, xytext=(4, 2), textcoords="offset points", va="bottom")
    ax.set_xlabel("divergence time (Mya)")
    ax.set_ylabel("MMD²")
    ax.grid(alpha=0.3)
    parts = [stats] if "r" in stats else list(stats.values())
    title = "Mantel: " + "; ".join(_fmt(s) for s in parts)
    if partial:
        title += "\ngiven modality: " + "; ".join(_fmt(s) for s in partial.values())
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def phylogeny_analysis(mmd_matrix_json: Path, tree_path: Path | None, out_dir: Path,
                       permutations: int = 9999) -> dict:
    """Mantel tests (Spearman and Pearson) of MMD² vs divergence time for the datasets of ``mmd_matrix_json``
    (``{"datasets": [n card names], "mmd2": (n, n) nested list, ...}``), and for each modality scheme
    (``fine``, ``coarse``: see :func:`modality_class`) the Mantel test of MMD² vs "different modality" and the
    partial Mantel tests of each given the other; writes ``out_dir/phylogeny.json`` and ``out_dir/phylogeny.png``
    and returns the JSON's dict. An asymmetric MMD² matrix is symmetrised as (M + Mᵀ)/2.
    """
    from neuroadda.data.cards import get_card

    src = Path(mmd_matrix_json)
    try:
        data = json.loads(src.read_text())
        names, m = [str(x) for x in data["datasets"]], np.asarray(data["mmd2"], dtype=np.float64)
    except FileNotFoundError:
        raise InputError(f"{src}: MMD matrix file not found") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise InputError(f"{src}: need JSON with 'datasets' (names) and 'mmd2' (numeric matrix): "
                         f"{e.__class__.__name__}: {e}") from None
    if m.shape != (len(names), len(names)) or not np.isfinite(m).all():
        raise InputError(f"{src}: field 'mmd2': need a finite {len(names)}x{len(names)} matrix, got shape {m.shape}")
    notes = []
    if not np.allclose(m, m.T, rtol=1e-6, atol=1e-12):
        notes.append("mmd2 was not symmetric; used (M + M^T)/2")
    m = (m + m.T) / 2
    try:
        species = [get_card(x).species for x in names]
        classes = {sc: [modality_class(get_card(x).modality, sc) for x in names] for sc in SCHEMES}
    except InputError as e:
        raise InputError(f"{src}: field 'datasets': {e}") from None
    tree = load_tree(tree_path)
    div = divergence_matrix(species, tree)
    methods = ("spearman", "pearson")
    mantel = {k: mantel_test(m, div, permutations=permutations, method=k) for k in methods}
    if mantel["spearman"]["r"] is None:
        notes.append("correlation undefined: all divergence times (or all MMD² values) are equal"
                     + (f" (every dataset is {species[0]})" if len(set(species)) == 1 else ""))
    modality = {}
    for scheme in SCHEMES:  # does MMD² follow the species once the microscope is held fixed, and vice versa?
        mod = modality_matrix(classes[scheme])
        modality[scheme] = dict(
            classes=classes[scheme],
            mantel_modality={k: mantel_test(m, mod, permutations=permutations, method=k) for k in methods},
            partial_divergence_given_modality={k: partial_mantel_test(m, div, mod, permutations=permutations,
                                                                      method=k) for k in methods},
            partial_modality_given_divergence={k: partial_mantel_test(m, mod, div, permutations=permutations,
                                                                      method=k) for k in methods})
    result = dict(datasets=names, species=species, divergence_mya=div.tolist(), mmd2=m.tolist(), mantel=mantel,
                  modality=modality, tree=dict(path=tree.path, source=tree.source), note="; ".join(notes) or None)
    out_dir = Path(out_dir)
    plot_phylogeny_scatter(m, div, names, out_dir / "phylogeny.png", mantel,
                           modality_matrix(modality["fine"]["classes"]),
                           modality["fine"]["partial_divergence_given_modality"])
    write_json(out_dir / "phylogeny.json", result)
    return result
