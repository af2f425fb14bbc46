"""``neuroadda pretrain``: train an affinity UNet on one labelled volume and write a backbone checkpoint.

The checkpoint records the config, dataset card, seed, code version, voxel size and the waterz threshold
chosen by VI on the held-out validation slab of the training volume (never on data evaluated later).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytorch_lightning as pl

from neuroadda.config import PretrainConfig
from neuroadda.data.checks import require_objects
from neuroadda.data.datamodule import AffinityDataModule
from neuroadda.data.patches import check_target_edges
from neuroadda.data.regions import box_to_json, cap_box
from neuroadda.data.volume import open_volume, restrict
from neuroadda.errors import InputError
from neuroadda.models.unet import build_unet
from neuroadda.segmentation.threshold import validation_region
from neuroadda.tracking import card_checksums, make_logger
from neuroadda.training import resume
from neuroadda.training.module import AffinityModule
from neuroadda.training.trainer import trainer_for
from neuroadda.workflows.finish import finish_training


def pretrain(source: str, cfg: PretrainConfig, out_dir: str | Path, *, labels: str | None = None,
             voxel_size=None, label_zero: str | None = None, region=None, progress: bool = True) -> Path:
    """Train on ``source`` (dataset name or PATH[:KEY]) and write ``out_dir/model.pt``; returns its path.

    ``region``: a box (on the grid of ``cfg.data.voxel_size``) the training, validation slab and threshold
    choice stay inside (the transfer study's fully supervised ceiling: everything but the held-out region).
    ``label_zero`` ('boundary' | 'unlabelled') overrides what the card or the labels' attribute says label 0 is.
    Inputs are checked (labels, patch vs stride, boundary edges in the targets) before ``out_dir`` is created."""
    out_dir = Path(out_dir)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    vol = open_volume(source, labels=labels, require_labels=True, voxel_size=voxel_size,
                      resample_to=cfg.data.voxel_size, label_zero=label_zero)
    if region is not None:
        vol = restrict(vol, region)
    require_objects(vol.labels, vol.labels.name)  # before any work: nothing to learn from 0 or 1 object
    net = build_unet(cfg.model, vol.voxel_size, aux_offsets=cfg.data.aux_offsets)
    stride = net.total_stride
    if any(p % s for p, s in zip(cfg.data.patch_size, stride)):
        raise InputError(f"data.patch_size {tuple(cfg.data.patch_size)} must be a multiple of the network's "
                         f"total stride {stride} (from model.strides)")
    dm = AffinityDataModule(vol, cfg.data, cfg.augment, cfg.train, seed=cfg.seed, offsets=net.offsets)
    require_objects(vol.labels, vol.labels.name, cap_box(dm.val_box or dm.train_box, cfg.train.max_val_voxels),
                    minimum=1, what="labels of the threshold-choice slab")
    check_target_edges(dm.train_dataset(), vol.name, label_zero=vol.label_zero)
    out_dir.mkdir(parents=True, exist_ok=True)  # inputs validated: now write
    dm.offset = resume.resumed_step(out_dir) * cfg.train.batch_size
    module = AffinityModule(net=net.hparams, **cfg.loss.model_dump(), lr=cfg.train.lr,
                            weight_decay=cfg.train.weight_decay, max_steps=cfg.train.max_steps,
                            schedule=cfg.train.schedule)
    has_val = dm.val_box is not None and cfg.train.val_patches > 0 and len(dm.val_dataloader()) > 0
    logger = make_logger(cfg.train.logger, out_dir, name=f"pretrain-{vol.name}", tags=["pretrain"],
                         config={**cfg.model_dump(mode="json"), "source": vol.name,
                                 "card": vol.card.model_dump(mode="json") if vol.card is not None else None,
                                 "checksums": card_checksums(vol.card.model_dump(mode="json") if vol.card else None)})
    trainer = trainer_for(cfg.train, out_dir, progress=progress, has_val=has_val, logger=logger, norm=cfg.model.norm)
    clock = (time.perf_counter(), time.process_time())
    resumed = resume.fit(trainer, module, out_dir, datamodule=dm)
    clock = (time.perf_counter() - clock[0], time.process_time() - clock[1])
    box = cap_box(dm.val_box if dm.val_box is not None else dm.train_box, cfg.train.max_val_voxels)
    box_raw, box_gt, context = validation_region(vol, box, cfg.data.patch_size)
    card = vol.card.model_dump(mode="json") if vol.card is not None else None
    meta = {
        "kind": "backbone", "source": vol.name, "card": card, "config": cfg.model_dump(mode="json"), "seed": cfg.seed,
        "voxel_size": list(vol.voxel_size), "patch_size": list(cfg.data.patch_size),
        "normalization": cfg.data.normalization, "labels_kind": vol.labels_kind,
        "threshold_region": {"what": "validation slab" if dm.val_box is not None else "training volume",
                             "box": box_to_json(box), "predicted": box_to_json(context)},
        "resumed_from_step": resumed, "train_seconds": round(clock[0], 2), "train_cpu_seconds": round(clock[1], 2)}
    return finish_training(trainer, module, out_dir, regions=[(box_raw, box_gt)], normalizer=dm.normalizer,
                           thresholds=cfg.train.thresholds, patch=cfg.data.patch_size, labels_kind=vol.labels_kind,
                           meta=meta, logger=logger, progress=progress)

