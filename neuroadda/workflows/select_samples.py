"""``neuroadda select-samples``: score the target's candidates with a backbone and write the n picks for
annotators (samples.json, samples.png, annotate/sample_XX.{h5,tif} with the backbone's proposal beside each).

For a lab's own volume the whole volume is the pool (no held-out slab, unlike ``adapt`` and the study, which
withhold one to score the arms on); a pool larger than ``active.max_candidates`` is scored through a spatially
stratified subsample. Scoring runs in this process, streamed one batch of candidates at a time, or with
``block_size`` block by block on daisy workers (local processes or SLURM jobs), each scoring the candidates whose
origin lies in its block and leaving their scores in ``OUT.work/scores/<block>.npz``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from neuroadda.config import AdaptConfig


class _ScoreBlocks:
    """One block of block-wise scoring (picklable: the backbone and the volume are opened in the worker, once)."""

    def __init__(self, backbone: str, target: str, normalizer, origins_file: str, size, active: dict,
                 embeddings: bool, out_dir: str):
        self.backbone, self.target, self.normalizer = backbone, target, normalizer
        self.origins_file, self.size, self.active = origins_file, tuple(size), active
        self.embeddings, self.out_dir = embeddings, out_dir
        self._state = None

    def __getstate__(self):
        return {**self.__dict__, "_state": None}

    def __call__(self, info) -> dict:
        from neuroadda.active.pool import boxes_at
        from neuroadda.active.uncertainty import embed_candidates, score_candidates
        from neuroadda.report import save_npz

        if self._state is None:
            from neuroadda.data.volume import model_view, open_volume
            from neuroadda.models.checkpoint import load_backbone

            bb = load_backbone(self.backbone)
            self._state = (bb.net, model_view(open_volume(self.target, labels_key=None), bb.voxel_size),
                           np.load(self.origins_file, mmap_mode="r"))
        net, view, origins = self._state
        inside = np.all([(origins[:, a] >= s.start) & (origins[:, a] < s.stop) for a, s in enumerate(info.box)], 0)
        idx = np.flatnonzero(inside)
        boxes = boxes_at(np.asarray(origins[idx]), self.size)
        a = self.active
        scores = score_candidates(net, view, boxes, self.normalizer, method=a["uncertainty"], tta=a["tta"],
                                  mc_samples=a["mc_samples"]) if len(idx) else np.zeros(0)
        emb = embed_candidates(net, view, boxes, self.normalizer) if self.embeddings and len(idx) else np.zeros((0, 0))
        save_npz(Path(self.out_dir) / f"{info.index}.npz", index=idx, scores=scores, embeddings=emb)
        return {"candidates": int(len(idx))}


def blockwise_scorer(backbone: str | Path, target: str, normalizer, active, *, block_size, work: Path, cluster,
                     progress: bool = True):
    """A ``score`` function for :func:`neuroadda.active.samples.select_samples` that scores on daisy workers
    (``cluster``: a :class:`neuroadda.workflows.scheduler.Cluster`); the stage resumes in ``work``."""
    from neuroadda.workflows.scheduler import reset_stage, run_stage

    def score(cands, embeddings: bool):
        from neuroadda.data.volume import open_volume
        from neuroadda.report import atomic_path

        shape = open_volume(target, labels_key=None).shape
        origins = np.asarray([[s.start for s in box] for box in cands], np.int64)
        size = tuple(int(s.stop - s.start) for s in cands[0])
        work.mkdir(parents=True, exist_ok=True)
        path = work / "candidates.npy"
        if not path.exists() or not np.array_equal(np.load(path), origins):
            reset_stage(work, "score")  # another pool: the finished blocks scored other candidates
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                np.save(f, origins)
        out_dir = work / "scores"
        fn = _ScoreBlocks(str(Path(backbone).resolve()), target, normalizer, str(path.resolve()), size,
                          active.model_dump(), embeddings, str(out_dir.resolve()))
        run_stage("score", shape, block_size, fn, work_dir=work, cluster=cluster, progress=progress)
        scores, emb = np.full(len(cands), np.nan), None
        for p in sorted(out_dir.glob("*.npz")):
            with np.load(p) as f:
                scores[f["index"]] = f["scores"]
                if embeddings and len(f["index"]):
                    emb = np.zeros((len(cands), f["embeddings"].shape[1])) if emb is None else emb
                    emb[f["index"]] = f["embeddings"]
        if np.isnan(scores).any():
            raise RuntimeError(f"{work}: {int(np.isnan(scores).sum())} candidates were not scored")
        return scores, emb

    return score


def select_samples_for(target: str, backbone: str | Path, cfg: AdaptConfig, n: int, out: str | Path, *,
                       holdout: bool = False, proposals: bool = True, block_size=None, workers: int = 1,
                       cluster: str = "local", sbatch_args=(), work_dir=None,
                       progress: bool = False) -> tuple[dict, Path]:
    """(the samples record, the path of samples.json) for ``target`` (name, PATH[:KEY] or URL; unlabelled is fine).

    Candidates tile the whole target on its own grid (with ``holdout``, all but ``cfg.active.holdout_fraction``
    of it, as ``adapt`` does), so the samples, their exported files and the labels annotators return are at the
    target's own resolution (``voxel_size_nm``); the backbone scores each where the two grids meet
    (``scored_at_nm``, :mod:`neuroadda.data.grid`), and ``finetune`` trains there. ``proposals``: export the
    backbone's segmentation of every sample beside it (:mod:`.proposals`). ``block_size``: score on daisy
    workers (``workers``, ``cluster`` 'local' or 'slurm', ``sbatch_args``), work files in ``work_dir`` (default
    ``OUT.work``)."""
    from neuroadda.active.samples import select_samples, write_samples
    from neuroadda.data.grid import RULE
    from neuroadda.data.volume import open_volume
    from neuroadda.models.checkpoint import load_backbone

    active = cfg.active if holdout else cfg.active.model_copy(update={"holdout_fraction": 0.0})
    score = None
    clus = None
    if block_size is not None:
        from neuroadda.workflows.scheduler import Cluster
        from neuroadda.workflows.segment_blockwise import check_block_size

        block_size = check_block_size(block_size)
        clus = Cluster(cluster, int(workers), tuple(sbatch_args))
        clus.check()
    bb = load_backbone(backbone)
    vol = open_volume(target, labels_key=None)
    normalizer = bb.normalizer_for(vol.raw)
    if clus is not None:
        score = blockwise_scorer(backbone, target, normalizer, active, block_size=block_size,
                                 work=Path(work_dir or str(out).rstrip("/") + ".work"), cluster=clus,
                                 progress=progress)
    rec = select_samples(vol, bb.net, normalizer, active, n, seed=cfg.seed, progress=progress,
                         model_voxel_size=bb.voxel_size, score=score)
    rec.update({"backbone": str(backbone), "grid": RULE, "max_candidates": active.max_candidates,
                "held_out": bool(holdout)})
    props = None
    if proposals:
        from neuroadda.data.regions import box_from_json
        from neuroadda.workflows.proposals import proposals_for

        if progress:
            print(f"select-samples: the backbone's segmentation of {n} samples as proposals", file=sys.stderr)
        props = proposals_for(vol, [box_from_json(s["box"]) for s in rec["samples"]], bb, normalizer,
                              progress=progress)
    return rec, write_samples(rec, out, vol, proposals=props)


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
