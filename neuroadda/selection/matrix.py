"""``neuroadda mmd-matrix``: pairwise MMD² among datasets in ONE fixed encoder's embedding space."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neuroadda.data.io import short_name
from neuroadda.data.volume import open_volume
from neuroadda.errors import InputError
from neuroadda.report import write_json
from neuroadda.selection.select import EmbedSettings, embed_volume, embedding_space
from neuroadda.training.checkpoint import load_backbone


def mmd_matrix(datasets: list[str], encoder: str | Path, settings: EmbedSettings = EmbedSettings(), *,
               progress: bool = True) -> dict:
    """Embed every dataset once (at the encoder's training voxel size unless ``settings.voxel_size``), standardize
    all embeddings jointly, and compute unbiased MMD² for every pair with ONE median-heuristic bandwidth
    (of the pooled sample of all datasets), so the entries are comparable. Returns a JSON-able dict."""
    from neuroadda.selection.mmd import median_bandwidth, mmd2

    if len(set(datasets)) != len(datasets) or len(datasets) < 2:
        raise InputError("--datasets needs at least two distinct datasets")
    net, meta = load_backbone(encoder)
    vs = tuple(settings.voxel_size or meta["voxel_size"])
    patch = tuple(settings.patch_size or meta["patch_size"])
    emb = [embed_volume(net, meta, open_volume(d, labels_key=None, resample_to=vs), patch, settings,
                        seed=settings.seed + i, progress=progress) for i, d in enumerate(datasets)]
    emb = embedding_space(emb, settings.space)
    sigma = median_bandwidth(np.concatenate(emb, 0), seed=settings.seed)
    k = len(datasets)
    m = np.zeros((k, k))
    for i in range(k):
        for j in range(i + 1, k):
            m[i, j] = m[j, i] = mmd2(emb[i], emb[j], bandwidth=sigma)
    return {"datasets": list(datasets), "mmd2": m.tolist(), "encoder": str(encoder), "bandwidth": float(sigma),
            "settings": {"n_patches": settings.n_patches, "seed": settings.seed, "pooling": settings.pooling,
                         "space": settings.space, "patch_size": list(patch), "voxel_size_nm": list(vs),
                         "estimator": "unbiased", "kernel": "gaussian, one median bandwidth for all pairs"}}


def write_matrix(result: dict, out_dir: str | Path) -> Path:
    """``mmd_matrix.json``, ``mmd_matrix.png`` (heatmap) and ``mmd_dendrogram.png`` (UPGMA) in ``out_dir``."""
    from neuroadda.selection.phylogeny import plot_dendrogram, plot_heatmap

    out = Path(out_dir)
    labels = [short_name(n) for n in result["datasets"]]
    d = np.clip(np.asarray(result["mmd2"]), 0, None)  # the unbiased estimate can dip below 0 for equal distributions
    path = write_json(out / "mmd_matrix.json", result)
    plot_heatmap(np.asarray(result["mmd2"]), labels, out / "mmd_matrix.png",
                 f"MMD² between datasets (encoder: {Path(result['encoder']).parent.name or result['encoder']})", "MMD²")
    plot_dendrogram(d, labels, out / "mmd_dendrogram.png", "UPGMA on MMD²")
    return path
