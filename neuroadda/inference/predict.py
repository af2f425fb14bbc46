"""``neuroadda predict``: a backbone checkpoint + a volume -> affinities in a zarr array, streamed block by block."""

from __future__ import annotations

from pathlib import Path

from neuroadda.data.volume import open_volume
from neuroadda.inference.blockwise import (MAX_BLOCK_VOXELS, finalize_zarr, open_prediction_zarr, predict_blockwise,
                                          tmp_path_for)
from neuroadda.models.checkpoint import load_backbone


def predict_volume(checkpoint: str | Path, input_spec: str, out: str | Path, *, voxel_size=None,
                   dtype: str = "float32", block_shape=None, overlap: float = 0.25, device=None,
                   progress: bool = True, max_block_voxels: int | None = None) -> Path:
    """Predict affinities (3, z, y, x) for ``input_spec`` at the backbone's training voxel size.

    The input is resampled to the checkpoint's voxel size when its own voxel size is known (card, file
    attributes or ``voxel_size``); the output attributes record the voxel size, checkpoint and threshold.
    The normaliser is fitted on a bounded random sample of cubes (``fit_normalizer``), and blocks hold at
    most ``max_block_voxels`` read voxels (default ``MAX_BLOCK_VOXELS``, ~0.4 GB), so memory does not grow with
    the volume. The result equals MONAI's sliding window over the whole volume (see :mod:`.blockwise`).
    """
    bb = load_backbone(checkpoint)
    net, meta = bb
    probe = open_volume(input_spec, labels_key=None, voxel_size=voxel_size)
    known = probe.info.get("voxel_size_source") != "assumed isotropic 1 nm"
    target_vs = tuple(meta["voxel_size"]) if known else None
    vol = open_volume(input_spec, labels_key=None, voxel_size=voxel_size, resample_to=target_vs) if known else probe
    normalizer = bb.normalizer_for(vol.raw)
    attrs = {"voxel_size_nm": list(vol.voxel_size), "input": input_spec, "checkpoint": str(checkpoint),
             "threshold": meta.get("threshold"), "source": meta.get("source"), "labels_kind": vol.labels_kind,
             "code_version": meta.get("code_version"), "offsets": [[-1, 0, 0], [0, -1, 0], [0, 0, -1]],
             "learned": meta.get("learned")}
    arr = open_prediction_zarr(out, (3,) + vol.shape, dtype=dtype, attrs=attrs)
    predict_blockwise(net, vol.raw, arr, roi_size=meta["patch_size"], block_shape=block_shape, overlap=overlap,
                      device=device, normalize=normalizer, progress=progress,
                      max_block_voxels=max_block_voxels or MAX_BLOCK_VOXELS)
    finalize_zarr(tmp_path_for(out), out)
    return Path(out)
