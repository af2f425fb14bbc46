"""Label-free estimators that look at each source model's own predictions on the target (no source data).

Pre-registered settings (fixed before the transfer study's fine-tuning results were seen; changing them is a new
estimator): 8 target patches per source at seeded random positions, each backbone's training patch fitted to the
target; affinities thresholded at 0.5 for boundary fractions; consistency compares the waterz segmentation (the
backbone's stored threshold, distance-transform fragments) of the clean prediction with 2 perturbed ones: all
three axes flipped and back, plus 3-D feature dropout p = 0.1 after the first encoder level (seeded).

- ``compat``: the task-compatibility gate from checkpoint metadata: a source whose z-affinity was never
  supervised (labels 2-D per slice) cannot serve an isotropic target; anisotropy that differs from the target's
  by more than 2x is a warning. Score 1 = incompatible, 0 = compatible.
- ``entropy``: mean binary entropy (bits) of the source's affinities on target patches, per channel; flags a
  degenerate channel (boundary fraction < 0.2 % or > 60 %) and, on isotropic targets, a z channel whose
  boundary fraction is under a quarter or over 4x the in-plane ones.
- ``consistency``: CRank-style: mean VI (bits) between clean and perturbed segmentations.
- ``consistency-input``: the same with perturbations in input space only (for models whose internals are
  unknown): all three axes flipped and back, plus per patch an intensity scale in [0.9, 1.1], a shift in
  [-0.1, 0.1] and Gaussian noise of sd 0.1 (normalised units), seeded. Pre-registered before the two-species
  transfer study ran.
"""

from __future__ import annotations

import numpy as np
import torch

from neuroadda.data.grid import anisotropy, is_isotropic, meet
from neuroadda.metrics.stats import bootstrap_ci
from neuroadda.vocab import THREE_D, TWO_D

N_PATCHES = 8
DROPOUT = 0.1
N_PERTURB = 2
INPUT_SCALE, INPUT_SHIFT, INPUT_NOISE = 0.1, 0.1, 0.1  # consistency-input: +-10 % scale, +-0.1 shift, sd 0.1 noise
DEGENERATE = (0.002, 0.6)
MERGED = 0.9  # consistency: a clean segmentation whose largest segment covers more than this of the patch
Z_RATIO = 4.0
ANISO_FACTOR = 2.0


def compatibility(meta: dict, target_voxel_size) -> dict:
    """{"compatible": bool, "reasons": [...], "warnings": [...]} of one backbone (checkpoint metadata) for a
    target used at ``target_voxel_size``."""
    reasons, warnings = [], []
    z_supervised = meta.get("labels_kind", THREE_D) != TWO_D
    if is_isotropic(target_voxel_size) and not z_supervised:
        reasons.append("its z-affinity was never supervised (trained on labels drawn per 2-D section), and the "
                       "isotropic target needs it")
    a_src, a_tgt = anisotropy(meta["voxel_size"]), anisotropy(target_voxel_size)
    if max(a_src, a_tgt) / min(a_src, a_tgt) > ANISO_FACTOR:
        warnings.append(f"voxel anisotropy {a_src:.1f} (trained) vs {a_tgt:.1f} (target)")
    return {"compatible": not reasons, "reasons": reasons, "warnings": warnings, "z_supervised": z_supervised}


def _target_patches(ctx, net, meta, vol):
    """(normalised?) raw patches (z, y, x) of the target for one backbone: its patch fitted to the volume."""
    from neuroadda.data.regions import full_box, patch_boxes, random_origins
    from neuroadda.selection.select import fitting_patch

    patch = fitting_patch(tuple(meta["patch_size"]), [vol.shape], [net.total_stride])
    origins = random_origins(full_box(vol.shape), patch, N_PATCHES, ctx.seed)
    return [vol.raw.read(b) for b in patch_boxes(origins, patch)], patch


def perturb_input(x: torch.Tensor, seed: int) -> torch.Tensor:
    """(B, 1, z, y, x) normalised raw with a seeded intensity scale, shift and Gaussian noise per patch."""
    gen = torch.Generator().manual_seed(int(seed))
    b = x.shape[0]
    scale = 1 + INPUT_SCALE * (2 * torch.rand(b, generator=gen) - 1)
    shift = INPUT_SHIFT * (2 * torch.rand(b, generator=gen) - 1)
    noise = INPUT_NOISE * torch.randn(x.shape, generator=gen)
    return x * scale.view(-1, 1, 1, 1, 1).to(x.dtype) + shift.view(-1, 1, 1, 1, 1).to(x.dtype) + noise.to(x.dtype)


def _affinities(net, x: torch.Tensor, *, dropout_seed: int | None = None, flip: bool = False,
                input_seed: int | None = None) -> torch.Tensor:
    """Sigmoid affinities (B, 3, z, y, x) of ``net`` on (B, 1, z, y, x); optionally with all axes flipped (and
    flipped back), feature dropout after ``net.dropout_layer`` (``dropout_seed``, our UNet only) and an
    input-space intensity perturbation (``input_seed``, any model)."""
    if input_seed is not None:
        x = perturb_input(x, input_seed)
    hook = None
    if dropout_seed is not None:
        gen = torch.Generator().manual_seed(int(dropout_seed))

        def drop(_module, _inp, out):
            keep = (torch.rand(out.shape[:2], generator=gen) >= DROPOUT).to(out.dtype)
            return out * keep[..., None, None, None] / (1 - DROPOUT)

        hook = net.dropout_layer.register_forward_hook(drop)
    try:
        with torch.inference_mode():
            xin = torch.flip(x, (2, 3, 4)) if flip else x
            p = torch.sigmoid(net(xin).float())
            if flip:
                # flipping an axis turns "affinity to v - e_c" into "affinity to v + e_c": shift back by one
                p = torch.flip(p, (2, 3, 4))
                p = torch.stack([torch.roll(p[:, c], 1, dims=c + 1) for c in range(3)], 1)
    finally:
        if hook is not None:
            hook.remove()
    return p


def backbones_on_target(ctx):
    """Yield ``(source, net, meta, normaliser, target volume)`` for every backbone of ``ctx``: the target (raw
    only; at ``ctx.voxel_size`` when given, else as stored) seen on each backbone's grid
    (:func:`neuroadda.data.volume.seen_by`), with the normaliser the backbone was trained with, fitted there."""
    from neuroadda.data.volume import seen_by
    from neuroadda.models.checkpoint import load_backbone

    target = ctx.target_volume()
    for s, ckpt in ctx.backbones.items():
        bb = load_backbone(ckpt)
        vol = seen_by(target, bb.voxel_size)
        yield s, bb.net, bb.meta, bb.normalizer_for(vol.raw), vol


def _per_source(ctx, fn):
    """Run ``fn(net, meta, vol, patches, patch)`` for every backbone of ``ctx`` (target at ctx.voxel_size)."""
    out = {}
    for s, net, meta, norm, vol in backbones_on_target(ctx):
        raws, patch = _target_patches(ctx, net, meta, vol)
        x = torch.from_numpy(np.stack([norm(r) for r in raws])[:, None])
        out[s] = fn(net.eval(), meta, vol, x, patch)
    return out


def compat_estimator(ctx, progress: bool = False) -> dict:
    from neuroadda.models.checkpoint import load_backbone

    vs = ctx.target_volume().voxel_size
    metas = {s: load_backbone(p)[1] for s, p in ctx.backbones.items()}
    detail = {s: compatibility(m, meet(vs, m["voxel_size"])) for s, m in metas.items()}
    return {"scores": {s: 0.0 if d["compatible"] else 1.0 for s, d in detail.items()}, "detail": detail,
            "settings": {"target_voxel_size": list(vs), "aniso_factor": ANISO_FACTOR,
                         "grid": "each backbone's meeting grid (neuroadda.data.grid)"}}


def binary_entropy_bits(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-7, 1 - 1e-7)
    return -(p * torch.log2(p) + (1 - p) * torch.log2(1 - p))


def diagnostics(p: torch.Tensor, voxel_size) -> dict:
    """Per-channel mean entropy (bits) and predicted boundary fraction (affinity < 0.5) of (B, 3, ...) ``p``,
    with flags for degenerate channels and (isotropic targets) a z channel unlike the in-plane ones."""
    ent = [float(binary_entropy_bits(p[:, c]).mean()) for c in range(3)]
    bf = [float((p[:, c] < 0.5).float().mean()) for c in range(3)]
    flags = [f"channel {'zyx'[c]} is degenerate (boundary fraction {bf[c]:.4f})" for c in range(3)
             if not DEGENERATE[0] <= bf[c] <= DEGENERATE[1]]
    ratio = None
    if is_isotropic(voxel_size):
        xy = (bf[1] + bf[2]) / 2
        ratio = bf[0] / xy if xy > 0 else float("inf")
        if not 1 / Z_RATIO <= ratio <= Z_RATIO:
            flags.append(f"z boundary fraction is {ratio:.2f}x the in-plane one on an isotropic target")
    return {"entropy": ent, "boundary_fraction": bf, "z_vs_xy": ratio, "flags": flags}


def entropy_estimator(ctx, progress: bool = False) -> dict:
    def fn(net, meta, vol, x, patch):
        p = _affinities(net, x)
        d = diagnostics(p, vol.voxel_size)
        used = [1, 2] if not is_isotropic(vol.voxel_size) else [0, 1, 2]
        per_patch = binary_entropy_bits(p[:, used]).flatten(1).mean(1).tolist()
        _, lo, hi = bootstrap_ci(per_patch, seed=ctx.seed)
        return {**d, "score": float(np.mean([d["entropy"][c] for c in used])), "ci_low": lo, "ci_high": hi,
                "patch": list(patch)}

    detail = _per_source(ctx, fn)
    return {"scores": {s: d["score"] for s, d in detail.items()}, "detail": detail,
            "settings": {"patches": N_PATCHES, "seed": ctx.seed, "degenerate": DEGENERATE, "z_ratio": Z_RATIO}}


def consistency_estimator(ctx, progress: bool = False, *, space: str = "feature") -> dict:
    """``space``: "feature" (flip + feature dropout, ``consistency``) or "input" (flip + intensity and noise,
    ``consistency-input``)."""
    from neuroadda.metrics.vi import variation_of_information
    from neuroadda.segmentation.agglomerate import segment

    def fn(net, meta, vol, x, patch):
        if space == "feature" and net.dropout_layer is None:
            return skipped("consistency", "an imported model: its internals are unknown, so no feature dropout "
                                          "(consistency-input perturbs every model in input space)")
        t = float(meta.get("threshold") or 0.5)
        per_slice = not is_isotropic(vol.voxel_size)
        clean = _affinities(net, x).numpy()
        vis, largest = [], []
        for k in range(N_PERTURB):
            how = {"dropout_seed": ctx.seed * 1000 + k} if space == "feature" else {"input_seed": ctx.seed * 1000 + k}
            pert = _affinities(net, x, flip=True, **how).numpy()
            for i in range(len(x)):
                a, b = clean[i], pert[i]
                if per_slice:
                    a, b = a.copy(), b.copy()
                    a[0] = b[0] = 0.0
                sa = segment(a, t, per_slice=per_slice)
                sb = segment(b, t, per_slice=per_slice)
                vis.append(sum(variation_of_information(sb, sa, ignore_gt=())))
                if k == 0:
                    largest.append(float(np.unique(sa, return_counts=True)[1].max() / sa.size))
        _, lo, hi = bootstrap_ci(vis, seed=ctx.seed)
        out = {"score": float(np.mean(vis)), "ci_low": lo, "ci_high": hi, "vi": vis, "threshold": t,
               "patch": list(patch), "largest_segment_fraction": float(np.median(largest))}
        if np.median(largest) > MERGED:
            # one segment is perfectly stable and useless: score it as the largest VI a patch can have
            worst = float(np.log2(np.prod(clean.shape[2:])))
            out.update({"score": worst, "ci_low": worst, "ci_high": worst, "stable_vi": out["score"],
                        "flags": [f"degenerate: its segmentation is one object over {np.median(largest):.0%} of "
                                  f"a typical patch (stable but useless); scored {worst:.1f} bits, the worst"]})
        return out

    detail = _per_source(ctx, fn)
    return {"scores": {s: d["score"] for s, d in detail.items()}, "detail": detail,
            "settings": {"patches": N_PATCHES, "perturbations": N_PERTURB, "flip": "zyx", "merged": MERGED,
                         **({"dropout": DROPOUT} if space == "feature" else
                            {"space": "input", "scale": INPUT_SCALE, "shift": INPUT_SHIFT, "noise_sd": INPUT_NOISE}),
                         "seed": ctx.seed, "metric": "VI(perturbed | clean) split + merge, bits"}}


def skipped(estimator: str, why: str) -> dict:
    """The detail of a source an estimator cannot score: NaN (ranked last), the reason, and a flag saying so."""
    return {"score": float("nan"), "skipped": why, "flags": [f"{estimator} skipped it: {why}"]}


def consistency_input_estimator(ctx, progress: bool = False) -> dict:
    return consistency_estimator(ctx, progress, space="input")
