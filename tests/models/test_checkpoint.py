"""The checkpoint record: numpy values in the metadata are stored as Python ones, so every checkpoint loads with
``torch.load(..., weights_only=True)`` (a fine-tune on a small target once stored its patch as numpy ints)."""

import numpy as np
import torch

from neuroadda.models.checkpoint import load_backbone, plain, save_backbone
from neuroadda.models.unet import AffinityUNet


def test_numpy_metadata_is_stored_as_python_and_loads_weights_only(tmp_path):
    net = AffinityUNet([4, 8], [(2, 2, 2)])
    meta = {"kind": "finetuned", "patch_size": [8, np.int64(16), np.int64(16)], "voxel_size": np.array([10.0] * 3),
            "threshold": np.float64(0.4), "learned": np.bool_(True), "normalization": "zscore",
            "threshold_table": [{"threshold": np.float32(0.4), "vi": np.float64(1.5)}], "shape": (np.int32(3), 4)}
    path = save_backbone(tmp_path / "model.pt", net, meta)
    raw = torch.load(path, weights_only=True)  # raises on any numpy global
    assert raw["patch_size"] == [8, 16, 16] and type(raw["patch_size"][1]) is int
    assert raw["voxel_size"] == [10.0, 10.0, 10.0] and type(raw["threshold"]) is float and raw["learned"] is True
    assert raw["shape"] == (3, 4) and type(raw["threshold_table"][0]["vi"]) is float
    bb = load_backbone(path)
    assert bb.threshold == 0.4 and bb.meta["patch_size"] == [8, 16, 16]


def test_plain_leaves_python_values_alone():
    obj = {"a": [1, 2.5, "x", None, True], "b": ("y", {"c": 3})}
    assert plain(obj) == obj
