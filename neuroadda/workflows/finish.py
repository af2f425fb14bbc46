"""After the fit, one tail for every training run: calibrate the waterz threshold on labelled regions, say when
the model has not learned, write the checkpoint, send the result to the tracker, drop the resumable checkpoints.

The trainers (pretrain, finetune) only fit; this step runs after them on rank 0, as nnU-Net runs its
``perform_actual_validation`` after ``run_training``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from neuroadda.models.checkpoint import save_backbone
from neuroadda.segmentation.threshold import calibrate, predict_region
from neuroadda.tracking import finish, log_slices, log_summary
from neuroadda.training import resume
from neuroadda.vocab import TWO_D


def finish_training(trainer, module, out_dir: str | Path, *, regions, normalizer, thresholds, patch,
                    labels_kind: str, meta: dict, logger=None, progress: bool = False) -> Path:
    """Calibrate on ``regions`` [(raw, gt), ...], then write ``out_dir/model.pt`` holding ``meta`` plus the
    threshold, its table, the learned flag and the run's step count; returns the path (rank 0 only: other DDP
    ranks return it without writing)."""
    out_dir = Path(out_dir)
    if not trainer.is_global_zero:
        return out_dir / "model.pt"
    net = module.net.cpu().eval()
    cal = calibrate(net, regions, normalizer, thresholds, patch, labels_kind=labels_kind, progress=progress)
    steps = int(trainer.global_step)
    report_calibration(cal, steps)
    path = save_backbone(out_dir / "model.pt", net, {
        **meta, "threshold": cal["threshold"], "threshold_table": cal["table"], "learned": cal["learned"],
        "one_segment_vi": cal["one_segment_vi"], "threshold_warning": cal["warning"], "steps": steps,
        "world_size": int(trainer.world_size),
        "device": str(torch.device("cuda" if torch.cuda.is_available() else "cpu"))})
    track_result(logger, net, regions[0][0], normalizer, patch, cal["table"], cal["threshold"], labels_kind)
    resume.clear(out_dir)
    return path


def report_calibration(cal: dict, steps: int, echo=None) -> None:
    """One line each (stderr) when the model has not learned or the threshold table looks unrepresentative."""
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

        affs = predict_region(net, raw, normalizer, patch, labels_kind=labels_kind)
        log_slices(logger, "validation", raw, affs, segment(affs, threshold, per_slice=labels_kind == TWO_D))
    finish(logger)
