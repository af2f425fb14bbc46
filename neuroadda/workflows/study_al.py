"""The active-learning factor of the transfer study: which samples to annotate, and how many.

For every target the source is the one the default selector (``active_learning.source_estimator``) ranks first
among the study's sources. For each strategy x budget n x seed an ``active`` element fine-tunes that source on
the n samples the strategy picks (``random``: the study's shared, model-free sample set; the others: picks by
the source's backbone, scored where it meets the target) with the study's one schedule, and scores the held-out
region; ``scratch`` is trained on the random picks at every budget. ``ceiling`` elements train the default
pretraining recipe from scratch on every label of the target outside its held-out region (the fully
supervised model n samples are compared with). An ``active`` element delegates to the study's own
``finetune`` element for its (target, source, n, seed, picks), so work the transfer study did is reused, and
records the result under ``<target>/active/n<n>/seed<s>/<strategy>.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from neuroadda.config import TransferStudyConfig
from neuroadda.report import write_json
from neuroadda.workflows.study import SCRATCH, Element, run_element

RANDOM = "random"


def plan_active_learning(cfg: TransferStudyConfig) -> list[Element]:
    """The factor's elements, seeds outermost within each budget (every arm gets its first seeds early)."""
    al = cfg.active_learning
    els = []
    for n in al.budgets:
        for seed in range(al.seeds):
            for t in cfg.targets:
                els += [Element("active", t.name, None, n, seed, strategy) for strategy in al.strategies]
                els.append(Element("finetune", t.name, SCRATCH, n, seed))  # on the random (shared) picks
    els += [Element("ceiling", t.name, None, None, seed) for t in cfg.targets for seed in range(al.ceiling_seeds)]
    return els


def al_source(cfg: TransferStudyConfig, target: str) -> str:
    """The source ``active_learning.source_estimator`` ranks first for ``target`` (lowest score; ties by name)."""
    scores = json.loads(run_element(cfg, Element("estimator", target, cfg.active_learning.source_estimator))
                        .read_text())["scores"]
    return min(sorted(scores), key=lambda s: scores[s])


def run_active(cfg: TransferStudyConfig, el: Element, out: Path, *, progress: bool = False) -> None:
    """Fine-tune the target's selected source on the strategy's n picks (the study's finetune element) and
    record its held-out scores with the source and strategy."""
    source = al_source(cfg, el.target)
    real = Element("finetune", el.target, source, el.n, el.seed, "shared" if el.factor == RANDOM else el.factor)
    done = run_element(cfg, real, progress=progress)
    write_json(out, {**json.loads(done.read_text()), "source": source, "strategy": el.factor, "n": el.n,
                     "seed": el.seed, "from": str(done), "source_estimator": cfg.active_learning.source_estimator})


def run_ceiling(cfg: TransferStudyConfig, el: Element, out: Path, *, progress: bool = False) -> None:
    """The default pretraining recipe, from scratch, on every label of the target outside its held-out region
    (its own validation slab inside that region picks the threshold), scored on the held-out region."""
    from neuroadda.data.regions import full_box
    from neuroadda.workflows.adapt import evaluate_heldout
    from neuroadda.workflows.pretrain import pretrain
    from neuroadda.workflows.study import held_out, pretrain_config, target_data

    vol, norm, _, holdout = target_data(cfg, el.target)
    axis = next(i for i, (h, n) in enumerate(zip(holdout, vol.shape)) if (h.start, h.stop) != (0, n))
    train = tuple(slice(0, h.start) if i == axis else s for i, (s, h) in enumerate(zip(full_box(vol.shape), holdout)))
    pc = pretrain_config(cfg, el.target)
    update = {"seed": el.seed, "data": pc.data.model_copy(update={"voxel_size": vol.voxel_size})}
    if cfg.active_learning.ceiling_steps:
        update["train"] = pc.train.model_copy(update={"max_steps": cfg.active_learning.ceiling_steps})
    pc = pc.model_copy(update=update)
    model = pretrain(el.target, pc, out.parent, region=train, progress=progress)
    evaluate_heldout(model, held_out(cfg, el.target), norm, out)
    rec = json.loads(out.read_text())
    write_json(out, {**rec, "training_region": [[s.start, s.stop] for s in train], "seed": el.seed,
                     "steps": pc.train.max_steps})
