"""``neuroadda pretrain``: train an affinity UNet on one labelled volume and write a backbone checkpoint.

The checkpoint records the config, dataset card, seed, code version, voxel size and the waterz threshold
chosen by VI on the held-out validation slab of the training volume (never on data evaluated later).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from neuroadda.config import PretrainConfig, TrainConfig
from neuroadda.data.datamodule import AffinityDataModule
from neuroadda.data.volume import Box, open_volume
from neuroadda.errors import InputError
from neuroadda.models.unet import build_unet
from neuroadda.data.patches import check_target_edges
from neuroadda.segmentation.threshold import calibrate, validation_region
from neuroadda.models.checkpoint import save_backbone
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
    callbacks = [c for c in (ckpt, _progress_bar() if progress else None) if c is not None]
    several = tc.num_nodes > 1 or (isinstance(tc.devices, int) and tc.devices > 1)
    on_gpu = torch.cuda.is_available() and tc.accelerator in ("auto", "gpu", "cuda")
    sync_bn = several and norm == "batch" and on_gpu  # small per-device batches: statistics over all GPUs
    return pl.Trainer(
        callbacks=callbacks, max_steps=tc.max_steps, accelerator=tc.accelerator, devices=tc.devices,
        num_nodes=tc.num_nodes, strategy=tc.strategy, sync_batchnorm=sync_bn, precision=tc.precision,
        logger=logger, enable_checkpointing=ckpt is not None, enable_progress_bar=progress, enable_model_summary=False,
        val_check_interval=min(tc.val_every_n_steps, tc.max_steps) if has_val else None,
        check_val_every_n_epoch=None, limit_val_batches=1.0 if has_val else 0,
        log_every_n_steps=min(10, tc.max_steps), num_sanity_val_steps=0, default_root_dir=str(out_dir),
        gradient_clip_val=tc.grad_clip, deterministic="warn")  # deterministic kernels where torch has them


def _progress_bar():
    """Lightning's tqdm bar redrawn every 10 steps (every step costs a redraw and, in a batch log, a line)."""
    from pytorch_lightning.callbacks import TQDMProgressBar

    return TQDMProgressBar(refresh_rate=10)


def pretrain(source: str, cfg: PretrainConfig, out_dir: str | Path, *, labels: str | None = None,
             voxel_size=None, label_zero: str | None = None, progress: bool = True) -> Path:
    """Train on ``source`` (dataset name or PATH[:KEY]) and write ``out_dir/model.pt``; returns its path.

    ``label_zero`` ('boundary' | 'unlabelled') overrides what the card or the labels' attribute says label 0 is.
    Inputs are checked (labels, patch vs stride, boundary edges in the targets) before ``out_dir`` is created."""
    out_dir = Path(out_dir)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    vol = open_volume(source, labels=labels, require_labels=True, voxel_size=voxel_size,
                      resample_to=cfg.data.voxel_size, label_zero=label_zero)
    net = build_unet(cfg.model, vol.voxel_size, aux_offsets=cfg.data.aux_offsets)
    stride = net.total_stride
    if any(p % s for p, s in zip(cfg.data.patch_size, stride)):
        raise InputError(f"data.patch_size {tuple(cfg.data.patch_size)} must be a multiple of the network's "
                         f"total stride {stride} (from model.strides)")
    dm = AffinityDataModule(vol, cfg.data, cfg.augment, cfg.train, seed=cfg.seed, offsets=net.offsets)
    check_target_edges(dm.train_dataset(), vol.name, label_zero=vol.label_zero)
    out_dir.mkdir(parents=True, exist_ok=True)
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
    if not trainer.is_global_zero:  # DDP: rank 0 alone chooses the threshold and writes the checkpoint
        return out_dir / "model.pt"
    net = module.net.cpu().eval()

    box = dm.val_box if dm.val_box is not None else dm.train_box
    box = cap_box(box, cfg.train.max_val_voxels)
    box_raw, box_gt, context = validation_region(vol, box, cfg.data.patch_size)
    cal = calibrate(net, [(box_raw, box_gt)], dm.normalizer, cfg.train.thresholds, cfg.data.patch_size,
                    labels_kind=vol.labels_kind, progress=progress)
    threshold, table = cal["threshold"], cal["table"]
    report_calibration(cal, int(trainer.global_step))
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
        "threshold_region": {"what": "validation slab" if dm.val_box is not None else "training volume",
                             "box": [[s.start, s.stop] for s in box],
                             "predicted": [[s.start, s.stop] for s in context]},
        "learned": cal["learned"], "one_segment_vi": cal["one_segment_vi"], "threshold_warning": cal["warning"],
        "steps": int(trainer.global_step), "resumed_from_step": resumed,
        "train_seconds": round(clock[0], 2), "train_cpu_seconds": round(clock[1], 2), "world_size": int(trainer.world_size),
        "device": str(torch.device("cuda" if torch.cuda.is_available() else "cpu")),
    }
    path = save_backbone(out_dir / "model.pt", net, meta)
    track_result(logger, net, box_raw, dm.normalizer, cfg.data.patch_size, table, threshold, vol.labels_kind)
    resume.clear(out_dir)
    return path


def report_calibration(cal: dict, steps: int, echo=None) -> None:
    """One line each (stderr) when the model has not learned or the threshold table looks unrepresentative."""
    import sys

    echo = echo or (lambda m: print(m, file=sys.stderr, flush=True))
    best = next(r for r in cal["table"] if r["threshold"] == cal["threshold"])
    if not cal["learned"]:
        echo(f"warning: the model has not learned to segment after {steps} steps: VI {best['vi']:.3f} bits at its "
             f"best threshold vs {cal['one_segment_vi']:.3f} for one segment (recorded as learned: false)")
    if cal["warning"]:
        echo(f"warning: {cal['warning']}")


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
