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
from neuroadda.report import write_json

REPO = Path(__file__).resolve().parents[1]
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
    from neuroadda.training.pretrain import pretrain

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
    kib = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return kib * 1024 / 1e9


def run_demo(out: str | Path, *, config: str | Path | None = None, retrain: bool = False, fresh: bool = False,
             progress: bool = True, echo=partial(print, flush=True)) -> dict:
    """Run the demo into ``out`` (resumes an unfinished one unless ``fresh``); returns ``out/demo.json``'s content:
    the adapt report plus per-stage wall times (s), total time and peak memory (GB)."""
    from neuroadda.active.adapt import adapt

    t0 = time.perf_counter()
    cfg = load_config(config or DEFAULT_CONFIG, DemoConfig)
    out = Path(out)
    if fresh and out.is_dir() and any(out.iterdir()):
        if not (out / "run.json").is_file():
            raise InputError(f"{out}: folder is not empty and holds no earlier demo; choose another --out")
        shutil.rmtree(out)
    stages = {}
    if retrain:
        stages.update({f"pretrain backbone {s}": t for s, t in build_backbones(cfg, progress=progress, echo=echo).items()})
    paths = backbone_paths(cfg)
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise InputError(f"{missing[0]}: demo backbone not found; rebuild the shipped backbones with "
                         "'neuroadda demo --retrain'")
    report = adapt(cfg.target, paths, cfg.adapt, out, n=cfg.n, seeds=[cfg.adapt.seed], progress=progress, echo=echo)
    timings = json.loads((out / "timings.json").read_text())
    stages.update(timings["seconds"])
    figures = [out / "select" / "mmd.png", out / f"seed{cfg.adapt.seed}" / "round1" / "samples.png",
               out / "report.png", out / "heldout.png"]
    summary = {"report": report, "stage_seconds": stages, "skipped": timings["skipped"],
               "total_seconds": round(time.perf_counter() - t0, 2), "peak_rss_gb": round(peak_rss_gb(), 3),
               "figures": [str(f) for f in figures if f.is_file()], "config": cfg.model_dump(mode="json")}
    write_json(out / "demo.json", summary)
    return summary


def summary_text(summary: dict, out: str | Path) -> str:
    """The demo's closing table: MMD² ranking with p-values, VI per arm, % reduction, stage times."""
    from neuroadda.cli.common import table

    rep = summary["report"]
    sel = json.loads((Path(out) / "select" / "selection.json").read_text())
    lines = [f"\nSource selection for target {rep['target']} (MMD² of deepest-level embeddings, lower = closer; "
             f"p-value of a {sel['settings'].get('permutations', '')}-permutation test of 'same distribution'):"]
    lines.append(table([[i, r["source"], f"{r['mmd2']:.4f}", f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]",
                         f"{r['p_value']:.4f}"] for i, r in enumerate(sel["ranking"], 1)],
                       ["rank", "source", "MMD²", "95% CI", "p-value"]))
    arms = rep["arms"]
    rows = []
    if rep.get("zero_shot"):
        z = rep["zero_shot"]
        rows.append([f"zero-shot {rep['source']} (0 samples)", f"{z['vi_split']:.3f}", f"{z['vi_merge']:.3f}",
                     f"{z['vi']:.3f}"])
    rows += [[f"{name} ({rep['n']} samples)", f"{arms[a]['vi_split_mean']:.3f}", f"{arms[a]['vi_merge_mean']:.3f}",
              f"{arms[a]['vi_mean']:.3f}"]
             for a, name in (("scratch", "from scratch"), ("finetuned", f"fine-tuned from {rep['source']}"))]
    lines.append(f"\nSegmentation of the held-out region ({rep['n']} samples picked by {rep['strategy']}; VI in bits, "
                 "lower is better):")
    lines.append(table(rows, ["", "VI split", "VI merge", "VI total"]))
    lines.append(f"VI reduction, fine-tuned vs scratch: {rep['vi_reduction_pct']:.1f}%")
    stages = "; ".join(f"{k} {v:.0f} s" for k, v in summary["stage_seconds"].items())
    lines.append(f"\nStage times: {stages}. Total {summary['total_seconds']:.0f} s, peak memory "
                 f"{summary['peak_rss_gb']:.2f} GB.")
    lines.append(f"Figures are in {Path(out)}: " + ", ".join(Path(f).relative_to(out).as_posix()
                                                               for f in summary["figures"])
                 + f"; numbers in {Path(out) / 'demo.json'}.")
    return "\n".join(lines)
