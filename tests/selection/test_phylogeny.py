"""Species tree, divergence matrix, Mantel test, UPGMA, figures and the MMD-vs-phylogeny analysis."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import yaml
from scipy.stats import pearsonr, spearmanr

from neuroadda.data.cards import all_cards, datasets_dir
from neuroadda.errors import ConfigError, InputError
from neuroadda.selection.phylogeny import (
    divergence_matrix,
    load_tree,
    mantel_test,
    phylogeny_analysis,
    plot_dendrogram,
    plot_heatmap,
    plot_phylogeny_scatter,
    upgma,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HUMAN, MOUSE, RAT, FINCH, FISH, FLY, WORM, WORM2 = (
    "Homo sapiens", "Mus musculus", "Rattus norvegicus", "Taeniopygia guttata", "Danio rerio",
    "Drosophila melanogaster", "Caenorhabditis elegans", "Platynereis dumerilii")


def random_distance(n, seed):
    """A symmetric (n, n) matrix with zero diagonal and distinct positive off-diagonal entries."""
    rng = np.random.default_rng(seed)
    m = np.zeros((n, n))
    m[np.triu_indices(n, 1)] = rng.permutation(n * (n - 1) // 2) + 1.0 + rng.random(n * (n - 1) // 2) * 0.1
    return m + m.T


def upper(m):
    return m[np.triu_indices(len(m), 1)]


# ---------------------------------------------------------------- tree

def test_bundled_tree_loads_and_is_ultrametric():
    tree = load_tree()
    assert "TimeTree 5" in tree.source and "msac174" in tree.source
    sp = [HUMAN, MOUSE, RAT, FINCH, FISH, FLY, WORM, WORM2]
    assert set(tree.lineage) == set(sp)
    d = divergence_matrix(sp, tree)
    assert d.shape == (8, 8) and np.array_equal(d, d.T) and np.all(np.diag(d) == 0)
    assert np.all(upper(d) > 0)
    for i, j, k in itertools.permutations(range(8), 3):  # ultrametric inequality
        assert d[i, k] <= max(d[i, j], d[j, k]) + 1e-9
    t = {s: d[0, sp.index(s)] for s in sp}
    assert tree.mya(MOUSE, RAT) < t[MOUSE] < t[FINCH] < t[FISH] < t[FLY]
    assert 85 <= t[MOUSE] <= 92 and 310 <= t[FINCH] <= 320 and 425 <= t[FISH] <= 436 and 680 <= t[FLY] <= 700
    assert 10 <= tree.mya(MOUSE, RAT) <= 20
    assert tree.mya(FLY, WORM) < tree.mya(FLY, WORM2) <= tree.mya(FLY, HUMAN)
    assert tree.mya(HUMAN, HUMAN) == 0


def test_every_card_species_is_in_the_tree():
    tree = load_tree()
    for card in all_cards().values():
        assert card.species in tree.lineage, card.name


def test_repeated_species_have_zero_divergence():
    d = divergence_matrix([FLY, FLY, MOUSE], load_tree())
    assert d[0, 1] == 0 and d[0, 2] == d[1, 2] > 0


def _write_variant(tmp_path, edit):
    data = yaml.safe_load((datasets_dir() / "phylogeny.yaml").read_text())
    edit(data)
    p = tmp_path / "phylo.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


@pytest.mark.parametrize("edit, field", [
    (lambda d: d.update(extra=1), "'extra'"),
    (lambda d: d.pop("source"), "'source'"),
    (lambda d: d["tree"].update(age_myr=5), "'tree.age_myr'"),
    (lambda d: d["tree"]["children"][0].update(age_mya=800), "'tree.children.0.age_mya'"),
    (lambda d: d["tree"]["children"][0].update(age_mya="old"), "'tree.children.0.age_mya'"),
    (lambda d: d["tree"]["children"][0]["children"].append("Homo sapiens"), "appears twice"),
    (lambda d: d["tree"]["children"][0]["children"].append("Felis catus"), "'Felis catus'"),
    (lambda d: d["species"].append({"name": "Felis catus", "common": "cat"}), "not placed"),
    (lambda d: d["species"][0].update(latin="x"), "'species.0.latin'"),
])
def test_bad_tree_field_is_config_error_naming_it(tmp_path, edit, field):
    p = _write_variant(tmp_path, edit)
    with pytest.raises(ConfigError) as e:
        load_tree(p)
    assert field in str(e.value) and str(p) in str(e.value)


def test_missing_tree_file_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_tree(tmp_path / "nope.yaml")


def test_unknown_species_is_input_error_naming_it_and_file():
    tree = load_tree()
    with pytest.raises(InputError) as e:
        divergence_matrix([HUMAN, "Felis catus"], tree)
    assert "Felis catus" in str(e.value) and "phylogeny.yaml" in str(e.value)


# ---------------------------------------------------------------- Mantel

def brute_force_p(a, b, method):
    """p of the one-sided exact Mantel test by an explicit loop over all n! relabellings of b."""
    corr = spearmanr if method == "spearman" else pearsonr
    n = len(a)
    r0 = corr(upper(a), upper(b))[0]
    hits = sum(corr(upper(a), upper(b[np.ix_(p, p)]))[0] >= r0 - 1e-10 for p in itertools.permutations(range(n)))
    return r0, hits / math.factorial(n)


@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_identical_matrices_give_r1_and_smallest_p(method):
    a = random_distance(5, seed=1)
    res = mantel_test(a, a, method=method)
    assert res["exact"] and res["permutations"] == 120 and res["n"] == 5 and res["n_pairs"] == 10
    assert res["r"] == pytest.approx(1.0)
    assert res["p_value"] == pytest.approx(1 / 120)  # distinct entries: only the identity reaches r = 1
    big = random_distance(9, seed=2)
    res = mantel_test(big, big, permutations=999, method=method)
    assert not res["exact"] and res["permutations"] == 999
    assert res["r"] == pytest.approx(1.0) and res["p_value"] == pytest.approx(1 / 1000)


@pytest.mark.parametrize("method", ["spearman", "pearson"])
@pytest.mark.parametrize("seed", [3, 4])
def test_exact_p_matches_brute_force(method, seed):
    a, b = random_distance(5, seed), random_distance(5, seed + 100)
    b = 0.7 * b + 0.3 * a  # some agreement, so p is not trivially ~0.5
    res = mantel_test(a, b, method=method)
    r0, p = brute_force_p(a, b, method)
    assert res["r"] == pytest.approx(r0, abs=1e-12)
    assert res["p_value"] == pytest.approx(p)


def test_two_sided_and_ties():
    a = random_distance(6, seed=5)
    b = np.round(random_distance(6, seed=6) / 5)  # ties in b
    for m, corr in (("spearman", spearmanr), ("pearson", pearsonr)):
        res = mantel_test(a, b, method=m, alternative="two-sided")
        assert res["r"] == pytest.approx(corr(upper(a), upper(b))[0], abs=1e-12)
        rs = [corr(upper(a), upper(b[np.ix_(p, p)]))[0] for p in itertools.permutations(range(6))]
        assert res["p_value"] == pytest.approx(np.mean(np.abs(rs) >= abs(res["r"]) - 1e-10))


def test_random_matrices_give_large_p_and_seed_is_reproducible():
    ps = [mantel_test(random_distance(12, s), random_distance(12, s + 50), permutations=999, seed=s)["p_value"]
          for s in range(5)]
    assert min(ps) > 0.05 and np.median(ps) > 0.2
    a, b = random_distance(10, 7), random_distance(10, 8)
    assert mantel_test(a, b, permutations=500, seed=1) == mantel_test(a, b, permutations=500, seed=1)


def test_zero_variance_gives_none_not_nan():
    a = random_distance(4, 0)
    res = mantel_test(a, np.zeros((4, 4)))
    assert res["r"] is None and res["p_value"] is None and "undefined" in res["note"]


def test_mantel_rejects_bad_input():
    with pytest.raises(InputError, match="symmetric"):
        mantel_test(np.arange(9.0).reshape(3, 3), np.zeros((3, 3)))
    with pytest.raises(InputError, match="shapes differ"):
        mantel_test(np.zeros((3, 3)), np.zeros((4, 4)))
    with pytest.raises(InputError):
        mantel_test(np.zeros((3, 3)), np.zeros((3, 3)), method="kendall")


# ---------------------------------------------------------------- UPGMA and figures

def test_upgma_topology_and_heights():
    # A-B closest (2), C-D next (4); UPGMA heights by hand:
    # (AB)-C = (6+8)/2 = 7, (AB)-D = (10+10)/2 = 10 -> (CD) merges at 4 first, then (AB)-(CD) = (6+8+10+10)/4 = 8.5
    d = np.array([[0, 2, 6, 10], [2, 0, 8, 10], [6, 8, 0, 4], [10, 10, 4, 0]], float)
    z = upgma(d, list("ABCD"))
    assert z.shape == (3, 4)
    assert sorted(z[0, :2]) == [0, 1] and z[0, 2] == pytest.approx(2) and z[0, 3] == 2
    assert sorted(z[1, :2]) == [2, 3] and z[1, 2] == pytest.approx(4)
    assert sorted(z[2, :2]) == [4, 5] and z[2, 2] == pytest.approx(8.5) and z[2, 3] == 4
    with pytest.raises(InputError):
        upgma(d, list("ABC"))


def test_upgma_of_bundled_divergences_recovers_the_tree():
    tree = load_tree()
    sp = list(tree.lineage)
    z = upgma(divergence_matrix(sp, tree), sp)
    ages = sorted({age for lin in tree.lineage.values() for _, age in lin})
    assert sorted(z[:, 2]) == pytest.approx(ages)  # ultrametric input: UPGMA heights are the clade ages


def assert_png(path):
    assert path.is_file() and path.read_bytes()[:8] == PNG_MAGIC
    assert not list(path.parent.glob("*.tmp*"))


def test_figures_are_written_as_png(tmp_path):
    tree = load_tree()
    sp = [HUMAN, MOUSE, FINCH, FISH, FLY]
    div = divergence_matrix(sp, tree)
    mmd = random_distance(5, 9)
    assert_png(plot_heatmap(div, sp, tmp_path / "heat.png", "divergence", "Mya"))
    assert_png(plot_dendrogram(div, sp, tmp_path / "sub" / "dendro.png", "UPGMA of divergence"))
    stats = {m: mantel_test(mmd, div, method=m) for m in ("spearman", "pearson")}
    assert_png(plot_phylogeny_scatter(mmd, div, sp, tmp_path / "scatter.png", stats))
    assert_png(plot_phylogeny_scatter(mmd, div, sp, tmp_path / "scatter1.png", stats["pearson"]))


# ---------------------------------------------------------------- analysis

def write_mmd(path, names, mmd):
    path.write_text(json.dumps({"datasets": names, "mmd2": np.asarray(mmd).tolist(), "backbone": "x"}))
    return path


def test_phylogeny_analysis_on_public_cards(tmp_path):
    names = ["h01", "microns-minnie65", "snemi3d", "zebrafinch-j0126", "fib25"]
    # made-up MMD² growing with divergence, mouse-mouse smallest
    mmd = np.array([[0, .2, .25, .5, .9], [.2, 0, .05, .45, .85], [.25, .05, 0, .5, .8],
                    [.5, .45, .5, 0, .95], [.9, .85, .8, .95, 0]])
    res = phylogeny_analysis(write_mmd(tmp_path / "mmd.json", names, mmd), None, tmp_path / "out", permutations=99)
    assert res["species"] == [HUMAN, MOUSE, MOUSE, FINCH, FLY]
    div = np.array(res["divergence_mya"])
    assert div[1, 2] == 0 and div[0, 1] == load_tree().mya(HUMAN, MOUSE) and div[0, 4] > div[0, 3] > div[0, 1]
    for m in ("spearman", "pearson"):
        s = res["mantel"][m]
        assert s["exact"] and s["permutations"] == 120 and s["r"] > 0.5 and s["p_value"] < 0.1
    assert res["mantel"]["spearman"]["r"] == pytest.approx(spearmanr(upper(mmd), upper(div))[0])
    assert "TimeTree 5" in res["tree"]["source"] and res["note"] is None
    on_disk = json.loads((tmp_path / "out" / "phylogeny.json").read_text())
    assert on_disk == json.loads(json.dumps(res))
    assert_png(tmp_path / "out" / "phylogeny.png")


def test_phylogeny_analysis_all_drosophila_has_note_not_nan(tmp_path):
    names = ["cremi-a", "cremi-b", "fib25", "isbi2012"]
    res = phylogeny_analysis(write_mmd(tmp_path / "mmd.json", names, random_distance(4, 3)), None, tmp_path)
    assert set(res["species"]) == {FLY} and not np.any(res["divergence_mya"])
    for m in ("spearman", "pearson"):
        assert res["mantel"][m]["r"] is None and res["mantel"][m]["p_value"] is None
    assert "undefined" in res["note"] and FLY in res["note"]
    text = (tmp_path / "phylogeny.json").read_text()
    assert "NaN" not in text and json.loads(text)["mantel"]["spearman"]["r"] is None
    assert_png(tmp_path / "phylogeny.png")


def test_phylogeny_analysis_bad_inputs(tmp_path):
    with pytest.raises(InputError, match="not-a-dataset"):
        phylogeny_analysis(write_mmd(tmp_path / "a.json", ["h01", "not-a-dataset"], np.eye(2)), None, tmp_path)
    with pytest.raises(InputError, match="mmd2"):
        phylogeny_analysis(write_mmd(tmp_path / "b.json", ["h01", "fib25"], np.eye(3)), None, tmp_path)
    (tmp_path / "c.json").write_text("{")
    with pytest.raises(InputError, match="c.json"):
        phylogeny_analysis(tmp_path / "c.json", None, tmp_path)
