"""``neuroadda mmd-matrix``: pairwise MMD² among datasets in ONE fixed encoder's embedding space."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neuroadda.data.io import short_name
from neuroadda.data.volume import check_patch_fits, open_volume
from neuroadda.errors import InputError
from neuroadda.models.checkpoint import load_backbone
from neuroadda.report import write_json
from neuroadda.selection.select import EmbedSettings, embed_volume, embedding_space


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
    if any(p % k for p, k in zip(patch, net.total_stride)):
        raise InputError(f"{encoder}: patch {patch} is not a multiple of this encoder's stride {net.total_stride}")
    vols = [open_volume(d, labels_key=None, resample_to=vs) for d in datasets]
    for v in vols:  # every volume must take the patch before any is embedded
        check_patch_fits(v, patch)
    emb = [embed_volume(net, meta, v, patch, settings, seed=settings.seed + i, progress=progress)
           for i, v in enumerate(vols)]
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
    labels = [_label(n) for n in result["datasets"]]
    d = np.clip(np.asarray(result["mmd2"]), 0, None)  # the unbiased estimate can dip below 0 for equal distributions
    path = write_json(out / "mmd_matrix.json", result)
    enc = Path(result["encoder"])
    enc_name = enc.parent.name if enc.name == "model.pt" and enc.parent.name else enc.stem
    vs = "x".join(f"{v:g}" for v in result["settings"]["voxel_size_nm"])
    plot_heatmap(np.asarray(result["mmd2"]), labels, out / "mmd_matrix.png",
                 f"MMD², encoder {enc_name}, voxel {vs} nm", "MMD²")
    plot_dendrogram(d, labels, out / "mmd_dendrogram.png", f"UPGMA on MMD², encoder {enc_name}, voxel {vs} nm")
    return path


def _label(spec: str) -> str:
    """Display name: a card name over its organism and modality class ('isbi2012\\nfruit fly, ssTEM')."""
    from neuroadda.data.cards import all_cards
    from neuroadda.selection.modality import modality_class

    card = all_cards().get(spec)
    if card is None:
        return short_name(spec)
    try:
        cls = modality_class(card.modality)
    except InputError:
        cls = card.modality.split(" (")[0]
    return f"{spec}\n{card.organism.split(',')[0]}, {cls}"
