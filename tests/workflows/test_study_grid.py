"""One path for the evidence and the user: ``select-source`` on a target stored at 30x6x6 nm gives the same
estimator scores as the transfer study, which prepares the same target at 30x10x10 nm, for the same backbones
(trained at 10 nm in-plane) and seed; both let each backbone see the target where the two grids meet."""

import json

import h5py
import numpy as np
import pytest
import torch
import yaml

from neuroadda.config import TransferStudyConfig, load_config
from neuroadda.models.checkpoint import save_backbone
from neuroadda.models.unet import AffinityUNet
from tests.conftest import blob_labels, raw_from_labels

pytestmark = pytest.mark.integration

ESTIMATORS = ["consistency", "consistency-input", "entropy", "mmd2", "mmd2-common", "compat"]


def _card(folder, name, voxel_size, shape, seed):
    lab = blob_labels(shape, cell=7, seed=seed)
    with h5py.File(folder / "data" / f"{name}.h5", "w") as f:
        f["raw"], f["labels"] = raw_from_labels(lab, seed=seed), lab
    card = {"name": name, "description": "tiny synthetic volume", "organism": "none", "species": "Mus musculus",
            "tissue": "none", "modality": "ssSEM", "voxel_size_nm": list(voxel_size),
            "files": [{"filename": f"{name}.h5"}], "raw": {"file": f"{name}.h5", "key": "raw"},
            "labels": {"file": f"{name}.h5", "key": "labels"}, "labels_kind": "3d_instance",
            "license": "CC0", "citation": "none", "local_dir": "data"}
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(card))


@pytest.fixture
def env(tmp_path, monkeypatch):
    cards = tmp_path / "cards"
    (cards / "data").mkdir(parents=True)
    _card(cards, "t6", (30.0, 6.0, 6.0), (12, 80, 80), 0)       # a target stored at 6 nm in-plane
    for k, s in enumerate(["s1", "s2"]):
        _card(cards, s, (30.0, 10.0, 10.0), (12, 48, 48), k + 1)  # sources and their backbones at 10 nm
        torch.manual_seed(10 + k)
        save_backbone(tmp_path / "bb" / s / "model.pt", AffinityUNet([4, 8, 16], [(1, 2, 2), (2, 2, 2)]),
                      {"kind": "backbone", "patch_size": [4, 16, 16], "voxel_size": [30.0, 10.0, 10.0],
                       "normalization": "zscore", "threshold": 0.5, "source": s, "labels_kind": "3d_instance"})
    monkeypatch.setenv("NEUROADDA_DATASETS", str(cards))
    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump({"targets": [{"name": "t6", "voxel_size": [30, 10, 10],
                                                "candidate_size": [4, 16, 16]}],
                                   "sources": ["s1", "s2"], "budgets": [1], "seeds": 2, "estimators": ESTIMATORS,
                                   "backbones": str(tmp_path / "bb"), "out": str(tmp_path / "study")}))
    return tmp_path, load_config(cfg, TransferStudyConfig)


def test_select_source_gives_the_study_estimator_scores(env):
    from neuroadda.selection.ranking import rank
    from neuroadda.workflows.study import Element, run_element

    tmp_path, cfg = env
    backbones = {s: tmp_path / "bb" / s / "model.pt" for s in ("s1", "s2")}
    for name in ESTIMATORS:
        study = json.loads(run_element(cfg, Element("estimator", "t6", name)).read_text())
        user = rank("t6", backbones, [name], seed=0, permutations=200)  # the stored 30x6x6 target, as a lab has it
        assert user["estimators"][name]["scores"] == study["scores"], name
        if name.startswith("consistency"):  # the per-patch VIs behind the scores, not only a (possibly capped) mean
            for s in backbones:
                assert user["estimators"][name]["detail"][s]["vi"] == study["detail"][s]["vi"]
        assert all(np.isfinite(v) for v in study["scores"].values())
    assert user["settings"]["seen_at"] == {"s1": [30.0, 10.0, 10.0], "s2": [30.0, 10.0, 10.0]}
    assert user["settings"]["target_voxel_size_nm"] == [30.0, 6.0, 6.0] and "in-plane" in user["settings"]["grid"]


def test_the_stored_grid_would_have_given_other_scores(env):
    """The check above can fail: the same estimator on the target as stored (no meeting) scores differently."""
    from neuroadda.data.volume import open_volume
    from neuroadda.models.checkpoint import load_backbone
    from neuroadda.selection.estimators.prediction import _target_patches

    tmp_path, _ = env
    bb = load_backbone(tmp_path / "bb" / "s1" / "model.pt")

    class Ctx:
        seed = 0

    stored = open_volume("t6", labels_key=None)
    met = open_volume("t6", labels_key=None, resample_to=(30, 10, 10))
    a, _ = _target_patches(Ctx, bb.net, bb.meta, stored)
    b, _ = _target_patches(Ctx, bb.net, bb.meta, met)
    assert not all(np.array_equal(x, y) for x, y in zip(a, b))
