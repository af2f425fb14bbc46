"""``neuroadda select-samples``: score the target's candidate pool with a source backbone and pick n samples.

Source-free: only the backbone and the unlabelled target are used. Candidates tile the target at its own
voxel size; the held-out slab (where there is one) is never a candidate; a large pool is scored through a
spatially stratified subsample. ``samples.json`` records positions in voxels and nm.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from neuroadda.active.pool import boxes_at, pool_origins, stratified_subsample
from neuroadda.active.strategies import NEEDS_EMBEDDINGS, select
from neuroadda.active.uncertainty import embed_candidates, score_candidates
from neuroadda.config import ActiveConfig
from neuroadda.data.regions import Box, box_from_json, box_to_json
from neuroadda.data.volume import LabelledVolume, model_view
from neuroadda.errors import InputError
from neuroadda.report import save_figure, write_json

FORMAT = "neuroadda-samples-v1"


def select_samples(vol: LabelledVolume, net, normalizer, cfg: ActiveConfig, n: int, *, seed: int = 0,
                   exclude: list[Box] = (), progress: bool = False, start: int = 0, model_voxel_size=None,
                   score=None) -> dict:
    """Score the candidates of ``vol`` by ``cfg.uncertainty`` under ``net`` and pick ``n`` with ``cfg.strategy``.

    Candidates tile ``vol``'s own grid outside the held-out slab (``cfg.holdout_fraction``); a pool larger than
    ``cfg.max_candidates`` is cut to a spatially stratified subsample of that size (seeded by ``seed``,
    :func:`neuroadda.active.pool.stratified_subsample`), a smaller one is scored whole.
    ``exclude``: boxes picked in earlier rounds (never picked again). Samples are named sample_{start + k:02d}.
    ``net`` (trained at ``model_voxel_size``, None = vol's grid) sees each candidate where the two grids meet
    (:mod:`neuroadda.data.grid`). ``score(candidates, embeddings: bool) -> (scores, embeddings or None)`` replaces
    the in-process scoring (e.g. block-wise on daisy workers).
    Returns the samples record (see ``samples.json``): target, voxel size, candidate size, holdout, pool size,
    strategy, seed, every scored candidate and its score, and per pick its name, box, offset (voxels, nm), score
    and score rank."""
    try:
        origins, holdout = pool_origins(vol.shape, cfg.candidate_size, holdout_fraction=cfg.holdout_fraction,
                                        holdout_axis=cfg.holdout_axis)
    except ValueError as e:
        raise InputError(f"{vol.name}: {e} (set active.candidate_size smaller)") from None
    why = net.missing_features("embedding") if cfg.strategy in NEEDS_EMBEDDINGS else None
    if why is not None:
        raise InputError(f"strategy {cfg.strategy} compares candidates by encoder features, and the model is {why}")
    cands = boxes_at(origins[stratified_subsample(origins, cfg.candidate_size, cfg.max_candidates, seed)],
                     cfg.candidate_size)
    excluded = {tuple(map(tuple, box_to_json(b))) for b in exclude}
    avail = [i for i, c in enumerate(cands) if tuple(map(tuple, box_to_json(c))) not in excluded]
    if n < 1 or n > len(avail):
        raise InputError(f"cannot select {n} samples: the pool of {cfg.candidate_size} candidates has {len(avail)} "
                         f"left (target {vol.shape}, holdout fraction {cfg.holdout_fraction})")
    raw = model_view(vol, model_voxel_size)
    need_emb = cfg.strategy in NEEDS_EMBEDDINGS
    if score is None:
        scores = score_candidates(net, raw, cands, normalizer, method=cfg.uncertainty, tta=cfg.tta,
                                  mc_samples=cfg.mc_samples, progress=progress)
        emb = embed_candidates(net, raw, cands, normalizer) if need_emb else None
    else:
        scores, emb = score(cands, need_emb)
    emb = emb[avail] if need_emb else None
    picks = [avail[i] for i in select(cfg.strategy, scores[avail], n, embeddings=emb, seed=seed)]
    order = np.argsort(np.argsort(scores[avail]))  # rank 0 = least uncertain among the available
    vs = np.asarray(vol.voxel_size)
    samples = []
    for k, i in enumerate(picks):
        off = np.array([s.start for s in cands[i]])
        samples.append({"name": f"sample_{start + k:02d}", "candidate": int(i), "box": box_to_json(cands[i]),
                        "offset_voxels": off.tolist(), "offset_nm": (off * vs).tolist(),
                        "shape": list(cfg.candidate_size), "score": float(scores[i]),
                        "score_rank": int(order[avail.index(i)]), "n_available": len(avail)})
    return {"format": FORMAT, "target": vol.name, "voxel_size_nm": list(vol.voxel_size), "shape": list(vol.shape),
            "candidate_size": list(cfg.candidate_size), "holdout": box_to_json(holdout), "strategy": cfg.strategy,
            "uncertainty": cfg.uncertainty, "seed": int(seed), "n": int(n), "pool_size": int(len(origins)),
            "scored_at_nm": list(getattr(raw, "voxel_size", vol.voxel_size)),
            "median_score": float(np.median(scores[avail])),
            "candidates": [box_to_json(c) for c in cands], "scores": [float(s) for s in scores], "samples": samples}


def write_samples(record: dict, out_dir: str | Path, vol: LabelledVolume, *, export: bool = True,
                  proposals: list | None = None) -> Path:
    """Write ``out_dir/samples.json``, ``out_dir/samples.png`` and (``export``) the raw samples for annotators
    as ``out_dir/annotate/sample_XX.h5`` and ``.tif``, with ``proposals`` (one label array per sample, the
    backbone's segmentation of it) as their ``proposal`` dataset and ``sample_XX_proposal.tif``. Returns the JSON
    path."""
    out_dir = Path(out_dir)
    if export:
        from neuroadda.active.annotations import export_samples

        export_samples(vol.raw, [box_from_json(s["box"]) for s in record["samples"]], out_dir / "annotate",
                       names=[s["name"] for s in record["samples"]], voxel_size=vol.voxel_size,
                       attrs={"target": vol.name}, proposals=proposals)
    plot_samples(record, vol, out_dir / "samples.png")
    return write_json(out_dir / "samples.json", record)


def load_samples(path: str | Path) -> dict:
    """Read and check a ``samples.json``; adds ``boxes`` (tuples of slices)."""
    path = Path(path)
    if path.is_dir():
        path = path / "samples.json"
    if not path.is_file():
        raise InputError(f"{path}: samples file not found (write one with 'neuroadda select-samples')")
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise InputError(f"{path}: not a NeuroADDA samples file (expected format '{FORMAT}')")
    for key in ("target", "samples", "voxel_size_nm", "shape"):
        if key not in record:
            raise InputError(f"{path}: missing key '{key}'")
    if not record["samples"]:
        raise InputError(f"{path}: 'samples' is empty")
    for s in record["samples"]:
        if not {"name", "box"} <= set(s):
            raise InputError(f"{path}: every sample needs 'name' and 'box', got keys {sorted(s)}")
    record["boxes"] = [box_from_json(s["box"]) for s in record["samples"]]
    return record


def check_target(record: dict, vol: LabelledVolume, where: str) -> None:
    """The samples must come from a volume of this shape and voxel size."""
    if list(vol.shape) != list(record["shape"]):
        raise InputError(f"{where}: samples were selected on a volume of shape {tuple(record['shape'])}, "
                         f"but {vol.name} has shape {vol.shape}")
    if not np.allclose(vol.voxel_size, record["voxel_size_nm"]):
        raise InputError(f"{where}: samples were selected at voxel size {tuple(record['voxel_size_nm'])} nm, "
                         f"but {vol.name} is at {vol.voxel_size} nm")


def plot_samples(record: dict, vol: LabelledVolume, path: str | Path) -> Path:
    """Histogram of candidate uncertainties with the median and picks marked, and the picked raw samples
    (middle z slice of each, up to 8)."""
    from neuroadda.report import pyplot

    plt = pyplot()

    picks = record["samples"][:8]
    fig, axes = plt.subplots(1, 1 + len(picks), figsize=(3.2 + 2.1 * len(picks), 3.0), squeeze=False,
                             layout="constrained", width_ratios=[1.5] + [1] * len(picks))
    ax = axes[0, 0]
    ax.hist(record["scores"], bins=min(40, max(5, len(record["scores"]) // 2)), color="0.75")
    ax.axvline(record["median_score"], color="k", ls="--", lw=1.2, label="median")
    for k, s in enumerate(picks):
        ax.axvline(s["score"], color="tab:red", lw=1, label="picked" if k == 0 else None)
    ax.set_xlabel(f"uncertainty ({record['uncertainty']})")
    ax.set_ylabel("candidates")
    ax.set_title(f"{record['strategy']}: {len(record['samples'])} of {len(record['scores'])}", fontsize=9)
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.12), ncol=2, frameon=False)
    ax.tick_params(labelsize=8)
    for ax, s in zip(axes[0, 1:], picks):
        box = box_from_json(s["box"])
        mid = (box[0].start + box[0].stop) // 2
        ax.imshow(vol.raw.read((slice(mid, mid + 1), box[1], box[2]))[0], cmap="gray")
        ax.set_title(f"{s['name']} (score {s['score']:.3f})\nz {box[0].start}-{box[0].stop}, y {box[1].start}, "
                     f"x {box[2].start}", fontsize=9)
        ax.axis("off")
    return save_figure(fig, path)
