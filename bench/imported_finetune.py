"""Fine-tuning an imported bioimage.io package beats its zero-shot VI (and matches fine-tuning our own checkpoint).

The demo's gala-train backbone (``datasets/backbones/gala-train.pt``) is exported with ``neuroadda export`` and
imported back as a bioimage.io package. On the neuroproof target, as the demo does (``configs/demo.yaml``: the
held-out slab z 150-250, 4 samples of 16x96x96 picked by median uncertainty, oracle labels, 300 fine-tuning
steps), for each seed the package picks the samples and the same samples fine-tune two arms: from the package
and from the native checkpoint. Every arm and the zero-shot package are scored on the held-out slab (VI, bits).

    nice -n 15 python bench/imported_finetune.py [--seeds 5] [--out runs/bench_imported]

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
    args = ap.parse_args()
    torch.set_num_threads(2)
    out = Path(args.out)
    cfg = load_config(REPO / "configs" / "demo.yaml", DemoConfig)
    ac = cfg.adapt.model_copy(update={"finetune": cfg.adapt.finetune.model_copy(update={"logger": "none"})})
    native = REPO / "datasets" / "backbones" / "gala-train.pt"
    pkg = out / "gala-train.bioimageio.zip"
    steps = Steps(2 + 1 + args.seeds * 5)
    steps.run("export the demo's gala-train backbone as a bioimage.io package", pkg,
              lambda: export_package(native, out / "gala-train.bioimageio", zip_too=True))
    vol = open_volume(cfg.target)
    _, holdout = candidate_pool(vol.shape, ac.active.candidate_size, holdout_fraction=ac.active.holdout_fraction,
                                holdout_axis=ac.active.holdout_axis)
    held = HeldOut.read(vol, holdout)
    bb = load_backbone(pkg)
    norm = bb.normalizer_for(vol.raw)
    zs = {name: out / f"zero_shot_{name}.json" for name in ("package", "native")}
    steps.run("zero-shot package on the held-out slab", zs["package"],
              lambda: evaluate_heldout(pkg, held, norm, zs["package"]))
    steps.run("zero-shot native on the held-out slab", zs["native"],
              lambda: evaluate_heldout(native, held, norm, zs["native"]))
    seeds = list(range(args.seeds))
    for seed in seeds:
        d = out / f"seed{seed}"
        steps.run(f"seed {seed}: {cfg.n} samples picked by the package", d / "samples.json",
                  lambda d=d, seed=seed: write_samples(select_samples(vol, bb.net, norm, ac.active, cfg.n, seed=seed),
                                                       d, vol, export=False))
        rec = load_samples(d / "samples.json")
        labels = sample_labels(vol, rec["boxes"], [s["name"] for s in rec["samples"]])
        for arm, init in (("package", pkg), ("native", native)):
            a = d / arm
            steps.run(f"seed {seed}: fine-tune from the {arm} ({ac.finetune.max_steps} steps)", a / "model.pt",
                      partial(finetune, vol, rec["boxes"], labels, init, ac, a, seed=seed, normalizer=norm,
                              progress=False))
            steps.run(f"seed {seed}: evaluate the {arm} arm", a / "eval.json",
                      partial(evaluate_heldout, a / "model.pt", held, norm, a / "eval.json"))
    evals = {arm: [json.loads((out / f"seed{s}" / arm / "eval.json").read_text()) for s in seeds]
             for arm in ("package", "native")}
    zero = {k: json.loads(p.read_text()) for k, p in zs.items()}
    vi = {arm: [e["vi"] for e in evals[arm]] for arm in evals}
    result = {
        "what": "fine-tuning an imported bioimage.io package (the demo's gala-train backbone exported) on neuroproof "
                "vs its zero-shot VI, and vs fine-tuning the native checkpoint on the same samples",
        "target": cfg.target, "held_out": [[s.start, s.stop] for s in holdout], "n": cfg.n,
        "steps": ac.finetune.max_steps, "strategy": ac.active.strategy, "seeds": seeds,
        "zero_shot": {k: {m: v[m] for m in ("vi", "vi_split", "vi_merge", "threshold")} for k, v in zero.items()},
        "arms": {arm: {**{m: [e[m] for e in evals[arm]] for m in ("vi", "vi_split", "vi_merge", "threshold")},
                       "mean_sd": mean_sd(vi[arm])} for arm in evals},
        "finetuned_package_minus_zero_shot_package": paired(vi["package"], [zero["package"]["vi"]] * len(seeds)),
        "finetuned_package_minus_finetuned_native": paired(vi["package"], vi["native"]),
        "machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "note": "2-core VM shared with a long background job, "
                                                                "nice -n 15"},
        "code_version": code_version(), "seconds": steps.seconds, "date": time.strftime("%Y-%m-%d")}
    write_json(RESULT, result)
    print(f"zero-shot package VI {zero['package']['vi']:.3f} (native {zero['native']['vi']:.3f})")
    for arm in evals:
        m, sd = mean_sd(vi[arm])
        print(f"fine-tuned from the {arm}: {m:.3f} ± {sd:.3f} ({', '.join(f'{v:.3f}' for v in vi[arm])})")
    for key in ("finetuned_package_minus_zero_shot_package", "finetuned_package_minus_finetuned_native"):
        r = result[key]
        print(f"{key}: {r['mean']:+.3f} [{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}], Wilcoxon p {r['wilcoxon_p']:.3f}")
    print(f"wrote {RESULT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
