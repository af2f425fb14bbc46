"""Shared fixtures: tiny synthetic labelled volumes written to real HDF5 / zarr / TIFF files."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
import torch
from scipy import ndimage

from neuroadda.models.checkpoint import save_backbone
from neuroadda.models.unet import AffinityUNet

os.environ.setdefault("WANDB_MODE", "offline")


def blob_labels(shape=(12, 40, 40), cell=8, seed=0) -> np.ndarray:
    """Instance labels: a coarse random grid of ids upsampled, with one-voxel 0 boundaries between objects."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(1, 2**40, size=tuple(-(-n // cell) + 1 for n in shape), dtype=np.uint64)
    idx = np.ix_(*[np.arange(n) // cell for n in shape])
    lab = coarse[idx]
    edge = np.zeros(shape, bool)
    for ax in range(3):
        d = np.diff(lab, axis=ax) != 0
        sl = [slice(None)] * 3
        sl[ax] = slice(1, None)
        edge[tuple(sl)] |= d
    lab[edge] = 0
    return lab


def raw_from_labels(labels: np.ndarray, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    raw = np.where(labels == 0, 60, 180).astype(np.float32) + rng.normal(0, 10, labels.shape)
    return np.clip(raw, 0, 255).astype(np.uint8)


@pytest.fixture
def tiny_h5(tmp_path):
    """An HDF5 file with raw (uint8) and labels (uint64), resolution attributes, 12x40x40."""
    lab = blob_labels()
    path = tmp_path / "tiny.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("raw", data=raw_from_labels(lab), chunks=(4, 16, 16))
        f.create_dataset("labels", data=lab, chunks=(4, 16, 16))
        f.attrs["resolution_nm"] = [20.0, 10.0, 10.0]
    return path


ADAPT_CONFIG = """  # a tiny adapt.yaml: 8x16x16 candidates, 3 fine-tuning steps
active:
  candidate_size: [8, 16, 16]
  holdout_fraction: 0.4
finetune:
  max_steps: 3
  batch_size: 1
  thresholds: [0.3, 0.7]
  logger: none
select_source:
  estimator: mmd2   # tiny random networks segment everything as one object: consistency would tie them all
  patches: 8
  permutations: 20
"""


PRETRAIN_CONFIG = """  # a tiny pretrain.yaml: 3 steps of a 4-8-16 UNet on 8x16x16 patches
model:
  channels: [4, 8, 16]
data:
  patch_size: [8, 16, 16]
train:
  max_steps: 3
  batch_size: 1
  val_every_n_steps: 10
  val_patches: 1
  thresholds: [0.3, 0.7]
  logger: none
  checkpoint_every: 0
"""


def labelled_volume(path, seed, dark=False, *, shape=(24, 40, 48), cell=6, voxel_size=(10.0, 10.0, 10.0)) -> str:
    """An HDF5 file (raw, labels, ``resolution_nm``) of blob labels, 24x40x48 at 10 nm unless told; ``dark``
    inverts the raw contrast."""
    lab = blob_labels(shape, cell=cell, seed=seed)
    raw = raw_from_labels(lab, seed=seed)
    with h5py.File(path, "w") as f:
        f["raw"], f["labels"] = (255 - raw if dark else raw), lab
        f.attrs["resolution_nm"] = [float(v) for v in voxel_size]
    return str(path)


def tiny_backbone(path, seed) -> str:
    """A saved 3-level AffinityUNet (4-8-16 channels, patch 8x16x16, 10 nm, threshold 0.5), weights seeded."""
    torch.manual_seed(seed)
    net = AffinityUNet([4, 8, 16], [(2, 2, 2), (2, 2, 2)])
    return str(save_backbone(path, net, {"kind": "backbone", "patch_size": [8, 16, 16], "voxel_size": [10.0] * 3,
                                         "normalization": "zscore", "threshold": 0.5, "source": "x"}))


def smooth_affinities(shape=(20, 40, 40), seed=0) -> np.ndarray:
    """(3, z, y, x) float32 affinities: a smooth random 'cell interior' field plus channel noise, so the
    watershed gives a few hundred fragments and mean-affinity scores are continuous (no ties)."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=shape), 2)
    noise = np.stack([ndimage.gaussian_filter(rng.normal(size=shape), 1.5) for _ in range(3)])
    return (1 / (1 + np.exp(-(3 * noise + 20 * field)))).astype(np.float32)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when a and b are the same segmentation up to the names of the segments."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()], axis=1), axis=0)
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))
