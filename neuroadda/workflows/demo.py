"""``neuroadda demo``: the whole method on the bundled real EM crops, in minutes on a laptop CPU.

Small pretrained backbones for the bundled source crops ship in the repository (``datasets/backbones``;
``--retrain`` rebuilds them with ``pretrain``). The demo runs ``adapt`` with ``configs/demo.yaml``: select the
source for the held-out target by MMD², pick n samples by median uncertainty, fine-tune from the chosen
backbone and from scratch on the same samples (oracle labels from the target's ground truth), segment and
score the held-out region by VI. It prints one summary and writes figures to the output folder.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import tempfile
import time
from functools import partial
from pathlib import Path

from neuroadda.config import DemoConfig, load_config
from neuroadda.errors import InputError
from neuroadda.paths import resource_root
from neuroadda.report import write_json

REPO = resource_root()  # the checkout, or the installed package's data (holds configs/ and datasets/backbones/)
DEFAULT_CONFIG = REPO / "configs" / "demo.yaml"


def backbone_paths(cfg: DemoConfig) -> dict[str, Path]:
    """{source: <backbones folder>/<source>.pt}; a relative folder is relative to the repository."""
    from neuroadda.selection.select import safe_name

    folder = Path(cfg.backbones)
    folder = folder if folder.is_absolute() else REPO / folder
    return {s: folder / f"{safe_name(s)}.pt" for s in cfg.sources}


def build_backbones(cfg: DemoConfig, *, progress: bool = True, echo=print) -> dict[str, float]:
    """Pretrain one small backbone per source into :func:`backbone_paths` (each replaced atomically).
    Returns the wall time per source (s)."""
    from neuroadda.workflows.pretrain import pretrain

    seconds = {}
    for i, (src, path) in enumerate(backbone_paths(cfg).items(), 1):
        pc = cfg.pretrain.model_copy(deep=True)
        pc.data = pc.data.model_copy(update={"voxel_size": cfg.resample.get(src)})
        echo(f"[backbone {i}/{len(cfg.sources)}] pretrain on {src} ({pc.train.max_steps} steps, channels "
             f"{pc.model.channels}, patch {tuple(pc.data.patch_size)}) ...", flush=True)
        t0 = time.perf_counter()
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".pretrain-", dir=path.parent) as tmp:
            os.replace(pretrain(src, pc, tmp, progress=progress), path)
        seconds[src] = round(time.perf_counter() - t0, 2)
        echo(f"[backbone {i}/{len(cfg.sources)}] wrote {path} in {seconds[src]:.0f} s", flush=True)
    return seconds


def peak_rss_gb() -> float:
    """Peak resident memory of this process and its finished children, GB (Linux reports ru_maxrss in KiB)."""
    kib = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
              resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return kib * 1024 / 1e9


def run_demo(out: str | Path, *, config: str | Path | None = None, retrain: bool = False, fresh: bool = False,
             progress: bool = True, echo=partial(print, flush=True)) -> dict:
    """Run the demo into ``out`` (resumes an unfinished one unless ``fresh``); returns ``out/demo.json``'s content:
    the adapt report plus per-stage wall times (s), total time and peak memory (GB)."""
    from neuroadda.data.cards import all_cards, require_files
    from neuroadda.workflows.adapt import adapt

    t0 = time.perf_counter()
    cfg = load_config(config or DEFAULT_CONFIG, DemoConfig)
    out = Path(out)
    cards = all_cards()
    for name in dict.fromkeys([cfg.target, *cfg.sources]):  # the crops, before anything is written or removed
        if name in cards:
            require_files(cards[name])
    if fresh and out.is_dir() and any(out.iterdir()) and not (out / "run.json").is_file():
        raise InputError(f"{out}: folder is not empty and holds no earlier demo; choose another --out")
    paths = backbone_paths(cfg)
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing and not retrain:
        raise InputError(f"{missing[0]}: demo backbone not found; rebuild the shipped backbones with "
                         "'neuroadda demo --retrain'")
    if fresh and out.is_dir():
        shutil.rmtree(out)
    stages = {}
    if retrain:
        stages.update({f"pretrain backbone {s}": t
                       for s, t in build_backbones(cfg, progress=progress, echo=echo).items()})
    report = adapt(cfg.target, paths, cfg.adapt, out, n=cfg.n, seeds=[cfg.adapt.seed + i for i in range(cfg.seeds)],
                   progress=progress, echo=echo)
    timings = json.loads((out / "timings.json").read_text())
    stages.update(timings["seconds"])
    figures = [out / "select" / ("mmd.png" if report["estimator"] == "mmd2" else "ranking.png"),
               out / f"seed{cfg.adapt.seed}" / "round1" / "samples.png",
               out / "report.png", out / "heldout.png"]
    summary = {"report": report, "stage_seconds": stages, "skipped": timings["skipped"],
               "total_seconds": round(time.perf_counter() - t0, 2), "peak_rss_gb": round(peak_rss_gb(), 3),
               "figures": [str(f) for f in figures if f.is_file()], "config": cfg.model_dump(mode="json")}
    write_json(out / "demo.json", summary)
    return summary

