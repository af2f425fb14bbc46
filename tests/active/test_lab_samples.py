"""select-samples on a lab's own volume: the whole volume is the pool (no held-out slab unless asked), large
pools are subsampled, and every exported sample carries the backbone's segmentation as a proposal that finetune
never reads."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import tifffile
import torch

from neuroadda.active.annotations import read_annotation, sample_labels
from neuroadda.cli.main import main
from neuroadda.config import MAX_CANDIDATES, AdaptConfig
from neuroadda.errors import InputError
from neuroadda.workflows.select_samples import returned_labels, select_samples_for
from tests.conftest import ADAPT_CONFIG, labelled_volume, tiny_backbone

CONFIG = ADAPT_CONFIG.replace("holdout_fraction: 0.4", "holdout_fraction: 0.4\n  strategy: random")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    d = tmp_path_factory.mktemp("lab")
    torch.set_num_threads(1)
    (d / "cfg.yaml").write_text(CONFIG)
    return {"dir": d, "target": labelled_volume(d / "target.h5", 0), "bb": tiny_backbone(d / "bb.pt", 0),
            "cfg": AdaptConfig.model_validate({"active": {"candidate_size": [8, 16, 16], "strategy": "random"}})}


def _covers(rec, axis, stop):
    return max(c[axis][1] for c in rec["candidates"]) == stop


def test_the_whole_volume_is_the_pool_by_default(lab, tmp_path):
    # target 24x40x48 (z, y, x), candidates 8x16x16: the longest axis is x; a 0.4 slab would hold x 29..48
    rec, _ = select_samples_for(lab["target"], lab["bb"], lab["cfg"], 2, tmp_path / "a", proposals=False)
    assert rec["pool_size"] == 3 * 2 * 3 and len(rec["candidates"]) == 18 and _covers(rec, 2, 48)
    assert rec["held_out"] is False and rec["holdout"][2] == [48, 48]  # empty
    held, _ = select_samples_for(lab["target"], lab["bb"], lab["cfg"], 2, tmp_path / "b", holdout=True,
                                 proposals=False)
    assert held["pool_size"] == 3 * 2 * 1 and _covers(held, 2, 16) and held["holdout"][2] == [29, 48]
    # picks land where a held-out slab would have been (random strategy, every seed drawn from the whole pool)
    xs = {s["box"][2][0] for seed in range(6)
          for s in select_samples_for(lab["target"], lab["bb"], lab["cfg"].model_copy(update={"seed": seed}), 2,
                                      tmp_path / f"s{seed}", proposals=False)[0]["samples"]}
    assert max(xs) >= 32


def test_a_large_pool_is_subsampled_and_a_small_one_kept_whole(lab, tmp_path):
    small = lab["cfg"].model_copy(update={"active": lab["cfg"].active.model_copy(update={"max_candidates": 5})})
    rec, _ = select_samples_for(lab["target"], lab["bb"], small, 2, tmp_path / "a", proposals=False)
    assert rec["pool_size"] == 18 and len(rec["candidates"]) == len(rec["scores"]) == 5
    assert all(s["box"] in rec["candidates"] for s in rec["samples"])
    again, _ = select_samples_for(lab["target"], lab["bb"], small, 2, tmp_path / "b", proposals=False)
    assert again["candidates"] == rec["candidates"] and again["scores"] == rec["scores"]


def test_default_cap_is_kept_out_of_settings_records():
    """Runs recorded before the cap existed (adapt's run.json, a study's config) still compare equal."""
    assert "max_candidates" not in AdaptConfig().model_dump(mode="json")["active"]
    assert AdaptConfig().active.max_candidates == MAX_CANDIDATES
    set_ = AdaptConfig.model_validate({"active": {"max_candidates": None}})
    assert set_.model_dump(mode="json")["active"]["max_candidates"] is None
    assert AdaptConfig.model_validate(set_.model_dump(mode="json")).active.max_candidates is None


def test_exported_samples_carry_proposals_that_finetune_ignores(lab, tmp_path):
    out = tmp_path / "sel"
    rec, _ = select_samples_for(lab["target"], lab["bb"], lab["cfg"], 2, out)
    annotate = out / "annotate"
    for s in rec["samples"]:
        shape = tuple(b - a for a, b in s["box"])
        with h5py.File(annotate / f"{s['name']}.h5", "r") as f:
            prop = f["proposal"][()]
            assert "proposal" in f.attrs["instructions"]
        assert prop.shape == shape and prop.dtype == np.uint32 and prop.min() >= 1
        assert np.array_equal(np.unique(prop), np.arange(1, prop.max() + 1))  # numbered 1..k
        assert np.array_equal(tifffile.imread(annotate / f"{s['name']}_proposal.tif"), prop)
    # proposals alone are not annotations: finetune finds nothing to read
    assert not returned_labels(annotate)
    with pytest.raises(InputError, match="no annotation for 'sample_00'"):
        read_annotation(annotate, "sample_00", tuple(b - a for a, b in rec["samples"][0]["box"]))
    # the annotator's corrected labels are what is read, not the proposal
    gt = h5py.File(lab["target"], "r")["labels"][()]
    boxes = [tuple(slice(a, b) for a, b in s["box"]) for s in rec["samples"]]
    for s, box in zip(rec["samples"], boxes):
        tifffile.imwrite(annotate / f"{s['name']}_labels.tif", gt[box].astype(np.uint32))
    from neuroadda.data.volume import open_volume

    got = sample_labels(open_volume(lab["target"], labels_key=None), boxes, [s["name"] for s in rec["samples"]],
                        labels_dir=annotate)
    assert all(np.array_equal(g, gt[b].astype(np.uint32)) for g, b in zip(got, boxes))


def test_proposal_is_the_backbone_segmentation_of_the_sample_with_its_margin_cut(lab, tmp_path):
    """Recomputed here: predict the grown box, waterz at the checkpoint's threshold, crop, renumber."""
    from skimage.segmentation import relabel_sequential

    from neuroadda.data.volume import open_volume
    from neuroadda.inference.blockwise import predict_blockwise
    from neuroadda.models.checkpoint import load_backbone
    from neuroadda.segmentation.agglomerate import segment
    from neuroadda.workflows.proposals import margin_voxels, proposals_for

    bb = load_backbone(lab["bb"])
    vol = open_volume(lab["target"], labels_key=None)
    box = (slice(8, 16), slice(16, 32), slice(16, 32))
    m = margin_voxels(bb.patch_size, bb.voxel_size, vol.voxel_size)
    assert m == (4, 8, 8)
    norm = bb.normalizer_for(vol.raw)
    grown = (slice(4, 20), slice(8, 40), slice(8, 40))
    x = norm(vol.raw.read(grown).astype(np.float32))
    affs = np.zeros((3,) + x.shape, np.float32)
    predict_blockwise(bb.net, x, affs, roi_size=bb.patch_size, progress=False)
    want = relabel_sequential(segment(affs, 0.5)[4:12, 8:24, 8:24])[0]
    assert np.array_equal(proposals_for(vol, [box], bb, norm)[0], want)


def test_cli_max_candidates_and_bad_values(lab, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["select-samples", "--target", lab["target"], "--backbone", lab["bb"], "--n", "1", "--max-candidates",
                 "4", "--no-proposals", "--config", str(lab["dir"] / "cfg.yaml"), "--out", str(out), "--quiet"]) == 0
    rec = json.loads((out / "samples.json").read_text())
    assert len(rec["scores"]) == 4 and rec["pool_size"] == 18 and not list((out / "annotate").glob("*_proposal*"))
    assert "4 scored candidates of a pool of 18" in capsys.readouterr().out
    assert main(["select-samples", "--target", lab["target"], "--backbone", lab["bb"], "--max-candidates", "-1",
                 "--out", str(tmp_path / "bad"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--max-candidates must be >= 0" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()
    assert main(["select-samples", "--target", lab["target"], "--backbone", lab["bb"], "--workers", "2",
                 "--out", str(tmp_path / "bad"), "--quiet"]) == 2
    assert "need --block-size" in capsys.readouterr().err
