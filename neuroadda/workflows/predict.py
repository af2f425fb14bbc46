"""``neuroadda predict``: a backbone checkpoint + a volume -> affinities in a zarr array, streamed block by block."""

from __future__ import annotations

import shutil
from pathlib import Path

from neuroadda.data.volume import open_volume, seen_by
from neuroadda.inference.blockwise import (
    MAX_BLOCK_VOXELS,
    finalize_zarr,
    open_prediction_zarr,
    predict_blockwise,
    tmp_path_for,
)
from neuroadda.models.checkpoint import load_backbone


def prediction_input(checkpoint: str | Path, input_spec: str, *, voxel_size=None):
    """What every prediction needs: (Backbone, the input volume where it meets the checkpoint's grid
    (:mod:`neuroadda.data.grid`; as stored when its voxel size is unknown), its normaliser, the output
    attributes: voxel size of the output (the input's own grid: predictions are brought back there), the grid
    the model saw, input, checkpoint, threshold, source, labels kind, code version, offsets, learned)."""
    from neuroadda.data.grid import RULE

    bb = load_backbone(checkpoint)
    stored = open_volume(input_spec, labels_key=None, voxel_size=voxel_size)
    vol = seen_by(stored, bb.voxel_size)
    meta = bb.meta
    attrs = {"voxel_size_nm": list(stored.voxel_size), "seen_at_nm": list(vol.voxel_size), "grid": RULE,
             "input": input_spec, "checkpoint": str(checkpoint),
             "threshold": bb.threshold, "source": meta.get("source"), "labels_kind": vol.labels_kind,
             "code_version": meta.get("code_version"), "offsets": [[-1, 0, 0], [0, -1, 0], [0, 0, -1]],
             "learned": bb.learned}
    return bb, vol, bb.normalizer_for(vol.raw), attrs, stored


def predict_volume(checkpoint: str | Path, input_spec: str, out: str | Path, *, voxel_size=None,
                   dtype: str = "float32", block_shape=None, overlap: float = 0.25, device=None,
                   progress: bool = True, max_block_voxels: int | None = None) -> Path:
    """Predict affinities (3, z, y, x) for ``input_spec`` on its own grid.

    The model sees the input where the two grids meet (in-plane at the checkpoint's pixel size; see
    :mod:`neuroadda.data.grid`); where that differs from the input's own grid the affinities are brought back
    to it block by block (:func:`neuroadda.inference.regrid.regrid`). The output attributes record the voxel
    size, the grid the model saw, the checkpoint and threshold. The normaliser is fitted on a bounded random
    sample of cubes (``fit_normalizer``), and blocks hold at most ``max_block_voxels`` read voxels (default
    ``MAX_BLOCK_VOXELS``, ~0.4 GB), so memory does not grow with the volume. On one grid the result equals
    MONAI's sliding window over the whole volume (see :mod:`.blockwise`).
    """
    bb, vol, normalizer, attrs, stored = prediction_input(checkpoint, input_spec, voxel_size=voxel_size)
    moved = vol is not stored
    seen_out = Path(str(out) + ".seen") if moved else Path(out)
    arr = open_prediction_zarr(seen_out, (3,) + vol.shape, dtype=dtype, attrs=attrs)
    predict_blockwise(bb.net, vol.raw, arr, roi_size=bb.patch_size, block_shape=block_shape, overlap=overlap,
                      device=device, normalize=normalizer, progress=progress,
                      max_block_voxels=max_block_voxels or MAX_BLOCK_VOXELS)
    if moved:
        from neuroadda.inference.regrid import regrid

        back = open_prediction_zarr(out, (3,) + stored.shape, dtype=dtype, attrs=attrs)
        regrid(arr, vol.voxel_size, back, stored.voxel_size)
        shutil.rmtree(tmp_path_for(seen_out), ignore_errors=True)
    finalize_zarr(tmp_path_for(out), out)
    return Path(out)
