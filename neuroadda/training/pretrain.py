"""``neuroadda pretrain``: train an affinity UNet on one labelled volume and write a backbone checkpoint.

The checkpoint records the config, dataset card, seed, code version, voxel size and the waterz threshold
chosen by VI on the held-out validation slab of the training volume (never on data evaluated later).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from neuroadda.config import PretrainConfig, TrainConfig
from neuroadda.data.checks import require_objects
from neuroadda.data.datamodule import AffinityDataModule
from neuroadda.data.volume import Box, open_volume
from neuroadda.errors import InputError
from neuroadda.models.unet import build_unet
from neuroadda.segmentation.threshold import threshold_table
from neuroadda.training.checkpoint import save_backbone
from neuroadda.tracking import card_checksums, finish, log_slices, log_summary, make_logger
from neuroadda.training import resume
from neuroadda.training.module import AffinityModule


def cap_box(box: Box, max_voxels: int) -> Box:
    """Shrink ``box`` symmetrically (largest axis first) until it holds at most ``max_voxels``."""
    sizes = [s.stop - s.start for s in box]
    while int(np.prod(sizes)) > max_voxels:
        i = int(np.argmax(sizes))
        sizes[i] = max(1, int(sizes[i] * 0.9))
    starts = [s.start + ((s.stop - s.start) - n) // 2 for s, n in zip(box, sizes)]
    return tuple(slice(a, a + n) for a, n in zip(starts, sizes))


def trainer_for(tc: TrainConfig, out_dir: Path, *, progress: bool = True, has_val: bool = True, logger=None,
                norm: str = "instance") -> pl.Trainer:
    """A Lightning Trainer from a ``train`` / ``finetune`` section (accelerator 'auto' uses CUDA when present).
    ``logger``: a Lightning logger (default: CSV or none, from ``tc.logger``)."""
    if logger is None:
        logger = make_logger(tc.logger, out_dir, name=Path(out_dir).name)
    from neuroadda.training.resume import checkpoint_callback

    ckpt = checkpoint_callback(out_dir, tc.checkpoint_every)
    several = tc.num_nodes > 1 or (isinstance(tc.devices, int) and tc.devices > 1)
    on_gpu = torch.cuda.is_available() and tc.accelerator in ("auto", "gpu", "cuda")
    sync_bn = several and norm == "batch" and on_gpu  # small per-device batches: statistics over all GPUs
    return pl.Trainer(
        callbacks=[ckpt] if ckpt else None, max_steps=tc.max_steps, accelerator=tc.accelerator, devices=tc.devices,
        num_nodes=tc.num_nodes, strategy=tc.strategy, sync_batchnorm=sync_bn, precision=tc.precision,
        logger=logger, enable_checkpointing=ckpt is not None, enable_progress_bar=progress, enable_model_summary=False,
        val_check_interval=min(tc.val_every_n_steps, tc.max_steps) if has_val else None,
        check_val_every_n_epoch=None, limit_val_batches=1.0 if has_val else 0,
        log_every_n_steps=min(10, tc.max_steps), num_sanity_val_steps=0, default_root_dir=str(out_dir))


def pretrain(source: str, cfg: PretrainConfig, out_dir: str | Path, *, labels: str | None = None,
             voxel_size=None, progress: bool = True) -> Path:
    """Train on ``source`` (dataset name or PATH[:KEY]) and write ``out_dir/model.pt``; returns its path."""
    out_dir = Path(out_dir)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    vol = open_volume(source, labels=labels, require_labels=True, voxel_size=voxel_size,
                      resample_to=cfg.data.voxel_size)
    require_objects(vol.labels, vol.labels.name)  # before any work: nothing to learn from 0 or 1 object
    net = build_unet(cfg.model, vol.voxel_size)
    stride = net.total_stride
    if any(p % s for p, s in zip(cfg.data.patch_size, stride)):
        raise InputError(f"data.patch_size {tuple(cfg.data.patch_size)} must be a multiple of the network's "
                         f"total stride {stride} (from model.strides)")
    dm = AffinityDataModule(vol, cfg.data, cfg.augment, cfg.train, seed=cfg.seed)
    require_objects(vol.labels, vol.labels.name, cap_box(dm.val_box or dm.train_box, cfg.train.max_val_voxels),
                    minimum=1, what="labels of the threshold-choice slab")
    out_dir.mkdir(parents=True, exist_ok=True)  # inputs validated: now write
    dm.offset = resume.resumed_step(out_dir) * cfg.train.batch_size
    module = AffinityModule(net=net.hparams, bce=cfg.loss.bce, dice_weight=cfg.loss.dice_weight, lr=cfg.train.lr,
                            weight_decay=cfg.train.weight_decay, max_steps=cfg.train.max_steps)
    has_val = dm.val_box is not None and cfg.train.val_patches > 0 and len(dm.val_dataloader()) > 0
    logger = make_logger(cfg.train.logger, out_dir, name=f"pretrain-{vol.name}", tags=["pretrain"],
                         config={**cfg.model_dump(mode="json"), "source": vol.name,
                                 "card": vol.card.model_dump(mode="json") if vol.card is not None else None,
                                 "checksums": card_checksums(vol.card.model_dump(mode="json") if vol.card else None)})
    trainer = trainer_for(cfg.train, out_dir, progress=progress, has_val=has_val, logger=logger, norm=cfg.model.norm)
    resumed = resume.fit(trainer, module, out_dir, datamodule=dm)
    if not trainer.is_global_zero:  # DDP: rank 0 alone chooses the threshold and writes the checkpoint
        return out_dir / "model.pt"
    net = module.net.cpu().eval()

    box = dm.val_box if dm.val_box is not None else dm.train_box
    box = cap_box(box, cfg.train.max_val_voxels)
    box_raw = vol.raw.read(box)
    threshold, table = threshold_table(net, [(box_raw, vol.labels.read(box))], dm.normalizer,
                                       cfg.train.thresholds, cfg.data.patch_size, labels_kind=vol.labels_kind,
                                       progress=progress)
    meta = {
        "kind": "backbone",
        "source": vol.name,
        "card": vol.card.model_dump(mode="json") if vol.card is not None else None,
        "config": cfg.model_dump(mode="json"),
        "seed": cfg.seed,
        "voxel_size": list(vol.voxel_size),
        "patch_size": list(cfg.data.patch_size),
        "normalization": cfg.data.normalization,
        "labels_kind": vol.labels_kind,
        "threshold": threshold,
        "threshold_table": table,
        "threshold_region": [[s.start, s.stop] for s in box],
        "threshold_region_is_validation": dm.val_box is not None,
        "steps": int(trainer.global_step), "resumed_from_step": resumed, "world_size": int(trainer.world_size),
        "device": str(torch.device("cuda" if torch.cuda.is_available() else "cpu")),
    }
    path = save_backbone(out_dir / "model.pt", net, meta)
    track_result(logger, net, box_raw, dm.normalizer, cfg.data.patch_size, table, threshold, vol.labels_kind)
    resume.clear(out_dir)
    return path


def track_result(logger, net, raw, normalizer, patch, table, threshold, labels_kind) -> None:
    """Send the chosen threshold's VI (split, merge) and a raw / affinity / segmentation slice to the logger."""
    if not logger:
        return
    best = next(r for r in table if r["threshold"] == threshold)
    log_summary(logger, {f"threshold/{k}": v for k, v in best.items()})
    if type(logger).__name__ == "WandbLogger":
        from neuroadda.segmentation.agglomerate import segment
        from neuroadda.segmentation.threshold import TWO_D, predict_region

        affs = predict_region(net, raw, normalizer, patch, labels_kind=labels_kind)
        log_slices(logger, "validation", raw, affs, segment(affs, threshold, per_slice=labels_kind == TWO_D))
    finish(logger)
