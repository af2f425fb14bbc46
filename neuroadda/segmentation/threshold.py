"""Predict labelled regions, agglomerate at several waterz thresholds and score each by VI.

One function serves threshold choice after pretraining (validation slab), after fine-tuning (the labelled
samples) and the held-out evaluation (a single threshold, a single region).
"""

from __future__ import annotations

import numpy as np

from neuroadda.vocab import TWO_D


def predict_region(net, raw: np.ndarray, normalizer, roi_size, *, labels_kind: str = "3d_instance", device=None,
                   progress: bool = False, grid=None) -> np.ndarray:
    """Sigmoid affinities (3, z, y, x) float32 of ``net`` on an in-memory (z, y, x) ``raw`` block.

    ``grid``: (the block's voxel size, the model's training voxel size) in nm, or None when they agree. The
    model then sees the block where the two meet (:func:`neuroadda.data.grid.meet`: the block is resized there)
    and its affinities are brought back to the block's grid (linear interpolation), so they are scored there.
    For 2-D labels (``2d_instance_per_slice``) the z-affinities are set to 0: they were never trained (masked in
    the loss), so every slice is segmented on its own, as it is scored."""
    from neuroadda.data.grid import grid_shape, meet, same_grid
    from neuroadda.data.volume import resize
    from neuroadda.inference.blockwise import predict_blockwise

    seen = None if grid is None or grid[0] is None or grid[1] is None else meet(*grid)
    if seen is not None and not same_grid(seen, grid[0]):
        shape = grid_shape(raw.shape, grid[0], seen)
        affs = predict_region(net, resize(np.asarray(raw), shape, labels=False), normalizer, roi_size,
                              labels_kind=labels_kind, device=device, progress=progress)
        return np.stack([resize(a, raw.shape, labels=False) for a in affs]).astype(np.float32, copy=False)
    affs = np.zeros((3,) + raw.shape, np.float32)
    predict_blockwise(net, raw, affs, roi_size=roi_size,
                      normalize=normalizer, device=device, progress=progress)
    if labels_kind == TWO_D:
        affs[0] = 0.0
    return affs


def score_region(net, raw, gt, normalizer, threshold: float, roi_size, *, labels_kind: str = "3d_instance",
                 device=None, grid=None) -> tuple[dict, np.ndarray]:
    """Predict one labelled region (``grid`` as in :func:`predict_region`), segment it at ``threshold`` and
    score it on its own grid: ({vi_split, vi_merge, vi, adapted_rand, n_slices}, segmentation (z, y, x)
    uint64). VI in bits, gt label 0 ignored."""
    from neuroadda.metrics.vi import evaluate_segmentation
    from neuroadda.segmentation.agglomerate import segment

    affs = predict_region(net, raw, normalizer, roi_size, labels_kind=labels_kind, device=device, grid=grid)
    seg = segment(affs, float(threshold), per_slice=labels_kind == TWO_D)
    return evaluate_segmentation(seg, gt, labels_kind=labels_kind), seg


def threshold_table(net, regions, normalizer, thresholds, roi_size, *, labels_kind: str = "3d_instance",
                    device=None, progress: bool = False, grid=None) -> tuple[float, list[dict]]:
    """Score every waterz threshold on labelled ``regions`` = [(raw (z, y, x), gt (z, y, x)), ...].

    Returns (threshold with the lowest mean VI, rows) where each row is {threshold, vi_split, vi_merge, vi,
    adapted_rand} averaged over the regions (VI in bits, gt label 0 ignored; 2-D labels scored per slice).
    ``grid`` as in :func:`predict_region` (every region on one grid)."""
    from neuroadda.metrics.vi import evaluate_segmentation
    from neuroadda.segmentation.agglomerate import segmentations

    thresholds = sorted(float(t) for t in thresholds)
    sums: dict[float, dict[str, float]] = {}
    for _i, (raw, gt) in enumerate(regions):
        affs = predict_region(net, raw, normalizer, roi_size, labels_kind=labels_kind, device=device, progress=progress,
                              grid=grid)
        for t, seg in segmentations(affs, thresholds, per_slice=labels_kind == TWO_D):
            scores = evaluate_segmentation(seg, gt, labels_kind=labels_kind)
            row = sums.setdefault(float(t), dict.fromkeys(scores, 0.0))
            for k, v in scores.items():
                row[k] += float(v) / len(regions)
    table = [{"threshold": t, **sums[t]} for t in thresholds]
    best = min(table, key=lambda r: (r["vi"], r["threshold"]))
    return best["threshold"], table


def validation_region(vol, box, patch):
    """(raw, gt) for choosing a threshold on ``box`` of the labelled ``vol``, predicted as inference predicts.

    The prediction covers ``box`` grown to at least one ``patch`` per axis (real image context instead of
    padding), and the segmentation is made on that grown region; ground truth outside ``box`` is set to 0
    (ignored by VI), so only ``box`` is scored. Returns raw (z, y, x), gt (z, y, x) and the grown box."""
    from neuroadda.data.regions import grow_box

    ctx = grow_box(box, patch, vol.shape)
    raw, gt = vol.raw.read(ctx), np.array(vol.labels.read(ctx))
    keep = np.zeros(gt.shape, bool)
    keep[tuple(slice(s.start - c.start, s.stop - c.start) for s, c in zip(box, ctx))] = True
    gt[~keep] = 0
    return raw, gt, ctx


LEARNED_FRACTION = 0.85  # a model has learned when its VI is below this fraction of the one-segment baseline


def calibrate(net, regions, normalizer, thresholds, roi_size, *, labels_kind: str = "3d_instance", device=None,
              progress: bool = False) -> dict:
    """Choose the waterz threshold on labelled ``regions`` [(raw, gt), ...] and check the result.

    Returns {threshold, table (rows of :func:`threshold_table`), one_segment_vi (VI of everything-one-object
    on the same voxels, bits), learned (VI at the threshold < ``LEARNED_FRACTION`` x that baseline), warning
    (None, or why the threshold table looks unrepresentative: its best value at the edge of the tried range)}.
    """
    from neuroadda.metrics.baselines import one_segment
    from neuroadda.metrics.vi import evaluate_segmentation

    threshold, table = threshold_table(net, regions, normalizer, thresholds, roi_size, labels_kind=labels_kind,
                                       device=device, progress=progress)
    base = float(np.mean([evaluate_segmentation(one_segment(gt), gt, labels_kind=labels_kind)["vi"]
                          for _, gt in regions]))
    best = next(r for r in table if r["threshold"] == threshold)
    return {"threshold": threshold, "table": table, "one_segment_vi": base,
            "learned": bool(best["vi"] < LEARNED_FRACTION * base), "warning": table_warning(table, threshold)}


def table_warning(table: list[dict], threshold: float) -> str | None:
    """Why a threshold table looks unrepresentative, or None: its best threshold is the smallest or largest
    tried and strictly better than its neighbour (VI still falling at the edge of the range)."""
    ts = [r["threshold"] for r in table]
    if len(ts) < 3 or threshold not in (ts[0], ts[-1]):
        return None
    i = ts.index(threshold)
    inner = table[1] if i == 0 else table[-2]
    if table[i]["vi"] >= inner["vi"] - 1e-9:
        return None  # a tie with the next threshold: not a trend
    side = "largest" if i else "smallest"
    return (f"the best threshold {threshold:g} is the {side} one tried and VI still falls towards it "
            f"({inner['vi']:.3f} -> {table[i]['vi']:.3f} bits): the calibration region may be unrepresentative "
            "or the range too narrow")
