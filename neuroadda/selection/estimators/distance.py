"""Distances between target and source inputs in an encoder's feature space (need the source volumes).

- ``mmd2``: the paper's estimator (:func:`neuroadda.selection.select.rank_sources`): each source in its own
  backbone's space, so values from different backbones are not on one scale.
- ``mmd2-common``: every source in *every* backbone's space (each backbone a common encoder for all sources),
  MMD² divided by the target's own half-vs-half MMD² in that space (1 = as different as the two halves of the
  target), averaged over the encoders. Pre-registered: 256 patches per volume (seeded), mean pooling of the
  bottleneck, joint standardisation of all volumes' embeddings within an encoder, median-heuristic bandwidth.
"""

from __future__ import annotations

import numpy as np


def mmd2_estimator(ctx, progress: bool = False) -> dict:
    from neuroadda.selection.select import EmbedSettings, rank_sources

    settings = EmbedSettings(n_patches=ctx.n_patches, seed=ctx.seed, pooling=ctx.pooling, space=ctx.space)
    sel = rank_sources(ctx.target_volume(), ctx.backbones, settings, permutations=ctx.permutations, progress=progress)
    return {"scores": {r["source"]: r["mmd2"] for r in sel["ranking"]},
            "detail": {r["source"]: {k: r[k] for k in ("ci_low", "ci_high", "p_value", "target_self_mmd2", "skipped",
                                                       "flags", "source_data") if k in r}
                       for r in sel["ranking"]},
            "settings": sel["settings"]}


def mmd2_common_estimator(ctx, progress: bool = False) -> dict:
    from neuroadda.data.volume import open_volume, seen_by
    from neuroadda.selection.embed import standardize
    from neuroadda.selection.estimators.prediction import skipped
    from neuroadda.selection.mmd import median_bandwidth, mmd2
    from neuroadda.selection.select import EmbedSettings, embed_volume, embeddable, fitting_patch, split_by_position

    nets, data, left_out = embeddable(ctx.backbones)
    target = ctx.target_volume()
    grids = {}  # per encoder: the target on its grid, and every source there too
    for enc, (_net, meta) in nets.items():
        tvol = seen_by(target, meta["voxel_size"])
        grids[enc] = (tvol, {s: open_volume(data[s], labels_key=None, resample_to=tvol.voxel_size) for s in nets})
    first = next(iter(nets.values()))[1]
    patch = fitting_patch(tuple(first["patch_size"]),
                          [v.shape for tvol, svols in grids.values() for v in [tvol, *svols.values()]],
                          [n.total_stride for n, _ in nets.values()])
    settings = EmbedSettings(n_patches=ctx.n_patches, seed=ctx.seed)
    ratios: dict[str, list[float]] = {s: [] for s in nets}
    per_encoder = {}
    for enc, (net, meta) in nets.items():
        tvol, svols = grids[enc]
        x = embed_volume(net, meta, tvol, patch, settings, seed=ctx.seed, progress=progress)
        ys = {s: embed_volume(net, meta, v, patch, settings, seed=ctx.seed + 1, progress=progress)
              for s, v in svols.items()}
        blocks = standardize([x] + list(ys.values()))
        x, ys = blocks[0], dict(zip(ys, blocks[1:]))
        bw = median_bandwidth(np.concatenate([x] + list(ys.values())))
        floor = mmd2(*split_by_position(x, tvol.shape, patch, settings), bandwidth=bw)
        row = {s: float(mmd2(x, y, bandwidth=bw)) for s, y in ys.items()}
        per_encoder[enc] = {"mmd2": row, "target_self_mmd2": float(floor), "bandwidth": float(bw),
                            "voxel_size_nm": list(tvol.voxel_size)}
        for s, v in row.items():
            ratios[s].append(v / max(float(floor), 1e-12))
    detail = {s: {"ratio_per_encoder": dict(zip(nets, r))} for s, r in ratios.items()}
    detail.update({s: skipped("mmd2-common", why) for s, why in left_out.items()})
    return {"scores": {s: float(np.mean(ratios[s])) if s in ratios else float("nan") for s in ctx.backbones},
            "detail": detail,
            "per_encoder": per_encoder,
            "settings": {"n_patches": ctx.n_patches, "seed": ctx.seed, "patch_size": list(patch),
                         "grid": "per encoder, where the target meets it (neuroadda.data.grid)", "pooling": "mean",
                         "space": "joint standardisation per encoder",
                         "score": "mean over encoders of MMD²(target, source) / MMD²(target half 1, half 2)"}}
