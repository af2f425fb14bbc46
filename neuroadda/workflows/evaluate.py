"""``neuroadda evaluate``: score a stored segmentation against ground truth (VI in bits, adapted Rand)."""

from __future__ import annotations

import numpy as np

from neuroadda.data.io import open_array, split_spec
from neuroadda.errors import InputError


def evaluate(seg_spec: str, gt_spec: str, *, labels_kind: str | None = None, baselines: bool = False,
             raw_spec: str | None = None) -> dict:
    """Scores of the segmentation at ``seg_spec`` (PATH[:KEY]) against ``gt_spec`` (dataset name or PATH[:KEY]).

    The ground truth is brought to the segmentation's voxel size when the segmentation records one. Returns
    {seg, gt, labels_kind, units, vi_split, vi_merge, vi, adapted_rand, n_slices[, baselines]}; with
    ``baselines`` also one segment and thresholded-raw components (raw from ``raw_spec`` or beside the gt)."""
    from neuroadda.data.volume import is_dataset_name, open_labels, open_volume
    from neuroadda.metrics.vi import evaluate_segmentation

    seg_arr = open_array(*split_spec(seg_spec))
    if np.dtype(seg_arr.dtype).kind not in "iu":
        raise InputError(f"{seg_spec}: a segmentation must be integer labels, got dtype {seg_arr.dtype}")
    seg_vs = seg_arr.attrs.get("voxel_size_nm")
    gt = open_labels(gt_spec, resample_to=tuple(seg_vs) if seg_vs else None)
    if tuple(seg_arr.shape) != tuple(gt.labels.shape):
        raise InputError(f"{seg_spec}: segmentation shape {tuple(seg_arr.shape)} does not match ground truth "
                         f"{gt.labels.name} shape {tuple(gt.labels.shape)}")
    gt_data = gt.labels.read((slice(None),) * 3)
    kind = labels_kind or gt.labels_kind
    try:
        scores = evaluate_segmentation(np.asarray(seg_arr[(slice(None),) * 3]), gt_data, labels_kind=kind)
    except ValueError as e:
        raise InputError(f"{gt.labels.name}: {e}") from None
    result = {"seg": seg_spec, "gt": gt_spec, "labels_kind": kind, "units": "bits", **scores}
    if baselines:
        from neuroadda.metrics.baselines import baseline_scores

        spec = raw_spec or (gt_spec if is_dataset_name(gt_spec) else str(split_spec(gt_spec)[0]))
        raw = open_volume(spec, labels_key=None, resample_to=tuple(seg_vs) if seg_vs else None).raw
        if raw.shape != gt.labels.shape:
            raise InputError(f"{raw.name}: raw shape {raw.shape} does not match ground truth {gt.labels.shape}")
        result["baselines"] = baseline_scores(raw.read((slice(None),) * 3), gt_data, labels_kind=kind)
    return result
