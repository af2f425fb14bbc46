"""Annotation proposals: the backbone's own segmentation of each sample, for an annotator to correct instead of
painting from nothing.

Each sample box is grown by a context margin (half the backbone's patch on every side, clipped to the volume),
seen where the target meets the backbone (:func:`neuroadda.data.volume.model_view`), predicted with the
sliding window of ``neuroadda predict``, segmented at the checkpoint's waterz threshold with the default
fragments (per slice for 2-D labelled backbones), brought back to the target's grid (nearest), cropped to the
box (the margin is cut away) and numbered 1..k (uint32). ``finetune`` never reads them: only what the annotator
returns as ``labels``.
"""

from __future__ import annotations

import numpy as np

from neuroadda.data.regions import Box, box_shape
from neuroadda.data.volume import LabelledVolume, model_view, resize


def margin_voxels(patch_size, model_voxel_size, voxel_size) -> tuple[int, int, int]:
    """Half a patch of the model's grid, in voxels of the target's grid (rounded up)."""
    return tuple(int(np.ceil((p // 2) * m / v)) for p, m, v in zip(patch_size, model_voxel_size, voxel_size))


def proposals_for(vol: LabelledVolume, boxes: list[Box], bb, normalizer, *, progress: bool = False) -> list:
    """One uint32 (z, y, x) segmentation per box of ``vol``'s grid (the box's shape) by backbone ``bb``."""
    from skimage.segmentation import relabel_sequential
    from tqdm.auto import tqdm

    from neuroadda.inference.blockwise import predict_blockwise
    from neuroadda.segmentation.agglomerate import segment
    from neuroadda.vocab import TWO_D

    view = model_view(vol, bb.voxel_size)
    seen = tuple(getattr(view, "voxel_size", vol.voxel_size))
    margin = margin_voxels(bb.patch_size, seen, vol.voxel_size)
    threshold = 0.5 if bb.threshold is None else float(bb.threshold)
    out = []
    for box in tqdm(boxes, desc="proposals", unit="sample", disable=not progress):
        grown = tuple(slice(max(0, s.start - m), min(n, s.stop + m)) for s, m, n in zip(box, margin, vol.shape))
        x = np.asarray(view.read(grown), np.float32)
        affs = np.zeros((3,) + x.shape, np.float32)
        predict_blockwise(bb.net, x, affs, roi_size=bb.patch_size, normalize=normalizer, progress=False)
        seg = segment(affs, threshold, per_slice=bb.labels_kind == TWO_D)
        if seg.shape != box_shape(grown):
            seg = resize(seg, box_shape(grown), labels=True)
        inner = seg[tuple(slice(s.start - g.start, s.stop - g.start) for s, g in zip(box, grown))]
        out.append(relabel_sequential(inner)[0].astype(np.uint32))
    return out

