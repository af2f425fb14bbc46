"""Fine-tuning on a few labelled samples: patch choice, sample sampling, validation split."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuroadda.config import AdaptConfig
from neuroadda.data.normalize import Normalizer
from neuroadda.data.patches import SamplesPatchDataset
from neuroadda.data.volume import LabelledVolume, Volume
from neuroadda.errors import InputError
from neuroadda.models.checkpoint import load_backbone, save_backbone
from neuroadda.models.unet import AffinityUNet
from neuroadda.workflows.finetune import finetune, patch_for, sample_volumes
from tests.conftest import blob_labels, raw_from_labels


def _target():
    lab = blob_labels((16, 48, 48), cell=6)
    return LabelledVolume(name="t", raw=Volume(raw_from_labels(lab), "t", (10, 10, 10)),
                          labels=Volume(lab, "t", (10, 10, 10), is_labels=True), voxel_size=(10.0, 10.0, 10.0))


def test_patch_for_caps_and_rounds_to_stride():
    assert patch_for(None, (16, 96, 96), (16, 80, 80), (2, 8, 8)) == (16, 80, 80)
    assert patch_for(None, (16, 96, 96), (12, 70, 100), (4, 8, 8)) == (12, 64, 96)
    assert patch_for((8, 32, 32), (16, 96, 96), (16, 80, 80), (2, 8, 8)) == (8, 32, 32)
    with pytest.raises(InputError, match="smaller than one network stride"):
        patch_for(None, (16, 96, 96), (2, 80, 80), (4, 8, 8))


def test_samples_dataset_draws_from_every_sample_deterministically():
    vol = _target()
    boxes = [(slice(0, 8), slice(0, 16), slice(0, 16)), (slice(8, 16), slice(32, 48), slice(32, 48))]
    labels = [vol.labels.read(b) for b in boxes]
    samples = sample_volumes(vol, boxes, labels)
    ds = SamplesPatchDataset(samples, (8, 16, 16), Normalizer("none"), length=40, seed=3)
    raws = [np.asarray(vol.raw.read(b), np.float32) for b in boxes]
    hits = [0, 0]
    for i in range(40):
        img = ds[i]["image"][0].numpy()
        k = [j for j, r in enumerate(raws) if np.array_equal(r, img)]
        assert len(k) == 1  # each item is exactly one whole sample (patch = sample size, no augmentation)
        hits[k[0]] += 1
    assert min(hits) >= 10
    assert torch.equal(ds[7]["image"],
                       SamplesPatchDataset(samples, (8, 16, 16), Normalizer("none"), length=40, seed=3)[7]["image"])
    with pytest.raises(InputError, match="labels shape"):
        sample_volumes(vol, boxes, [labels[0], labels[1][:4]])


def test_validation_split_picks_threshold_on_held_back_samples(tmp_path):
    vol = _target()
    torch.manual_seed(0)
    bb = save_backbone(tmp_path / "bb.pt", AffinityUNet([4, 8, 16], [(2, 2, 2), (2, 2, 2)]),
                       {"patch_size": [8, 16, 16], "voxel_size": [10.0] * 3, "normalization": "zscore", "source": "s"})
    boxes = [(slice(0, 8), slice(y, y + 16), slice(0, 16)) for y in (0, 16, 32)]
    cfg = AdaptConfig(finetune={"max_steps": 2, "batch_size": 1, "val_samples": 1, "thresholds": [0.3, 0.6],
                                "logger": "none"})
    path = finetune(vol, boxes, [vol.labels.read(b) for b in boxes], bb, cfg, tmp_path / "ft", seed=1, progress=False)
    net, meta = load_backbone(path)
    assert meta["n_train"] == 2 and meta["n_val"] == 1 and meta["threshold_region"]["what"] == "validation samples"
    assert meta["threshold"] == min(meta["threshold_table"], key=lambda r: r["vi"])["threshold"]
    assert meta["kind"] == "finetuned" and meta["steps"] == 2 and meta["patch_size"] == [8, 16, 16]
    init, _ = load_backbone(bb)
    assert any(not torch.equal(a, b) for a, b in zip(net.state_dict().values(), init.state_dict().values()))


def test_offset_continues_the_item_sequence():
    vol = _target()
    boxes = [(slice(0, 8), slice(0, 16), slice(0, 16)), (slice(8, 16), slice(32, 48), slice(32, 48))]
    samples = sample_volumes(vol, boxes, [vol.labels.read(b) for b in boxes])
    full = SamplesPatchDataset(samples, (8, 16, 16), Normalizer("none"), length=20, seed=5)
    resumed = SamplesPatchDataset(samples, (8, 16, 16), Normalizer("none"), length=20, seed=5, offset=6)
    for j in range(10):
        assert torch.equal(resumed[j]["image"], full[j + 6]["image"])
