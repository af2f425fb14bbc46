"""The user's verbs on a target stored at 30x6x6 nm with a backbone trained at 30x10x10 nm: select-samples
scores where the grids meet but keeps the samples on the target's grid, finetune trains at the meeting grid,
and predict brings the affinities back to the target's grid."""

import h5py
import numpy as np
import pytest
import torch
import zarr
from skimage.transform import resize as sk_resize

from neuroadda.config import AdaptConfig
from neuroadda.models.checkpoint import load_backbone, save_backbone
from neuroadda.models.unet import AffinityUNet
from tests.conftest import labelled_volume

pytestmark = pytest.mark.integration


@pytest.fixture
def six_nm(tmp_path):
    path = labelled_volume(tmp_path / "six.h5", 5, shape=(8, 100, 80), cell=10, voxel_size=(30, 6, 6))
    torch.manual_seed(0)
    ckpt = save_backbone(tmp_path / "bb.pt", AffinityUNet([4, 8, 16], [(1, 2, 2), (2, 2, 2)]),
                         {"kind": "backbone", "patch_size": [4, 16, 16], "voxel_size": [30.0, 10.0, 10.0],
                          "normalization": "zscore", "threshold": 0.5, "source": "x", "labels_kind": "3d_instance"})
    return tmp_path, str(path), ckpt


def test_samples_stay_on_the_target_grid_and_finetune_trains_where_the_grids_meet(six_nm):
    from neuroadda.workflows.finetune import finetune_from_samples
    from neuroadda.workflows.select_samples import select_samples_for

    tmp_path, target, ckpt = six_nm
    cfg = AdaptConfig.model_validate({"active": {"candidate_size": [4, 32, 32], "holdout_fraction": 0.3},
                                      "finetune": {"max_steps": 2, "batch_size": 1, "thresholds": [0.5],
                                                   "logger": "none", "checkpoint_every": 0}})
    rec, path = select_samples_for(target, ckpt, cfg, 2, tmp_path / "samples")
    assert rec["voxel_size_nm"] == [30.0, 6.0, 6.0] and rec["scored_at_nm"] == [30.0, 10.0, 10.0]
    assert all(s["shape"] == [4, 32, 32] for s in rec["samples"])
    with h5py.File(tmp_path / "samples" / "annotate" / "sample_00.h5") as f:
        assert f["raw"].shape == (4, 32, 32)  # annotators see the target's own resolution
    model = finetune_from_samples(target, path, ckpt, cfg, tmp_path / "ft", progress=False)
    bb = load_backbone(model)
    assert bb.voxel_size == (30.0, 10.0, 10.0)
    assert all(p <= n for p, n in zip(bb.patch_size, (4, 19, 19)))  # a 32-voxel sample is 19 voxels at 10 nm


def test_predict_brings_the_affinities_back_to_the_target_grid(six_nm):
    from neuroadda.data.volume import open_volume
    from neuroadda.workflows.predict import predict_volume

    tmp_path, target, ckpt = six_nm
    out = predict_volume(ckpt, target, tmp_path / "affs.zarr", progress=False)
    arr = zarr.open_array(str(out), mode="r")
    assert arr.shape == (3, 8, 100, 80)
    assert arr.attrs["voxel_size_nm"] == [30.0, 6.0, 6.0] and arr.attrs["seen_at_nm"] == [30.0, 10.0, 10.0]
    # independently: the model on the 10 nm view, then skimage's linear resize back to 6 nm
    met = open_volume(target, resample_to=(30, 10, 10))
    ref_path = tmp_path / "met.h5"
    with h5py.File(ref_path, "w") as f:
        f["raw"] = met.raw.read(tuple(slice(0, n) for n in met.shape))
        f.attrs["resolution_nm"] = [30.0, 10.0, 10.0]
    seen = np.asarray(zarr.open_array(str(predict_volume(ckpt, str(ref_path), tmp_path / "seen.zarr",
                                                         progress=False)), mode="r"))
    ref = np.stack([sk_resize(c, (8, 100, 80), order=1, mode="edge", anti_aliasing=False) for c in seen])
    got = np.asarray(arr)
    assert np.abs(got - ref).mean() < 0.01 and np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.99
