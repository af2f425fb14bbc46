"""``neuroadda select-source``: rank candidate source backbones for a target by MMD² between embeddings.

For each source s with backbone b_s: N target patches and N patches of s's own volume (same N, seed and
target positions for every backbone), both on the grid where the target meets b_s (:mod:`neuroadda.data.grid`)
and normalized per volume, are embedded with b_s's encoder, standardized jointly within b_s's feature space,
and compared by the unbiased MMD² with a permutation p-value and a bootstrap CI. Smallest MMD² = closest source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuroadda.data.grid import RULE as GRID_RULE
from neuroadda.data.io import short_name
from neuroadda.data.normalize import normalizer_from_spec
from neuroadda.data.regions import full_box, random_origins
from neuroadda.data.volume import LabelledVolume, check_patch_fits, open_volume, seen_by, volume_available
from neuroadda.errors import InputError
from neuroadda.models.checkpoint import load_backbone
from neuroadda.report import save_figure, write_json


@dataclass(frozen=True)
class EmbedSettings:
    """How patches become vectors: the variant table in the README compares these choices."""

    n_patches: int = 256
    seed: int = 0
    pooling: str = "mean"
    levels: tuple[int, ...] = (-1,)
    space: str = "standardize"  # "standardize", "pca:K" or "none"
    patch_size: tuple[int, int, int] | None = None  # default: the first backbone's training patch
    voxel_size: tuple[float, float, float] | None = None  # the target's grid before it meets a backbone (None: stored)
    normalization: str | None = None  # per-volume intensity normalization; None = as each backbone was trained


def safe_name(spec: str) -> str:
    """A folder name for a dataset name or path (``/data/my vol.h5:raw`` -> ``my_vol.h5_raw``)."""
    from neuroadda.data.io import split_spec

    path, key = split_spec(spec)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", path.name + (f"_{key}" if key else ""))


def split_pair(pair: str, flag: str) -> tuple[str, Path]:
    """``NAME=PATH`` of a command-line ``flag`` -> (name, path); a one-line InputError otherwise."""
    name, sep, path = pair.partition("=")
    if not sep or not name or not path:
        raise InputError(f"{flag} '{pair}': expected NAME=MODEL")
    return name, Path(path)


def resolve_backbones(sources: list[str], pairs: list[str], folder: str | Path | None) -> dict[str, Path | None]:
    """Map each source to a model from ``SOURCE=MODEL`` pairs, then in ``folder``: ``<name>/model.pt``,
    ``<name>.pt`` (a checkpoint, or TorchScript with its sidecar), ``<name>.zip`` or ``<name>/rdf.yaml`` (a
    bioimage.io package; always a file, so a found model is one)."""
    from neuroadda.models.checkpoint import PACKAGE_YAMLS

    given: dict[str, Path] = {}
    for pair in pairs:
        src, ckpt = split_pair(pair, "--backbone")
        if src not in sources:
            raise InputError(f"--backbone '{pair}': '{src}' is not one of --sources {' '.join(sources)} (another "
                             "lab's model that is no source: --model NAME=MODEL)")
        given[src] = ckpt
    out: dict[str, Path | None] = {}
    for s in sources:
        if s in given:
            out[s] = given[s]
            continue
        out[s] = None
        if folder is not None:
            d = Path(folder) / safe_name(s)
            for cand in (d / "model.pt", d.with_name(d.name + ".pt"), d.with_name(d.name + ".zip")):
                if cand.is_file():
                    out[s] = cand
                    break
            else:
                out[s] = next((d / n for n in PACKAGE_YAMLS if (d / n).is_file()), None)
    return out


def embedding_space(blocks, space: str):
    """Put one backbone's embedding blocks on a common scale: "standardize", "pca:K" or "none"."""
    from neuroadda.selection.embed import standardize

    if space == "none":
        return blocks
    if space == "standardize":
        return standardize(blocks)
    if space.startswith("pca:"):
        return standardize(blocks, pca=int(space.split(":", 1)[1]))
    raise InputError(f"embedding space must be standardize, pca:K or none, got '{space}'")


def embed_volume(net, meta: dict, vol, patch, settings: EmbedSettings, *, seed: int, progress: bool) -> np.ndarray:
    """(N, D) embeddings of ``settings.n_patches`` random patches of ``vol`` (positions fixed by ``seed``),
    normalized per volume the way ``net`` was trained."""
    from neuroadda.selection.embed import embed_patches

    check_patch_fits(vol, patch)
    origins = random_origins(full_box(vol.shape), patch, settings.n_patches, seed)
    norm = normalizer_from_spec(vol.raw, settings.normalization or meta.get("normalization", "zscore"))
    return embed_patches(net, vol, origins, patch, norm, pooling=settings.pooling, levels=settings.levels,
                         progress=progress, desc=f"embed {vol.name}")


def split_by_position(x: np.ndarray, shape, patch, settings: EmbedSettings) -> tuple[np.ndarray, np.ndarray]:
    """Split the target's embeddings (rows of ``x``, drawn by :func:`embed_volume` with ``settings.seed``) into
    the patches in the first and the second half of the target's longest axis. MMD² between the halves is
    the target's own spatial heterogeneity: a source closer than that is indistinguishable from the target."""
    origins = np.array(random_origins(full_box(shape), patch, settings.n_patches, settings.seed))
    axis = int(np.argmax(shape))
    first = origins[:, axis] + patch[axis] / 2 < shape[axis] / 2
    if first.sum() < 2 or (~first).sum() < 2:
        return x[: len(x) // 2], x[len(x) // 2:]
    return x[first], x[~first]


def fitting_patch(patch, shapes, strides) -> tuple[int, int, int]:
    """The largest patch <= ``patch`` (z, y, x) that fits every volume of ``shapes`` and is a multiple of every
    backbone stride of ``strides`` on each axis (so no source is refused for being smaller than the patch)."""
    out = []
    for ax, want in enumerate(patch):
        step = int(np.lcm.reduce([int(s[ax]) for s in strides])) if strides else 1
        room = min(int(sh[ax]) for sh in shapes)
        size = (min(int(want), room) // step) * step
        if size < step:
            raise InputError(f"no patch fits: axis {'zyx'[ax]} has only {room} voxels in the smallest volume, "
                             f"fewer than the backbones' stride {step}")
        out.append(size)
    return tuple(out)


def embeddable(backbones: dict[str, Path]) -> tuple[dict, dict[str, str], dict[str, str]]:
    """({source: Backbone} the MMD² estimators can use, {source: its training data}, {source: why not}): a model
    needs encoder features (an imported one: a sidecar ``embedding_layer``) and its training data at hand: the
    candidate's name, else the ``source`` the model records, as a dataset name or path. None usable is a
    one-line InputError."""
    nets, data, skipped = {}, {}, {}
    for s, p in backbones.items():
        bb = load_backbone(p)
        why = bb.net.missing_features("embedding")
        spec = next((str(c) for c in (s, bb.meta.get("source")) if c and volume_available(str(c))), None)
        if why is None and spec is None:
            why = f"its training data is not at hand ('{s}' and the source it records are no dataset name or path)"
        if why is None:
            nets[s], data[s] = bb, spec
        else:
            skipped[s] = why
    if not nets:
        raise InputError("MMD² can score none of the candidates: " + "; ".join(f"{s}: {w}" for s, w in skipped.items()))
    return nets, data, skipped


def rank_sources(target, backbones: dict[str, Path], settings: EmbedSettings = EmbedSettings(), *,
                 permutations: int = 1000, progress: bool = True) -> dict:
    """Embed and compare; returns the selection record (see :func:`write_selection`), ranking best first.

    ``target``: a dataset name, ``PATH[:KEY]`` (opened at ``settings.voxel_size``) or an opened volume.
    The patch is ``settings.patch_size`` or the first backbone's training patch, shrunk where a volume (target or
    source, at the common voxel size) is smaller (:func:`fitting_patch`)."""
    from neuroadda.selection.mmd import mmd2, mmd_test

    nets, data, skipped = embeddable(backbones)
    first = next(iter(nets.values()))[1]
    patch = tuple(settings.patch_size or first["patch_size"])
    for s, (net, _) in nets.items():
        if any(p % k for p, k in zip(patch, net.total_stride)):
            raise InputError(f"{backbones[s]}: patch {patch} is not a multiple of this backbone's stride "
                             f"{net.total_stride}")
    tvol = target if isinstance(target, LabelledVolume) else \
        open_volume(target, labels_key=None, resample_to=settings.voxel_size)
    vols = {}
    for s, (_net, meta) in nets.items():  # the target on each backbone's grid, the source there too
        tv = seen_by(tvol, meta["voxel_size"])
        vols[s] = (tv, open_volume(data[s], labels_key=None, resample_to=tv.voxel_size))
    patch = fitting_patch(patch, [v.shape for pair in vols.values() for v in pair],
                          [net.total_stride for net, _ in nets.values()])
    rows = []
    for s, (net, meta) in nets.items():
        tv, sv = vols[s]
        x = embed_volume(net, meta, tv, patch, settings, seed=settings.seed, progress=progress)
        y = embed_volume(net, meta, sv, patch, settings, seed=settings.seed + 1, progress=progress)
        x, y = embedding_space([x, y], settings.space)
        r = mmd_test(x, y, permutations=permutations, seed=settings.seed)
        floor = mmd2(*split_by_position(x, tv.shape, patch, settings), bandwidth=r.bandwidth)
        rows.append({"source": s, "mmd2": float(r.mmd2), "ci_low": float(r.ci_low), "ci_high": float(r.ci_high),
                     "p_value": float(r.p_value), "bandwidth": float(r.bandwidth), "backbone": str(backbones[s]),
                     "dim": int(x.shape[1]), "target_self_mmd2": float(floor), "source_data": data[s],
                     "within_target_variation": bool(r.mmd2 <= floor)})
    rows.sort(key=lambda r: r["mmd2"])
    rows += [{"source": s, "mmd2": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"),
              "p_value": float("nan"), "target_self_mmd2": float("nan"), "backbone": str(backbones[s]),
              "skipped": why, "flags": [f"mmd2 skipped it: {why}"]} for s, why in skipped.items()]
    best = rows[0]
    runner = rows[1] if len(rows) > 1 else None
    return {
        "target": tvol.name, "best": best["source"], "ranking": rows,
        "best_significantly_closer": bool(runner is not None and best["ci_high"] < runner["ci_low"]),
        "settings": {"n_patches": settings.n_patches, "seed": settings.seed, "pooling": settings.pooling,
                     "levels": list(settings.levels), "space": settings.space, "patch_size": list(patch),
                     "voxel_size_nm": {s: list(tv.voxel_size) for s, (tv, _) in vols.items()},
                     "grid": GRID_RULE,
                     "permutations": permutations, "estimator": "unbiased",
                     "kernel": "gaussian, median-heuristic bandwidth on the pooled sample",
                     "intensity_normalization": "per volume, as each backbone was trained",
                     "ci": "95% bootstrap percentile",
                     "significance": "best is significantly closer when its CI lies below the runner-up's",
                     "target_self_mmd2": "MMD² between the target's patches in the two halves of its longest axis, "
                                         "same kernel: sources at or below it are within the target's own variation"},
    }


def plot_ranking(sel: dict, path: Path) -> None:
    """Horizontal bars of MMD² with 95% CIs and p-values, best at the top."""
    from neuroadda.report import pyplot

    plt = pyplot()

    rows = sel["ranking"][::-1]
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(rows) + 1.8), layout="constrained")
    y = np.arange(len(rows))
    vals = [r["mmd2"] for r in rows]
    err = [[r["mmd2"] - r["ci_low"] for r in rows], [r["ci_high"] - r["mmd2"] for r in rows]]
    ax.barh(y, vals, xerr=np.clip(err, 0, None),
            color=["#d62728" if r["source"] == sel["best"] else "#7f7f7f" for r in rows], capsize=4)
    ax.set_yticks(y, [f"{short_name(r['source'])}\n(p={r['p_value']:.3g})" for r in rows])
    ax.set_xlabel("MMD² to target (unbiased, standardized embedding space)")
    ax.set_title(f"Sources ranked for target {short_name(sel['target'])}: best = {short_name(sel['best'])}")
    save_figure(fig, path)


def write_selection(sel: dict, out_dir: str | Path) -> Path:
    """Write ``selection.json`` and ``mmd.png`` into ``out_dir`` (atomically)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "selection.json", sel)
    plot_ranking(sel, out_dir / "mmd.png")
    return out_dir / "selection.json"
