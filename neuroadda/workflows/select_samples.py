"""``neuroadda select-samples``: score the target's candidates with a backbone and write the n picks for
annotators (samples.json, samples.png, annotate/sample_XX.{h5,tif})."""

from __future__ import annotations

from pathlib import Path

from neuroadda.config import AdaptConfig


def select_samples_for(target: str, backbone: str | Path, cfg: AdaptConfig, n: int, out: str | Path, *,
                       progress: bool = False) -> tuple[dict, Path]:
    """(the samples record, the path of samples.json) for ``target`` (name or PATH[:KEY], unlabelled is fine)."""
    from neuroadda.active.samples import select_samples, write_samples
    from neuroadda.data.volume import open_volume
    from neuroadda.models.checkpoint import load_backbone

    bb = load_backbone(backbone)
    vol = open_volume(target, labels_key=None)
    rec = select_samples(vol, bb.net, bb.normalizer_for(vol.raw), cfg.active, n, seed=cfg.seed, progress=progress)
    rec["backbone"] = str(backbone)
    return rec, write_samples(rec, out, vol)
