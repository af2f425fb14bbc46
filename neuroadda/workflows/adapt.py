"""``neuroadda adapt``: the method end to end, resumable.

select-source -> (per seed, per round) select-samples -> fine-tune from the best source and from scratch on
the same samples -> predict, segment and score the held-out region -> report. Labels come from the target's
ground truth (oracle mode, for benchmarks). Every step writes one file atomically; a step whose file exists is
skipped, so a killed run started again with the same command continues where it stopped.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from neuroadda.active.report import plot_heldout
from neuroadda.config import AdaptConfig
from neuroadda.data.regions import box_shape, box_to_json
from neuroadda.errors import InputError
from neuroadda.report import write_json

RESUMABLE_DIFFERENCES = ("seeds", "rounds")  # more seeds or rounds extend a finished run


class Steps:
    """Numbered steps that run once: a step whose output file exists is reported as done and skipped."""

    def __init__(self, total: int, echo=partial(print, flush=True)):
        self.i, self.total, self.echo = 0, total, echo
        self.ran, self.skipped = [], []
        self.seconds: dict[str, float] = {}  # wall time of every step run (not skipped) by this process

    def run(self, label: str, output: Path, fn) -> Path:
        self.i += 1
        head = f"[{self.i}/{self.total}] {label}"
        if Path(output).exists():
            self.skipped.append(label)
            self.echo(f"{head}: done earlier, skipped")
            return Path(output)
        self.echo(f"{head} ...")
        t0 = time.perf_counter()
        fn()
        if not Path(output).exists():
            raise RuntimeError(f"step '{label}' did not write {output}")
        self.ran.append(label)
        self.seconds[label] = round(time.perf_counter() - t0, 2)
        self.echo(f"{head}: done in {self.seconds[label]:.0f} s")
        return Path(output)


def check_settings(out: Path, settings: dict) -> None:
    """Record the run's settings in ``out/run.json``; a different run in the same folder is an error."""
    path = out / "run.json"
    if path.is_file():
        old = json.loads(path.read_text())
        diff = sorted(k for k in set(old) | set(settings)
                      if k not in RESUMABLE_DIFFERENCES and old.get(k) != settings.get(k))
        if diff:
            raise InputError(f"{out} holds an adapt run with different settings ({', '.join(diff)}): "
                             "use another --out, or delete the folder to start over")
    write_json(path, settings)


@dataclass(frozen=True)
class HeldOut:
    """The held-out region of a labelled target, read once: ``box`` in the target's grid, raw and gt (z, y, x),
    and that grid's voxel size (nm; None = unknown: every model sees it as stored)."""

    box: tuple
    raw: np.ndarray
    gt: np.ndarray
    labels_kind: str
    voxel_size: tuple | None = None

    @classmethod
    def read(cls, vol, box) -> HeldOut:
        from neuroadda.data.volume import known_voxel_size

        return cls(tuple(box), vol.raw.read(box), vol.labels.read(box), vol.labels_kind,
                   tuple(vol.voxel_size) if known_voxel_size(vol) else None)


SLICE = "heldout_slice.npz"


def evaluate_heldout(ckpt: Path, held: HeldOut, normalizer, out: Path, *, threshold: float | None = None) -> Path:
    """Predict ``held`` with checkpoint ``ckpt`` where the two grids meet, bring the affinities back to the held-out
    grid, segment at the checkpoint's threshold (or ``threshold``), write VI to ``out`` and the middle z slice of
    the segmentation (y, x) to ``heldout_slice.npz`` beside it (for figures)."""
    from neuroadda.models.checkpoint import load_backbone
    from neuroadda.report import save_npz
    from neuroadda.segmentation.threshold import score_region

    bb = load_backbone(ckpt)
    t = float(threshold if threshold is not None else bb.threshold)
    scores, seg = score_region(bb.net, held.raw, held.gt, normalizer, t, bb.patch_size, labels_kind=held.labels_kind,
                               grid=(held.voxel_size, bb.voxel_size))
    save_npz(Path(out).with_name(SLICE), seg=seg[seg.shape[0] // 2])
    if bb.learned is False:
        print(f"warning: {ckpt} recorded learned: false (its calibration VI was not clearly below one segment)",
              flush=True)
    return write_json(out, {**scores, "threshold": t, "checkpoint": str(ckpt),
                            "region": box_to_json(held.box), "voxel_size_nm": held.voxel_size and list(held.voxel_size),
                            "model_voxel_size_nm": list(bb.voxel_size),
                            "threshold_from": bb.threshold_region["what"], "learned": bb.learned})


def check_inputs(vol, holdout, backbones: dict[str, Path]) -> None:
    """What adapt reads later, checked up front: the target's labels (at least two objects, and an object in the
    held-out region to score), every source volume at hand (a --model candidate may have none) and every model."""
    from neuroadda.data.checks import require_objects
    from neuroadda.data.volume import open_volume, volume_available
    from neuroadda.models.checkpoint import load_backbone

    require_objects(vol.labels, vol.labels.name)
    require_objects(vol.labels, vol.labels.name, holdout, minimum=1, what="labels of the held-out region")
    for source, ckpt in backbones.items():
        if volume_available(source):
            open_volume(source, labels_key=None)
        load_backbone(ckpt)


def adapt(target: str, backbones: dict[str, Path], cfg: AdaptConfig, out: str | Path, *, n: int,
          seeds: list[int], rounds: int = 1, all_sources: bool = False, label_zero: str | None = None,
          progress: bool = True, echo=partial(print, flush=True)) -> dict:
    """Run (or resume) the whole method; returns the report (also written to ``out/report.json``).

    ``all_sources``: also fine-tune from every other source's backbone on the same samples (arms
    ``from:<source>``), so the report can say whether the selection ranking predicts the VI after fine-tuning."""
    from neuroadda.active.pool import candidate_pool
    from neuroadda.data.volume import open_volume
    from neuroadda.models.checkpoint import load_backbone
    from neuroadda.selection.ranking import rank, write_ranking

    if n < 1 or rounds < 1 or not seeds:
        raise InputError(f"--n, --rounds and --seeds must be at least 1 "
                         f"(got n={n}, rounds={rounds}, seeds={len(seeds)})")
    out = Path(out)
    vol = open_volume(target, label_zero=label_zero)
    if vol.labels is None:
        raise InputError(f"{target}: adapt scores the held-out region against the target's labels (oracle mode), "
                         "and this volume has none; for new data use select-samples, annotate, then finetune")
    _, holdout = candidate_pool(vol.shape, cfg.active.candidate_size, holdout_fraction=cfg.active.holdout_fraction,
                                holdout_axis=cfg.active.holdout_axis)
    if min(box_shape(holdout)) < 1:
        raise InputError("active.holdout_fraction is 0: adapt needs a held-out region to evaluate on")
    check_inputs(vol, holdout, backbones)  # before anything is written
    check_settings(out, {"target": target, "backbones": {s: str(p) for s, p in backbones.items()}, "n": n,
                         "seeds": list(seeds), "rounds": rounds, "all_sources": all_sources, "label_zero": label_zero,
                         "config": cfg.model_dump(mode="json")})
    steps = Steps(2 + len(seeds) * rounds * (5 + (2 * (len(backbones) - 1) if all_sources else 0)), echo)
    sc = cfg.select_source
    steps.run(f"select-source among {len(backbones)} backbones", out / "select" / "selection.json",
              lambda: write_ranking(rank(target, backbones, [sc.estimator] if sc.estimator else None,
                                         n_patches=sc.patches, seed=cfg.seed, permutations=sc.permutations,
                                         pooling=sc.pooling, space=sc.space, progress=progress), out / "select"))
    selection = json.loads((out / "select" / "selection.json").read_text())
    best = selection["best"]
    ckpt = Path(backbones[best])
    bb = load_backbone(ckpt)
    normalizer = bb.normalizer_for(vol.raw)
    held = HeldOut.read(vol, holdout)
    steps.run(f"zero-shot {best} on the held-out region", out / "zero_shot" / "eval.json",
              partial(evaluate_heldout, ckpt, held, normalizer, out / "zero_shot" / "eval.json"))
    arms = {"finetuned": (ckpt, False, f"fine-tune from {best}"), "scratch": (ckpt, True, "train from scratch")}
    if all_sources:
        arms.update({f"from:{src}": (Path(p), False, f"fine-tune from {src}")
                     for src, p in backbones.items() if src != best})
    per_round = [{"n_total": n * r, "arms": {a: [] for a in arms}} for r in range(1, rounds + 1)]
    for seed in seeds:
        for r, evals in enumerate(run_seed(vol, held, bb, normalizer, arms, cfg, out, steps, n=n, seed=seed,
                                           rounds=rounds, progress=progress)):
            for arm, ev in evals.items():
                per_round[r]["arms"][arm].append(ev)
    return write_outputs(out, vol, held, cfg, steps, target=target, best=best, n=n, seeds=seeds, rounds=rounds,
                         per_round=per_round, selection=selection)


def run_seed(vol, held: HeldOut, scorer, normalizer, arms: dict, cfg: AdaptConfig, out: Path, steps: Steps, *,
             n: int, seed: int, rounds: int, progress: bool) -> list[dict]:
    """All rounds of one seed: select n more samples (scored by ``scorer``, a Backbone, then by the model of the
    round before), fine-tune every arm on all samples so far, evaluate each on the held-out region. Samples are
    on the target's grid; every model sees them where the grids meet. Returns per round {arm: eval record}."""
    from neuroadda.active.annotations import sample_labels
    from neuroadda.active.samples import load_samples, select_samples, write_samples
    from neuroadda.models.checkpoint import load_backbone
    from neuroadda.selection.select import safe_name
    from neuroadda.workflows.finetune import finetune

    picked: list = []
    names: list = []
    results = []
    for r in range(1, rounds + 1):
        d = out / f"seed{seed}" / f"round{r}"
        tag = f"seed {seed}, round {r}"
        steps.run(f"{tag}: select {n} samples ({cfg.active.strategy})", d / "samples.json",
                  lambda scorer=scorer, picked=picked, d=d: write_samples(
                      select_samples(vol, scorer.net, normalizer, cfg.active, n, seed=seed, exclude=picked,
                                     start=len(picked), progress=progress, model_voxel_size=scorer.voxel_size),
                      d, vol))
        rec = load_samples(d / "samples.json")
        picked += rec["boxes"]
        names += [s["name"] for s in rec["samples"]]
        labels = sample_labels(vol, picked, names)
        evals = {}
        for arm, (init, scratch, what) in arms.items():
            a = d / safe_name(arm)
            steps.run(f"{tag}: {what} on {len(picked)} samples ({cfg.finetune.max_steps} steps)", a / "model.pt",
                      partial(finetune, vol, list(picked), labels, init, cfg, a, scratch=scratch, seed=seed,
                              normalizer=normalizer, progress=progress))
            steps.run(f"{tag}: evaluate {arm} on the held-out region", a / "eval.json",
                      partial(evaluate_heldout, a / "model.pt", held, normalizer, a / "eval.json"))
            evals[arm] = json.loads((a / "eval.json").read_text())
        results.append(evals)
        scorer = load_backbone(d / "finetuned" / "model.pt") if r < rounds else None
    return results


def write_outputs(out: Path, vol, held: HeldOut, cfg: AdaptConfig, steps: Steps, *, target: str, best: str, n: int,
                  seeds: list[int], rounds: int, per_round: list[dict], selection: dict) -> dict:
    """report.{json,md,png}, heldout.png (a middle slice per arm), timings.json and the W&B summary."""
    from neuroadda.active.report import build_report, write_report

    report = build_report(target=target, source=best, n=n, strategy=cfg.active.strategy, seeds=list(seeds),
                          rounds=per_round, selection=selection,
                          zero_shot=json.loads((out / "zero_shot" / "eval.json").read_text()))
    write_report(report, out)
    last = out / f"seed{seeds[0]}" / f"round{rounds}"
    slices = {"zero-shot": out / "zero_shot", "scratch": last / "scratch",
              f"fine-tuned from {best}": last / "finetuned"}
    mid = held.raw.shape[0] // 2
    plot_heldout(held.raw[mid], held.gt[mid],
                 {name: (np.load(d / SLICE)["seg"], json.loads((d / "eval.json").read_text())["vi"])
                  for name, d in slices.items() if (d / SLICE).is_file()}, out / "heldout.png",
                 title=f"{vol.name}: middle slice of the held-out region (seed {seeds[0]}, n = {n * rounds})")
    write_json(out / "timings.json", {"seconds": steps.seconds, "skipped": steps.skipped})
    track_report(report, cfg.finetune.logger, out)
    return report


def track_report(report: dict, kind: str, out: Path) -> None:
    """The adapt summary (VI per arm, % reduction, MMD² per source) as one tracking run (W&B only: the CSV
    loggers of the training runs already hold their own metrics)."""
    if kind != "wandb":
        return
    from neuroadda.tracking import finish, log_summary, make_logger

    logger = make_logger("wandb", out, name=f"adapt-{report['target']}", tags=["adapt"],
                         config={k: report[k] for k in ("target", "source", "n", "strategy", "seeds")})
    metrics = {f"{arm}/{m}_mean": report["arms"][arm][f"{m}_mean"] for arm in report["arms"]
               for m in ("vi", "vi_split", "vi_merge")}
    metrics.update({f"{report['estimator']}/{r['source']}": r["score"] for r in report["ranking"]})
    metrics["vi_reduction_pct"] = report["vi_reduction_pct"]
    log_summary(logger, metrics)
    finish(logger)
