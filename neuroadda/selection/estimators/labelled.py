"""Estimators for after annotation: they use the n labelled target samples (``Context.labelled``), before the
fine-tune is paid for. Pre-registered settings: zero-shot VI is the lowest VI over the default waterz
thresholds (the fine-tune re-calibrates the threshold anyway); LogME uses the decoder's last hidden features
(the input of the top up-sampling block, nearest-upsampled to voxels), 1,000 class-balanced voxels per
affinity channel and sample (seeded), and the score is minus the mean over channels (lower = better).
"""

from __future__ import annotations

import numpy as np
import torch

from neuroadda.data.regions import full_box

THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
VOXELS_PER_CLASS = 500


def logme(features: np.ndarray, y: np.ndarray, *, iters: int = 100, tol: float = 1e-6) -> tuple[float, float, float]:
    """LogME (You et al., ICML 2021): the maximum log evidence per sample of Bayesian linear regression of
    ``y`` (n,) on ``features`` (n, d), with prior w ~ N(0, I/alpha) and noise N(0, 1/beta), maximised over
    alpha and beta by MacKay's fixed-point updates on the SVD of the features. Returns (logme, alpha, beta)."""
    f = np.asarray(features, np.float64)
    y = np.asarray(y, np.float64)
    n, d = f.shape
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    sigma = s ** 2
    uy = u.T @ y  # projections of y on the left singular vectors
    res_out = float(y @ y - uy @ uy)  # part of |y|^2 outside the span of the features
    alpha, beta = 1.0, 1.0
    for _ in range(iters):
        gamma = float((beta * sigma / (alpha + beta * sigma)).sum())
        m2 = float(((beta * s * uy / (alpha + beta * sigma)) ** 2).sum())  # |m|^2
        res = float(((alpha * uy / (alpha + beta * sigma)) ** 2).sum()) + res_out  # |y - F m|^2
        new_alpha, new_beta = gamma / max(m2, 1e-12), (n - gamma) / max(res, 1e-12)
        done = abs(new_alpha - alpha) / alpha < tol and abs(new_beta - beta) / beta < tol
        alpha, beta = new_alpha, new_beta
        if done:
            break
    m2 = float(((beta * s * uy / (alpha + beta * sigma)) ** 2).sum())
    res = float(((alpha * uy / (alpha + beta * sigma)) ** 2).sum()) + res_out
    evidence = (n / 2 * np.log(beta) + d / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi) - beta / 2 * res
                - alpha / 2 * m2 - 0.5 * np.log(alpha + beta * sigma).sum() - 0.5 * (d - len(sigma)) * np.log(alpha))
    return float(evidence / n), float(alpha), float(beta)


def _voxels(feats: np.ndarray, affs: np.ndarray, mask: np.ndarray, rng) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per channel: (features (k, C), labels (k,)) of up to VOXELS_PER_CLASS masked voxels of each class."""
    out = []
    f = feats.reshape(feats.shape[0], -1).T
    for c in range(affs.shape[0]):
        a, m = affs[c].ravel(), mask[c].ravel() > 0
        idx = []
        for cls in (0, 1):
            cand = np.flatnonzero(m & (a == cls))
            if len(cand):
                idx.append(rng.choice(cand, min(VOXELS_PER_CLASS, len(cand)), replace=False))
        idx = np.concatenate(idx) if idx else np.zeros(0, int)
        out.append((f[idx], a[idx]))
    return out


def logme_estimator(ctx, progress: bool = False) -> dict:
    from neuroadda.data.affinities import affinities_from_labels
    from neuroadda.data.grid import grid_shape
    from neuroadda.data.volume import resize
    from neuroadda.selection.estimators.prediction import backbones_on_target, skipped

    _need_labels(ctx)
    kind = ctx.labels_kind
    at = ctx.target_volume().voxel_size  # the samples' grid
    detail = {}
    for s, net, _meta, norm, vol in backbones_on_target(ctx):
        why = net.missing_features("feature")
        if why is not None:
            detail[s] = skipped("logme", f"{why} (LogME needs the decoder's features)")
            continue
        rng = np.random.default_rng(ctx.seed)
        per_channel = [[], [], []]
        for raw, gt in ctx.labelled:  # features and targets where the backbone meets the target
            shape = grid_shape(raw.shape, at, vol.voxel_size)
            raw, gt = resize(raw, shape, labels=False), resize(gt, shape, labels=True)
            x = torch.from_numpy(_padded(norm(raw), net.total_stride)[None, None])
            with torch.inference_mode():
                feats = net.eval().decoder_features(x)[0].numpy()[(slice(None),) + full_box(raw.shape)]
            affs, mask = affinities_from_labels(np.asarray(gt, np.int64), labels_kind=kind)
            for c, (f, y) in enumerate(_voxels(feats, affs, mask, rng)):
                if len(np.unique(y)) == 2:
                    per_channel[c].append((f, y))
        scores = []
        for c in range(3):
            if not per_channel[c]:
                scores.append(float("nan"))
                continue
            f = np.concatenate([a for a, _ in per_channel[c]])
            y = np.concatenate([b for _, b in per_channel[c]])
            # binary labels as two one-hot regressions, averaged (LogME's classification mode)
            scores.append(float(np.mean([logme(f, y)[0], logme(f, 1 - y)[0]])))
        used = [v for v in scores if np.isfinite(v)]
        detail[s] = {"logme": scores, "min_channel": float(min(used)) if used else float("nan")}
        detail[s]["score"] = -float(np.mean(used)) if used else float("nan")
    return {"scores": {s: d["score"] for s, d in detail.items()}, "detail": detail,
            "settings": {"voxels_per_class": VOXELS_PER_CLASS, "features": "decoder last hidden layer",
                         "seed": ctx.seed, "samples": len(ctx.labelled)}}


def zero_shot_vi_estimator(ctx, progress: bool = False) -> dict:
    from neuroadda.segmentation.threshold import threshold_table
    from neuroadda.selection.estimators.prediction import backbones_on_target

    _need_labels(ctx)
    at = ctx.target_volume().voxel_size  # the samples' grid: scored there, predicted where the backbone meets it
    detail = {}
    for s, net, meta, norm, _vol in backbones_on_target(ctx):
        t, table = threshold_table(net, list(ctx.labelled), norm, THRESHOLDS, meta["patch_size"],
                                   labels_kind=ctx.labels_kind, grid=(at, meta["voxel_size"]))
        best = next(r for r in table if r["threshold"] == t)
        detail[s] = {"score": best["vi"], "threshold": t, "vi_split": best["vi_split"], "vi_merge": best["vi_merge"]}
    return {"scores": {s: d["score"] for s, d in detail.items()}, "detail": detail,
            "settings": {"thresholds": list(THRESHOLDS), "samples": len(ctx.labelled)}}


def _need_labels(ctx) -> None:
    from neuroadda.errors import InputError

    if not ctx.labelled:
        raise InputError("this estimator needs the annotated samples (select-source --labels SAMPLES)")


def _padded(x: np.ndarray, stride) -> np.ndarray:
    """Reflect-pad (z, y, x) at the far end up to a multiple of ``stride``."""
    pad = [(0, (-n) % s) for n, s in zip(x.shape, stride)]
    return np.pad(x, pad, mode="reflect") if any(p for _, p in pad) else x
