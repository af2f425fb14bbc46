"""``neuroadda finetune``: train on a few labelled target samples, from a backbone or from scratch.

Both arms use one schedule (``finetune`` section of ``configs/adapt.yaml``): same steps, optimiser, patches
and augmentation; only the initial weights differ. The waterz threshold is chosen on the labelled samples
(or on ``val_samples`` of them kept out of training), never on the held-out evaluation region.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from neuroadda.config import AdaptConfig
from neuroadda.data.checks import require_sample_objects
from neuroadda.data.patches import SamplesPatchDataset, build_augment, collate
from neuroadda.data.volume import Box, LabelledVolume, Volume
from neuroadda.errors import InputError
from neuroadda.segmentation.threshold import threshold_table
from neuroadda.training.checkpoint import load_backbone, save_backbone
from neuroadda.training import resume
from neuroadda.training.module import AffinityModule
from neuroadda.tracking import card_checksums, make_logger
from neuroadda.training.pretrain import track_result, trainer_for


def sample_volumes(target: LabelledVolume, boxes: list[Box], labels: list[np.ndarray]) -> list[LabelledVolume]:
    """In-memory labelled volumes, one per sample: raw read from ``target`` at ``boxes``, ``labels`` given."""
    out = []
    for k, (box, lab) in enumerate(zip(boxes, labels)):
        raw = target.raw.read(box)
        if raw.shape != lab.shape:
            raise InputError(f"sample {k}: labels shape {lab.shape} differs from the raw sample {raw.shape}")
        name = f"{target.name}[sample {k}]"
        out.append(LabelledVolume(name=name, raw=Volume(raw, name, target.voxel_size),
                                  labels=Volume(lab, name, target.voxel_size, is_labels=True),
                                  voxel_size=target.voxel_size, labels_kind=target.labels_kind,
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
    """
    from neuroadda.data.normalize import fit_normalizer

    out_dir = Path(out_dir)
    fc = cfg.finetune
    if not boxes:
        raise InputError("no samples to fine-tune on")
    init, meta = load_backbone(backbone)
    require_sample_objects(labels, [f"{target.name}[sample {k}]" for k in range(len(labels))])
    n_val = fc.val_samples if 0 < fc.val_samples < len(boxes) else 0
    samples = sample_volumes(target, boxes, labels)
    train, val = samples[:len(samples) - n_val], samples[len(samples) - n_val:] or samples
    normalizer = normalizer or fit_normalizer(target.raw, meta.get("normalization", "zscore"))
    patch = patch_for(fc.patch_size, meta["patch_size"], np.min([v.shape for v in samples], axis=0), init.total_stride)

    pl.seed_everything(seed, workers=True, verbose=False)
    module = AffinityModule(net=meta["net"], bce=cfg.loss.bce, dice_weight=cfg.loss.dice_weight, lr=fc.lr,
                            weight_decay=fc.weight_decay, max_steps=fc.max_steps)  # fresh init from the seed
    if not scratch:
        module.net.load_state_dict(init.state_dict())
    ds = SamplesPatchDataset(train, patch, normalizer, length=fc.max_steps * fc.batch_size, seed=seed,
                             augment=build_augment(cfg.augment, patch),
                             offset=resume.resumed_step(out_dir) * fc.batch_size)
    loader = DataLoader(ds, batch_size=fc.batch_size, shuffle=False, num_workers=0, collate_fn=collate)
    card = target.card.model_dump(mode="json") if target.card is not None else None
    logger = make_logger(fc.logger, out_dir, name=f"{'scratch' if scratch else 'finetune'}-{target.name}-{out_dir.parent.name}",
                         tags=["scratch" if scratch else "finetuned"],
                         config={**cfg.model_dump(mode="json"), "target": target.name, "init": "scratch" if scratch
                                 else str(backbone), "n_samples": len(boxes), "seed": seed, "card": card,
                                 "checksums": card_checksums(card)})
    trainer = trainer_for(fc, out_dir, progress=progress, has_val=False, logger=logger, norm=meta["net"].get("norm", "instance"))
    resumed = resume.fit(trainer, module, out_dir, train_dataloaders=loader)
    if not trainer.is_global_zero:  # DDP: rank 0 alone chooses the threshold and writes the checkpoint
        return out_dir / "model.pt"
    net = module.net.cpu().eval()
    regions = [(v.raw.read(_full(v)), v.labels.read(_full(v))) for v in val]
    threshold, table = threshold_table(net, regions, normalizer, fc.thresholds, patch,
                                       labels_kind=target.labels_kind)
    out_meta = {
        "kind": "scratch" if scratch else "finetuned",
        "source": meta.get("source"), "init": "scratch" if scratch else str(backbone),
        "target": target.name, "card": card,
        "config": cfg.model_dump(mode="json"), "seed": seed,
        "voxel_size": list(target.voxel_size), "patch_size": list(patch),
        "normalization": meta.get("normalization", "zscore"), "labels_kind": target.labels_kind,
        "threshold": threshold, "threshold_table": table,
        "threshold_region": "validation samples" if n_val else "training samples",
        "samples": [[[s.start, s.stop] for s in b] for b in boxes], "n_train": len(train), "n_val": n_val,
        "steps": int(trainer.global_step), "resumed_from_step": resumed, "world_size": int(trainer.world_size), "device": str(torch.device("cuda" if torch.cuda.is_available() else "cpu")),
    }
    path = save_backbone(out_dir / "model.pt", net, out_meta)
    track_result(logger, net, regions[0][0], normalizer, patch, table, threshold, target.labels_kind)
    resume.clear(out_dir)
    return path


def _full(v: LabelledVolume) -> Box:
    return tuple(slice(0, n) for n in v.shape)
