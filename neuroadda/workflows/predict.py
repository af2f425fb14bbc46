"""``neuroadda predict``: a backbone checkpoint + a volume -> affinities in a zarr array, streamed block by block."""

from __future__ import annotations

from pathlib import Path

from neuroadda.data.volume import open_volume
from neuroadda.inference.blockwise import (
    MAX_BLOCK_VOXELS,
    finalize_zarr,
    open_prediction_zarr,
    predict_blockwise,
    tmp_path_for,
)
from neuroadda.models.checkpoint import load_backbone


def prediction_input(checkpoint: str | Path, input_spec: str, *, voxel_size=None):
    """What every prediction needs: (Backbone, the input volume at the checkpoint's voxel size when the input's
    own is known, its normaliser, the output attributes: voxel size, input, checkpoint, threshold, source,
    labels kind, code version, offsets, learned)."""
    bb = load_backbone(checkpoint)
    probe = open_volume(input_spec, labels_key=None, voxel_size=voxel_size)
    known = probe.info.get("voxel_size_source") != "assumed isotropic 1 nm"
    vol = open_volume(input_spec, labels_key=None, voxel_size=voxel_size, resample_to=bb.voxel_size) if known else probe
    meta = bb.meta
    attrs = {"voxel_size_nm": list(vol.voxel_size), "input": input_spec, "checkpoint": str(checkpoint),
             "threshold": bb.threshold, "source": meta.get("source"), "labels_kind": vol.labels_kind,
             "code_version": meta.get("code_version"), "offsets": [[-1, 0, 0], [0, -1, 0], [0, 0, -1]],
             "learned": bb.learned}
    return bb, vol, bb.normalizer_for(vol.raw), attrs


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
    bb, vol, normalizer, attrs = prediction_input(checkpoint, input_spec, voxel_size=voxel_size)
    arr = open_prediction_zarr(out, (3,) + vol.shape, dtype=dtype, attrs=attrs)
    predict_blockwise(bb.net, vol.raw, arr, roi_size=bb.patch_size, block_shape=block_shape, overlap=overlap,
                      device=device, normalize=normalizer, progress=progress,
                      max_block_voxels=max_block_voxels or MAX_BLOCK_VOXELS)
    finalize_zarr(tmp_path_for(out), out)
    return Path(out)
