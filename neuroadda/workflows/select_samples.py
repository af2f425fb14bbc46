"""``neuroadda select-samples``: score the target's candidates with a backbone and write the n picks for
annotators (samples.json, samples.png, annotate/sample_XX.{h5,tif})."""

from __future__ import annotations

from pathlib import Path

from neuroadda.config import AdaptConfig


def select_samples_for(target: str, backbone: str | Path, cfg: AdaptConfig, n: int, out: str | Path, *,
                       progress: bool = False) -> tuple[dict, Path]:
    """(the samples record, the path of samples.json) for ``target`` (name or PATH[:KEY], unlabelled is fine).

    Candidates tile the target on its own grid, so the samples, their exported files and the labels annotators
    return are at the target's own resolution (``voxel_size_nm``); the backbone scores each where the two grids
    meet (``scored_at_nm``, :mod:`neuroadda.data.grid`), and ``finetune`` trains there."""
    from neuroadda.active.samples import select_samples, write_samples
    from neuroadda.data.grid import RULE
    from neuroadda.data.volume import open_volume
    from neuroadda.models.checkpoint import load_backbone

    bb = load_backbone(backbone)
    vol = open_volume(target, labels_key=None)
    rec = select_samples(vol, bb.net, bb.normalizer_for(vol.raw), cfg.active, n, seed=cfg.seed, progress=progress,
                         model_voxel_size=bb.voxel_size)
    rec.update({"backbone": str(backbone), "grid": RULE})
    return rec, write_samples(rec, out, vol)


def annotated_samples(target: str, folder: str | Path, stored_voxel_size=None) -> tuple[tuple, str, tuple]:
    """The annotated samples of a ``select-samples`` folder: (((raw, gt), ...), the target's labels kind, the
    samples' grid in nm). Labels come from what annotators returned in ``folder/annotate`` (sample_XX_labels.tif
    or a 'labels' dataset in sample_XX.h5), else from the target's own ground truth (oracle)."""
    from neuroadda.active.annotations import sample_labels
    from neuroadda.active.samples import check_target, load_samples
    from neuroadda.data.volume import on_grid, open_volume

    rec = load_samples(Path(folder))
    annotate = Path(folder) / "annotate"
    has_files = returned_labels(annotate)
    grid = tuple(float(v) for v in rec["voxel_size_nm"])
    vol = on_grid(open_volume(target, labels_key=None if has_files else "labels", voxel_size=stored_voxel_size), grid)
    check_target(rec, vol, str(folder))
    labels = sample_labels(vol, rec["boxes"], [s["name"] for s in rec["samples"]],
                           labels_dir=annotate if has_files else None)
    return tuple((vol.raw.read(b), lab) for b, lab in zip(rec["boxes"], labels)), vol.labels_kind, grid


def returned_labels(folder: Path) -> bool:
    """Whether annotators returned labels in ``folder`` (sample_XX_labels.tif, or a 'labels' dataset in an .h5)."""
    import h5py

    if not folder.is_dir():
        return False
    if any(folder.glob("*_labels.tif")):
        return True
    for p in folder.glob("*.h5"):
        with h5py.File(p, "r") as f:
            if "labels" in f:
                return True
    return False
