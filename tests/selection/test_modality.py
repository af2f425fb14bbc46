"""Modality classes of the cards and the partial Mantel test (against hand-computed and least-squares references)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import pearsonr, rankdata, spearmanr

from neuroadda.data.cards import all_cards, get_card
from neuroadda.errors import InputError
from neuroadda.selection.modality import modality_class, modality_matrix, partial_mantel_test
from neuroadda.selection.phylogeny import load_tree, mantel_test
from tests.selection.test_phylogeny import random_distance, upper

pytestmark = pytest.mark.integration  # the slow lane: pytest -m 'not integration' skips it


def from_upper(v):
    """Symmetric (n, n) matrix with zero diagonal whose upper triangle (row-major) is ``v``."""
    n = int(round((1 + math.sqrt(1 + 8 * len(v))) / 2))
    m = np.zeros((n, n))
    m[np.triu_indices(n, 1)] = v
    return m + m.T


def residual_partial(x, y, z):
    """Reference partial correlation: correlate the least-squares residuals of x and y on [1, z]."""
    a = np.column_stack([np.ones_like(z), z])
    rx = x - a @ np.linalg.lstsq(a, x, rcond=None)[0]
    ry = y - a @ np.linalg.lstsq(a, y, rcond=None)[0]
    return float(rx @ ry / np.sqrt((rx @ rx) * (ry @ ry)))


# ---------------------------------------------------------------- modality classes

@pytest.mark.parametrize("text, fine, coarse", [
    ("FIB-SEM (isotropic)", "FIB-SEM", "block-face"),
    ("SBEM (serial block-face SEM, anisotropic)", "SBEM", "block-face"),
    ("ssTEM (serial-section TEM, anisotropic)", "ssTEM", "serial-section"),
    ("ssSEM (ATUM-collected serial sections, SEM; anisotropic)", "ATUM-SEM", "serial-section"),
    ("ssSEM (ATUM-collected serial sections, 61-beam multibeam SEM; anisotropic)", "multibeam SEM", "serial-section"),
])
def test_modality_class_of_card_texts(text, fine, coarse):
    assert modality_class(text) == fine and modality_class(text, "coarse") == coarse


def test_every_card_has_a_modality_class_and_the_new_crops_differ():
    for card in all_cards().values():
        assert modality_class(card.modality) in ("FIB-SEM", "SBEM", "ssTEM", "ATUM-SEM", "multibeam SEM")
    got = [modality_class(get_card(n).modality) for n in ("kasthuri2015-mouse", "h01-crop", "platynereis-vergara2021",
                                                           "neuroproof", "isbi2012")]
    assert got == ["ATUM-SEM", "multibeam SEM", "SBEM", "FIB-SEM", "ssTEM"]


def test_modality_class_rejects_unknown_text_and_scheme():
    with pytest.raises(InputError, match="X-ray"):
        modality_class("X-ray holotomography")
    with pytest.raises(InputError, match="scheme"):
        modality_class("FIB-SEM", "medium")


def test_modality_matrix():
    m = modality_matrix(["FIB-SEM", "ssTEM", "FIB-SEM"])
    assert np.array_equal(m, [[0, 1, 0], [1, 0, 1], [0, 1, 0]]) and m.dtype == np.float64


def test_phylogeny_lookups_for_the_new_species():
    tree = load_tree()
    sp = {n: get_card(n).species for n in ("kasthuri2015-mouse", "h01-crop", "platynereis-vergara2021", "neuroproof")}
    assert sp == {"kasthuri2015-mouse": "Mus musculus", "h01-crop": "Homo sapiens",
                  "platynereis-vergara2021": "Platynereis dumerilii", "neuroproof": "Drosophila melanogaster"}
    assert tree.mya("Mus musculus", "Homo sapiens") == 87  # Euarchontoglires
    assert tree.mya("Platynereis dumerilii", "Drosophila melanogaster") == 686  # Protostomia
    assert (tree.mya("Platynereis dumerilii", "Homo sapiens")
            == tree.mya("Drosophila melanogaster", "Mus musculus") == 694)
    assert tree.mya("Drosophila melanogaster", "Drosophila melanogaster") == 0  # larva vs adult: same species


# ---------------------------------------------------------------- partial Mantel

def test_hand_computed_case_reverses_the_sign():
    # z splits the 6 pairs into two groups; x and y both jump with z (plain r = 146/154 = 0.948), but within
    # each group they run in opposite directions: residuals (-1, 0, 1) vs (1, 0, -1), so r_xy.z = -1 exactly.
    # r_xz = r_yz = 15 / sqrt(154 * 1.5); (146/154 - 225/231) / (1 - 225/231) = -1.
    x = from_upper([1, 2, 3, 11, 12, 13])
    y = from_upper([3, 2, 1, 13, 12, 11])
    z = from_upper([0, 0, 0, 1, 1, 1])
    res = partial_mantel_test(x, y, z, method="pearson")
    assert res["r_xy"] == pytest.approx(146 / 154) and res["r_xz"] == pytest.approx(15 / math.sqrt(231))
    assert res["r"] == pytest.approx(-1.0)
    assert res["exact"] and res["permutations"] == 24 and res["n_pairs"] == 6
    assert mantel_test(x, y, method="pearson")["r"] == pytest.approx(146 / 154)


@pytest.mark.parametrize("method", ["spearman", "pearson"])
@pytest.mark.parametrize("seed", [0, 1])
def test_exact_p_matches_brute_force_with_least_squares_reference(method, seed):
    a, b, c = random_distance(6, seed), random_distance(6, seed + 10), random_distance(6, seed + 20)
    x, y = 0.5 * a + 0.5 * c, 0.4 * a + 0.6 * b  # x and y share a; both partly depend on z = c through x
    z = c
    tx = lambda m: rankdata(upper(m)) if method == "spearman" else upper(m)  # noqa: E731
    r0 = residual_partial(tx(x), tx(y), tx(z))
    rs = [residual_partial(tx(x[np.ix_(p, p)]), tx(y), tx(z)) for p in itertools.permutations(range(6))]
    res = partial_mantel_test(x, y, z, method=method)
    assert res["r"] == pytest.approx(r0, abs=1e-12)
    assert res["p_value"] == pytest.approx(np.mean(np.array(rs) >= r0 - 1e-10))
    res2 = partial_mantel_test(x, y, z, method=method, alternative="two-sided")
    assert res2["p_value"] == pytest.approx(np.mean(np.abs(rs) >= abs(r0) - 1e-10))
    corr = spearmanr if method == "spearman" else pearsonr
    assert res["r_xy"] == pytest.approx(corr(upper(x), upper(y))[0], abs=1e-12)


def test_random_permutations_large_n_and_reproducible():
    x, y, z = random_distance(10, 1), random_distance(10, 2), random_distance(10, 3)
    res = partial_mantel_test(x, y, z, permutations=999, seed=4)
    assert not res["exact"] and res["permutations"] == 999 and 0.001 <= res["p_value"] <= 1
    assert res == partial_mantel_test(x, y, z, permutations=999, seed=4)
    ref = residual_partial(rankdata(upper(x)), rankdata(upper(y)), rankdata(upper(z)))
    assert res["r"] == pytest.approx(ref, abs=1e-12)
    strong = partial_mantel_test(y + 0.01 * x, y, z, permutations=999)
    assert strong["r"] > 0.9 and strong["p_value"] == pytest.approx(1 / 1000)


def test_confounded_signal_vanishes_given_the_confounder():
    # x follows z ("modality") plus noise; y follows z too. Plain Mantel x~y is strong, partial given z is not.
    groups = np.repeat([0, 1, 2], 4)
    z = modality_matrix(list(groups))
    noise = lambda s: random_distance(12, s) / 66  # noqa: E731  (entries in (0, 1.1])
    x, y = z + 0.3 * noise(1), z + 0.3 * noise(2)
    assert mantel_test(x, y, permutations=999)["p_value"] < 0.01
    res = partial_mantel_test(x, y, z, permutations=999)
    assert abs(res["r"]) < 0.3 and res["p_value"] > 0.05


def test_eight_datasets_are_enumerated_exactly():
    x = random_distance(8, 3)
    for res in (mantel_test(x, x), partial_mantel_test(x, x, np.zeros((8, 8)))):
        assert res["exact"] and res["permutations"] == math.factorial(8)
        assert res["r"] == pytest.approx(1.0) and res["p_value"] == pytest.approx(1 / math.factorial(8))


def test_constant_z_gives_the_plain_mantel_r():
    x, y = random_distance(5, 1), random_distance(5, 2)
    res = partial_mantel_test(x, y, np.ones((5, 5)) - np.eye(5))
    assert res["r_xz"] == 0 and res["r"] == pytest.approx(mantel_test(x, y)["r"])
    assert res["p_value"] == pytest.approx(mantel_test(x, y)["p_value"])


def test_undefined_cases_give_none_with_a_note():
    x, y = random_distance(5, 1), random_distance(5, 2)
    res = partial_mantel_test(x, np.zeros((5, 5)), y)
    assert res["r"] is None and res["p_value"] is None and "undefined" in res["note"]
    res = partial_mantel_test(x, y, 2 * y + 1 - np.diag([1.0] * 5))  # y is a linear function of z
    assert res["r"] is None and "linear function" in res["note"]


def test_bad_input_is_input_error():
    a = random_distance(4, 0)
    with pytest.raises(InputError, match="shapes differ"):
        partial_mantel_test(a, a, random_distance(5, 0))
    with pytest.raises(InputError, match="symmetric"):
        partial_mantel_test(a, a, np.arange(16.0).reshape(4, 4))
    with pytest.raises(InputError, match="kendall"):
        partial_mantel_test(a, a, a, method="kendall")


def test_plain_mantel_matches_scikit_bio_if_installed():
    mantel = pytest.importorskip("skbio.stats.distance").mantel
    x, y = random_distance(9, 5), random_distance(9, 6) + 0.5 * random_distance(9, 5)
    for method in ("spearman", "pearson"):
        ours = mantel_test(x, y, method=method, permutations=999)
        r, p, n = mantel(x, y, method=method, permutations=999, alternative="greater")
        assert ours["r"] == pytest.approx(r, abs=1e-12) and n == 9
        assert abs(ours["p_value"] - p) < 0.05  # different random relabellings: p agrees to Monte-Carlo error


# ---------------------------------------------------------------- wiring: phylogeny analysis and mmd-matrix CLI

CROSS = ["neuroproof", "gala-train", "isbi2012", "vnc-gerhard2013", "kasthuri2015-mouse", "h01-crop",
         "platynereis-vergara2021"]


def test_phylogeny_analysis_separates_modality_from_species(tmp_path):
    import json

    from neuroadda.selection.phylogeny import phylogeny_analysis

    classes = [modality_class(get_card(n).modality) for n in CROSS]
    mmd = modality_matrix(classes) + 0.05 * random_distance(len(CROSS), 1) / 21  # follows the microscope only
    (tmp_path / "m.json").write_text(json.dumps({"datasets": CROSS, "mmd2": mmd.tolist()}))
    res = phylogeny_analysis(tmp_path / "m.json", None, tmp_path, permutations=99)
    fine = res["modality"]["fine"]
    assert fine["classes"] == classes and res["modality"]["coarse"]["classes"][0] == "block-face"
    assert fine["mantel_modality"]["spearman"]["r"] > 0.5 and fine["mantel_modality"]["spearman"]["p_value"] < 0.05
    assert fine["partial_modality_given_divergence"]["spearman"]["p_value"] < 0.05
    assert fine["partial_divergence_given_modality"]["spearman"]["p_value"] > 0.05
    assert json.loads((tmp_path / "phylogeny.json").read_text())["modality"]["fine"]["classes"] == classes


@pytest.mark.parametrize("patch, fragment", [(["8", "64", "64"], "larger than the volume"),
                                             (["6", "48", "48"], "multiple of this encoder's stride")])
def test_mmd_matrix_refuses_a_bad_patch_before_embedding(tmp_path, capsys, patch, fragment):
    from neuroadda.cli.main import main
    from neuroadda.data.cards import datasets_dir

    out = tmp_path / "o"
    assert main(["mmd-matrix", "--datasets", "platynereis-vergara2021", "gala-train", "--encoder",
                 str(datasets_dir() / "backbones" / "gala-train.pt"), "--voxel-size", "50", "20", "20",
                 "--patch-size", *patch, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0] and not out.exists()
