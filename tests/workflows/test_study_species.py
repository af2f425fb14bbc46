"""Cross-species reading of the transfer study: items, the transfer distance by hand, the same-species
preference rows and the Mantel block on a synthetic results record."""

import numpy as np
import pytest

from neuroadda.workflows.study_species import cross_species, datasets_info, item_distance, preference_rows


def test_datasets_cut_from_one_volume_are_one_item():
    info = datasets_info(["gala-train", "gala-test", "mouse-ac4-a", "mouse-ac4-b", "neuroproof"])
    assert info["gala-train"]["item"] == info["gala-test"]["item"] == "gala-test/gala-train"
    assert info["mouse-ac4-a"]["item"] == info["mouse-ac4-b"]["item"] != info["neuroproof"]["item"]
    assert info["mouse-ac4-b"]["species"] == "Mus musculus" and info["mouse-ac4-b"]["modality"] == "ATUM-SEM"
    assert info["neuroproof"]["modality"] == "FIB-SEM"


def test_item_distance_by_hand():
    info = {k: {"item": k} for k in "abc"}
    # target a: b 1.0, c 3.0 -> z(b) = -0.7071, z(c) = +0.7071; target b: a 2.0, c 2.0 -> 0, 0
    d = item_distance({"a": {"b": 1.0, "c": 3.0}, "b": {"a": 2.0, "c": 2.0}}, info, ["a", "b", "c"])
    z = 1 / np.sqrt(2)
    assert d[0, 1] == pytest.approx((-z + 0) / 2) and d[1, 0] == d[0, 1]
    assert d[0, 2] == pytest.approx(z) and d[1, 2] == pytest.approx(0.0)
    assert np.isnan(item_distance({"a": {"b": 1.0, "c": 3.0}}, info, ["a", "b", "c"])[1, 2])


def _res():
    rng = np.random.default_rng(1)
    fly, mouse = "Drosophila melanogaster", "Mus musculus"
    datasets = {"np": (fly, "FIB-SEM", "np"), "gt": (fly, "FIB-SEM", "g"), "gs": (fly, "FIB-SEM", "g"),
                "is": (fly, "ssTEM", "is"), "ma": (mouse, "ATUM-SEM", "m"), "mb": (mouse, "ATUM-SEM", "m")}
    info = {k: {"species": s, "modality": m, "item": i} for k, (s, m, i) in datasets.items()}
    sources = ["np", "gs", "is", "ma"]
    targets = {}
    for t in ["np", "gt", "is", "mb"]:
        arms = {}
        for s in [s for s in sources if info[s]["item"] != info[t]["item"] or t in ("gt", "mb")]:
            same = info[s]["species"] == info[t]["species"]
            vi = (2.0 - 0.5 * same + rng.normal(0, 0.05, 8)).tolist()
            arms[s] = {"vi": vi}
        arms["scratch"] = {"vi": (2.5 + rng.normal(0, 0.05, 8)).tolist()}
        targets[t] = {"seeds": list(range(8)), "arms": arms,
                      "estimators": {"mmd2": {s: float(rng.random()) for s in arms if s != "scratch"}}}
    return {"targets": targets, "datasets": info}


def test_every_target_prefers_its_own_species_when_it_is_built_so():
    rows = preference_rows(_res(), _res()["datasets"])
    assert {r["target"] for r in rows} == {"np", "gt", "is", "mb"}
    for r in rows:
        assert r["reading"] == "prefers its own species" and r["ci_high"] < 0 and r["same_rank"] == 1
        assert r["wilcoxon_p"] == pytest.approx(2 / 2 ** 8)  # 8 pairs, all negative: the exact minimum
    assert next(r for r in rows if r["target"] == "mb")["same"] == "ma"


def test_cross_species_block_has_every_mantel_row():
    cs = cross_species(_res())
    assert cs["items"] == ["g", "is", "m", "np"]
    assert set(cs["mantel"]) == {"transfer ~ species", "transfer ~ modality", "transfer ~ MMD²",
                                 "MMD² ~ species", "MMD² ~ modality"}
    m = cs["mantel"]["transfer ~ species"]
    assert m["n"] == 4 and m["exact"] and m["r"] > 0  # far species = worse transfer, as built
    assert np.array(cs["divergence_mya"])[2, 3] == pytest.approx(694.0, abs=50)
