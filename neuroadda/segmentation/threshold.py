"""Predict labelled regions, agglomerate at several waterz thresholds and score each by VI.

One function serves threshold choice after pretraining (validation slab), after fine-tuning (the labelled
samples) and the held-out evaluation (a single threshold, a single region).
"""

from __future__ import annotations

import numpy as np

TWO_D = "2d_instance_per_slice"


def predict_region(net, raw: np.ndarray, normalizer, roi_size, *, labels_kind: str = "3d_instance", device=None,
                   progress: bool = False) -> np.ndarray:
    """Sigmoid affinities (3, z, y, x) float32 of ``net`` on an in-memory (z, y, x) ``raw`` block.

    For 2-D labels (``2d_instance_per_slice``) the z-affinities are set to 0: they were never trained (masked in
    the loss), so every slice is segmented on its own, as it is scored."""
    from neuroadda.inference.blockwise import predict_blockwise

    affs = np.zeros((3,) + raw.shape, np.float32)
    predict_blockwise(net, raw, affs, roi_size=roi_size,
                      normalize=normalizer, device=device, progress=progress)
    if labels_kind == TWO_D:
        affs[0] = 0.0
    return affs


def threshold_table(net, regions, normalizer, thresholds, roi_size, *, labels_kind: str = "3d_instance",
                    device=None, progress: bool = False, keep=None) -> tuple[float, list[dict]]:
    """Score every waterz threshold on labelled ``regions`` = [(raw (z, y, x), gt (z, y, x)), ...].

    Returns (threshold with the lowest mean VI, rows) where each row is {threshold, vi_split, vi_merge, vi,
    adapted_rand} averaged over the regions (VI in bits, gt label 0 ignored; 2-D labels scored per slice).
    ``keep(region_index, threshold, seg)``, when given, sees every segmentation (e.g. to save a slice)."""
    from neuroadda.metrics.vi import evaluate_segmentation
    from neuroadda.segmentation.agglomerate import segmentations

    thresholds = sorted(float(t) for t in thresholds)
    sums: dict[float, dict[str, float]] = {}
    for i, (raw, gt) in enumerate(regions):
        affs = predict_region(net, raw, normalizer, roi_size, labels_kind=labels_kind, device=device, progress=progress)
        for t, seg in segmentations(affs, thresholds, per_slice=labels_kind == TWO_D):
            scores = evaluate_segmentation(seg, gt, labels_kind=labels_kind)
            if keep is not None:
                keep(i, float(t), seg)
            row = sums.setdefault(float(t), dict.fromkeys(scores, 0.0))
            for k, v in scores.items():
                row[k] += float(v) / len(regions)
    table = [{"threshold": t, **sums[t]} for t in thresholds]
    best = min(table, key=lambda r: (r["vi"], r["threshold"]))
    return best["threshold"], table
