"""Trivial segmentation baselines that any trained model must beat (VI in bits, gt 0 ignored)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from neuroadda.metrics.vi import evaluate_segmentation


def one_segment(gt: np.ndarray) -> np.ndarray:
    """Everything one object: VI = H(gt) (all merge)."""
    return np.ones(gt.shape, np.uint64)


def threshold_components(raw: np.ndarray, threshold: float) -> np.ndarray:
    """Connected components (6-connectivity) of ``raw > threshold``; dark voxels (membranes) are label 0."""
    lab, _ = ndimage.label(raw > threshold)
    return lab.astype(np.uint64)


def baseline_scores(raw: np.ndarray, gt: np.ndarray, *, labels_kind: str = "3d_instance",
                    percentiles=(10, 20, 30, 40, 50, 60)) -> dict[str, dict]:
    """Scores of the one-segment baseline and of the best intensity-threshold components baseline.

    The threshold baseline is given every advantage: its threshold (a percentile of ``raw``) is picked on ``gt``.
    """
    out = {"one_segment": evaluate_segmentation(one_segment(gt), gt, labels_kind=labels_kind)}
    best = None
    for p in percentiles:
        t = float(np.percentile(raw, p))
        s = evaluate_segmentation(threshold_components(raw, t), gt, labels_kind=labels_kind)
        if best is None or s["vi"] < best["vi"]:
            best = {**s, "percentile": p}
    out["threshold_components"] = best
    return out
