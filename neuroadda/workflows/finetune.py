"""``neuroadda finetune``: train on a few labelled target samples, from a backbone or from scratch.

Both arms use one schedule (``finetune`` section of ``configs/adapt.yaml``): same steps, optimiser, patches
and augmentation; only the initial weights differ. The waterz threshold is chosen on the labelled samples
(or on ``val_samples`` of them kept out of training), never on the held-out evaluation region.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
from torch.utils.data import DataLoader

from neuroadda.config import AdaptConfig
from neuroadda.data.checks import require_sample_objects
from neuroadda.data.grid import grid_shape, same_grid
from neuroadda.data.patches import SamplesPatchDataset, build_augment, check_target_edges, collate
from neuroadda.data.regions import Box, box_to_json, full_box
from neuroadda.data.volume import LabelledVolume, Volume, resize, seen_by
from neuroadda.errors import InputError
from neuroadda.models.checkpoint import load_backbone
from neuroadda.tracking import card_checksums, make_logger
from neuroadda.training import resume
from neuroadda.training.module import AffinityModule
from neuroadda.training.trainer import trainer_for
from neuroadda.workflows.finish import finish_training


def sample_volumes(target: LabelledVolume, boxes: list[Box], labels: list[np.ndarray],
                   grid=None) -> list[LabelledVolume]:
    """In-memory labelled volumes, one per sample: raw read from ``target`` at ``boxes``, ``labels`` given, both
    resized to ``grid`` (nm; raw interpolated, labels nearest) when it differs from the target's."""
    grid = tuple(grid or target.voxel_size)
    out = []
    for k, (box, lab) in enumerate(zip(boxes, labels)):
        raw = target.raw.read(box)
        if raw.shape != lab.shape:
            raise InputError(f"sample {k}: labels shape {lab.shape} differs from the raw sample {raw.shape}")
        if not same_grid(grid, target.voxel_size):
            shape = grid_shape(raw.shape, target.voxel_size, grid)
            raw, lab = resize(raw, shape, labels=False), resize(np.asarray(lab), shape, labels=True)
        name = f"{target.name}[sample {k}]"
        out.append(LabelledVolume(name=name, raw=Volume(raw, name, grid),
                                  labels=Volume(lab, name, grid, is_labels=True),
                                  voxel_size=grid, labels_kind=target.labels_kind,
                                  label_zero=target.label_zero, card=target.card))
    return out


def patch_for(requested, backbone_patch, sample_shape, stride) -> tuple[int, int, int]:
    """Training patch: ``requested`` or the backbone's patch, capped by the smallest sample and rounded down
    to a multiple of the network's total stride."""
    want = tuple(requested) if requested is not None else tuple(backbone_patch)
    patch = tuple(max(s, (min(w, n) // s) * s) for w, n, s in zip(want, sample_shape, stride))
    if any(p > n for p, n in zip(patch, sample_shape)):
        raise InputError(f"samples of shape {tuple(sample_shape)} are smaller than one network stride {tuple(stride)}; "
                         "use a larger active.candidate_size")
    return patch


def finetune(target: LabelledVolume, boxes: list[Box], labels: list[np.ndarray], backbone: str | Path,
             cfg: AdaptConfig, out_dir: str | Path, *, scratch: bool = False, seed: int = 0, normalizer=None,
             progress: bool = True) -> Path:
    """Fine-tune ``backbone`` (or, with ``scratch``, a freshly initialised copy of its architecture) on the
    labelled samples and write ``out_dir/model.pt`` (a backbone-format checkpoint; ``predict`` accepts it).

    ``boxes``: sample positions in the target's voxel grid; ``labels``: one (z, y, x) integer array per box.
    The network trains where the target meets the backbone (:func:`neuroadda.data.volume.seen_by`: in-plane at
    the backbone's pixel size): the samples are resized there and the checkpoint records that voxel size.
    """

    out_dir = Path(out_dir)
    fc = cfg.finetune
    if not boxes:
        raise InputError("no samples to fine-tune on")
    bb = load_backbone(backbone)
    init, meta = bb
    require_sample_objects(labels, [f"{target.name}[sample {k}]" for k in range(len(labels))])
    n_val = fc.val_samples if 0 < fc.val_samples < len(boxes) else 0
    samples = sample_volumes(target, boxes, labels, seen_by(target, bb.voxel_size).voxel_size)
    train, val = samples[:len(samples) - n_val], samples[len(samples) - n_val:] or samples
    normalizer = normalizer or bb.normalizer_for(target.raw)
    patch = patch_for(fc.patch_size, meta["patch_size"], np.min([v.shape for v in samples], axis=0), init.total_stride)

    pl.seed_everything(seed, workers=True, verbose=False)
    net = init.fresh()  # the same architecture, fresh init from the seed (any kind of model: see Backbone)
    if not scratch:
        net.load_state_dict(init.state_dict())
    module = AffinityModule(net=net, **cfg.loss.model_dump(), lr=fc.lr, weight_decay=fc.weight_decay,
                            max_steps=fc.max_steps, schedule=fc.schedule)
    ds = SamplesPatchDataset(train, patch, normalizer, length=fc.max_steps * fc.batch_size, seed=seed,
                             augment=build_augment(cfg.augment, patch), offsets=init.offsets,
                             offset=resume.resumed_step(out_dir) * fc.batch_size)
    check_target_edges(ds, f"{target.name} samples", label_zero=target.label_zero)
    loader = DataLoader(ds, batch_size=fc.batch_size, shuffle=False, num_workers=0, collate_fn=collate)
    card = target.card.model_dump(mode="json") if target.card is not None else None
    logger = make_logger(fc.logger, out_dir,
                         name=f"{'scratch' if scratch else 'finetune'}-{target.name}-{out_dir.parent.name}",
                         tags=["scratch" if scratch else "finetuned"],
                         config={**cfg.model_dump(mode="json"), "target": target.name, "init": "scratch" if scratch
                                 else str(backbone), "n_samples": len(boxes), "seed": seed, "card": card,
                                 "checksums": card_checksums(card)})
    trainer = trainer_for(fc, out_dir, progress=progress, has_val=False, logger=logger,
                          norm=init.hparams.get("norm", "instance"))
    resumed = resume.fit(trainer, module, out_dir, train_dataloaders=loader)
    regions = [(v.raw.read(full_box(v.shape)), v.labels.read(full_box(v.shape))) for v in val]
    meta = {
        "kind": "scratch" if scratch else "finetuned", "source": meta.get("source"),
        "imported_from": meta.get("imported_from") or (None if bb.origin == "neuroadda" else meta.get("model_file")),
        "init": "scratch" if scratch else str(backbone), "target": target.name, "card": card,
        "config": cfg.model_dump(mode="json"), "seed": seed, "voxel_size": list(samples[0].voxel_size),
        "patch_size": list(patch), "normalization": bb.normalization, "labels_kind": target.labels_kind,
        "threshold_region": {"what": "validation samples" if n_val else "training samples", "box": None},
        "samples": [box_to_json(b) for b in boxes], "n_train": len(train), "n_val": n_val,
        "resumed_from_step": resumed}
    return finish_training(trainer, module, out_dir, regions=regions, normalizer=normalizer, thresholds=fc.thresholds,
                           patch=patch, labels_kind=target.labels_kind, meta=meta, logger=logger)


def finetune_from_samples(target: str, samples: str | Path, backbone: str, cfg: AdaptConfig, out: str | Path, *,
                          labels_dir: str | Path | None = None, label_zero: str | None = None,
                          progress: bool = True) -> Path:
    """``neuroadda finetune``: the samples of ``samples`` (samples.json), labels from ``labels_dir`` (what
    annotators returned) or, without it, the target's own ground truth (oracle); ``backbone`` a checkpoint or
    'scratch' (the architecture recorded in samples.json, fresh weights)."""
    from neuroadda.active.annotations import sample_labels
    from neuroadda.active.samples import check_target, load_samples
    from neuroadda.data.volume import open_volume

    if backbone != "scratch":
        load_backbone(backbone)  # a bad model is the first thing said, before samples or labels are read
    rec = load_samples(samples)
    vol = open_volume(target, labels_key="labels" if labels_dir is None else None, label_zero=label_zero)
    check_target(rec, vol, str(samples))
    scratch = backbone == "scratch"
    init = rec.get("backbone") if scratch else backbone
    if init is None:
        raise InputError(f"{samples}: no 'backbone' recorded, so --backbone scratch has no architecture to copy")
    labels = sample_labels(vol, rec["boxes"], [s["name"] for s in rec["samples"]], labels_dir=labels_dir)
    return finetune(vol, rec["boxes"], labels, init, cfg, out, scratch=scratch, seed=cfg.seed, progress=progress)
