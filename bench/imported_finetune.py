"""Fine-tuning an imported bioimage.io package beats its zero-shot VI (and matches fine-tuning our own checkpoint).

The demo's gala-train backbone (``datasets/backbones/gala-train.pt``) is exported with ``neuroadda export`` and
imported back as a bioimage.io package. On the neuroproof target, as the demo does (``configs/demo.yaml``: the
held-out slab z 150-250, 4 samples of 16x96x96 picked by median uncertainty, oracle labels, 300 fine-tuning
steps), for each seed the package picks the samples and the same samples fine-tune two arms: from the package
and from the native checkpoint. Every arm and the zero-shot package are scored on the held-out slab (VI, bits).

    nice -n 15 python bench/imported_finetune.py [--seeds 5] [--out runs/bench_imported] [--arm NAME=MODEL ...]

``--arm`` adds a model fine-tuned on the same samples (and scored zero-shot), e.g. the plain-PyTorch boundary
UNet of ``bench/plain_boundary.py`` (TorchScript + sidecar): a model NeuroADDA did not write.

Writes ``docs/results/imported/finetune_neuroproof.json`` (every per-seed VI, split and merge, timings) and prints
the table. Resumable: a step whose file exists is skipped.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from neuroadda.active.annotations import sample_labels  # noqa: E402
from neuroadda.active.pool import candidate_pool  # noqa: E402
from neuroadda.active.samples import load_samples, select_samples, write_samples  # noqa: E402
from neuroadda.config import DemoConfig, load_config  # noqa: E402
from neuroadda.data.volume import open_volume  # noqa: E402
from neuroadda.metrics.stats import bootstrap_ci, mean_sd, wilcoxon_signed_rank  # noqa: E402
from neuroadda.models.checkpoint import code_version, load_backbone  # noqa: E402
from neuroadda.report import write_json  # noqa: E402
from neuroadda.workflows.adapt import HeldOut, Steps, evaluate_heldout  # noqa: E402
from neuroadda.workflows.export import export_package  # noqa: E402
from neuroadda.workflows.finetune import finetune  # noqa: E402

RESULT = REPO / "docs" / "results" / "imported" / "finetune_neuroproof.json"


def paired(a: list[float], b: list[float]) -> dict:
    """a - b per seed: mean, bootstrap 95 % CI, exact Wilcoxon p."""
    d = np.asarray(a) - np.asarray(b)
    mean, lo, hi = bootstrap_ci(d)
    return {"per_seed": d.tolist(), "mean": mean, "ci95": [lo, hi], "wilcoxon_p": wilcoxon_signed_rank(d)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", default=str(REPO / "runs" / "bench_imported"))
    ap.add_argument("--arm", action="append", default=[], metavar="NAME=MODEL", help="another model to fine-tune")
    ap.add_argument("--result", default=str(RESULT), help="the json to write (default: %(default)s)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    out = Path(args.out)
    cfg = load_config(REPO / "configs" / "demo.yaml", DemoConfig)
    ac = cfg.adapt.model_copy(update={"finetune": cfg.adapt.finetune.model_copy(update={"logger": "none"})})
    native = REPO / "datasets" / "backbones" / "gala-train.pt"
    pkg = out / "gala-train.bioimageio.zip"
    arms = {"package": pkg, "native": native, **{a.split("=", 1)[0]: Path(a.split("=", 1)[1]) for a in args.arm}}
    steps = Steps(1 + len(arms) + args.seeds * (1 + 3 * len(arms)))
    steps.run("export the demo's gala-train backbone as a bioimage.io package", pkg,
              lambda: export_package(native, out / "gala-train.bioimageio", zip_too=True))
    vol = open_volume(cfg.target)
    _, holdout = candidate_pool(vol.shape, ac.active.candidate_size, holdout_fraction=ac.active.holdout_fraction,
                                holdout_axis=ac.active.holdout_axis)
    held = HeldOut.read(vol, holdout)
    bb = load_backbone(pkg)
    norms = {arm: load_backbone(m).normalizer_for(vol.raw) for arm, m in arms.items()}
    zs = {arm: out / f"zero_shot_{arm}.json" for arm in arms}
    for arm, model in arms.items():
        steps.run(f"zero-shot {arm} on the held-out slab", zs[arm],
                  partial(evaluate_heldout, model, held, norms[arm], zs[arm]))
    seeds = list(range(args.seeds))
    for seed in seeds:
        d = out / f"seed{seed}"
        steps.run(f"seed {seed}: {cfg.n} samples picked by the package", d / "samples.json",
                  lambda d=d, seed=seed: write_samples(select_samples(vol, bb.net, norms["package"], ac.active, cfg.n,
                                                                      seed=seed, model_voxel_size=bb.voxel_size),
                                                       d, vol, export=False))
        rec = load_samples(d / "samples.json")
        labels = sample_labels(vol, rec["boxes"], [s["name"] for s in rec["samples"]])
        for arm, init in arms.items():
            a = d / arm
            steps.run(f"seed {seed}: fine-tune from the {arm} ({ac.finetune.max_steps} steps)", a / "model.pt",
                      partial(finetune, vol, rec["boxes"], labels, init, ac, a, seed=seed, normalizer=norms[arm],
                              progress=False))
            steps.run(f"seed {seed}: evaluate the {arm} arm", a / "eval.json",
                      partial(evaluate_heldout, a / "model.pt", held, norms[arm], a / "eval.json"))
            fixed = a / "at_zero_shot_threshold" / "eval.json"  # the weights alone: the imported model's threshold
            steps.run(f"seed {seed}: evaluate the {arm} arm at the zero-shot threshold", fixed,
                      partial(evaluate_heldout, a / "model.pt", held, norms[arm], fixed,
                              threshold=json.loads(zs[arm].read_text())["threshold"]))
    evals = {arm: [json.loads((out / f"seed{s}" / arm / "eval.json").read_text()) for s in seeds] for arm in arms}
    at_zs = {arm: [json.loads((out / f"seed{s}" / arm / "at_zero_shot_threshold" / "eval.json").read_text())["vi"]
                   for s in seeds] for arm in arms}
    zero = {arm: json.loads(p.read_text()) for arm, p in zs.items()}
    vi = {arm: [e["vi"] for e in evals[arm]] for arm in evals}
    result = {
        "what": "fine-tuning imported models on neuroproof vs their zero-shot VI: the demo's gala-train backbone "
                "exported as a bioimage.io package (and, beside it, the native checkpoint on the same samples)",
        "target": cfg.target, "held_out": [[s.start, s.stop] for s in holdout], "n": cfg.n,
        "steps": ac.finetune.max_steps, "strategy": ac.active.strategy, "samples_picked_by": "package",
        "seeds": seeds, "models": {arm: str(m) for arm, m in arms.items()},
        "zero_shot": {k: {m: v[m] for m in ("vi", "vi_split", "vi_merge", "threshold")} for k, v in zero.items()},
        "arms": {arm: {**{m: [e[m] for e in evals[arm]] for m in ("vi", "vi_split", "vi_merge", "threshold")},
                       "mean_sd": mean_sd(vi[arm]), "vi_at_zero_shot_threshold": at_zs[arm]} for arm in evals},
        "finetuned_minus_zero_shot": {arm: paired(vi[arm], [zero[arm]["vi"]] * len(seeds)) for arm in arms},
        "finetuned_minus_zero_shot_at_its_threshold": {arm: paired(at_zs[arm], [zero[arm]["vi"]] * len(seeds))
                                                       for arm in arms},
        "finetuned_package_minus_finetuned_native": paired(vi["package"], vi["native"]),
        "machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "note": "2-core VM shared with a long background job, "
                                                                "nice -n 15"},
        "code_version": code_version(), "seconds": steps.seconds, "date": time.strftime("%Y-%m-%d")}
    write_json(args.result, result)
    for arm in arms:
        m, sd = mean_sd(vi[arm])
        r = result["finetuned_minus_zero_shot"][arm]
        print(f"{arm}: zero-shot {zero[arm]['vi']:.3f}; fine-tuned {m:.3f} ± {sd:.3f} "
              f"({', '.join(f'{v:.3f}' for v in vi[arm])}); minus zero-shot {r['mean']:+.3f} "
              f"[{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}], Wilcoxon p {r['wilcoxon_p']:.3f}")
        r = result["finetuned_minus_zero_shot_at_its_threshold"][arm]
        print(f"  at the zero-shot threshold {zero[arm]['threshold']:g}: fine-tuned "
              f"{', '.join(f'{v:.3f}' for v in at_zs[arm])}; minus zero-shot {r['mean']:+.3f} "
              f"[{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}]")
    r = result["finetuned_package_minus_finetuned_native"]
    print(f"package - native, fine-tuned: {r['mean']:+.3f} [{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}]")
    print(f"wrote {args.result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
