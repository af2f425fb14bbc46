"""Shared fixtures: tiny synthetic labelled volumes written to real HDF5 / zarr / TIFF files."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

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
