"""``neuroadda transfer-study``: which source really transfers best to each target.

For every target, budget n and seed one sample set is drawn *without any source's model* (random candidates,
or k-center on raw-intensity features) and shared by every arm: each source's backbone and scratch are
fine-tuned on it with one schedule, and every arm is scored on the target's held-out region (VI, bits). Each
source's zero-shot VI and each estimator's scores are recorded too. The study is a list of elements, each
writing one file atomically; an element whose file exists is skipped, so a killed study started again
continues, and the same elements run as SLURM array tasks or on local workers (:mod:`.study_submit`).

Layout under ``out``: ``backbones/<source>/model.pt`` (default), ``<target>/scratch_init.pt``,
``<target>/zero_shot/<source>.json``, ``<target>/estimators/<name>.json``,
``<target>/n<n>/seed<s>/samples.json`` and ``<target>/n<n>/seed<s>/<arm>/{model.pt,eval.json}``.

The active-learning factor (``active_learning:``): for every target the source the factor's estimator ranks
first; per strategy x budget x seed an ``active`` element fine-tunes it on the strategy's picks (``random``: the
shared set) by delegating to the ``finetune`` element, recorded under ``<target>/active/n<n>/seed<s>/``;
``ceiling`` elements train from scratch on every label outside the held-out region (``<target>/ceiling/``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from neuroadda.config import (
    AdaptConfig,
    PretrainConfig,
    StudyTarget,
    TransferStudyConfig,
    default_config_dir,
    load_config,
)
from neuroadda.data.regions import box_from_json, box_to_json
from neuroadda.errors import InputError
from neuroadda.report import write_json
from neuroadda.selection.estimators import needs_labels

SCRATCH = "scratch"
RANDOM = "random"  # the active-learning factor's strategy that uses the shared, model-free picks


@dataclass(frozen=True)
class Element:
    """One unit of work: ``kind`` in pretrain | estimator | zero-shot | samples | finetune | active | ceiling."""

    kind: str
    target: str | None = None
    source: str | None = None  # the arm: a source name or "scratch"
    n: int | None = None
    seed: int | None = None
    factor: str = "shared"  # "shared" sample sets (model-free), or a strategy: picks by the source's backbone

    def label(self) -> str:
        parts = [self.kind, self.target, self.source, f"n={self.n}" if self.n else None,
                 f"seed {self.seed}" if self.seed is not None else None,
                 self.factor if self.factor != "shared" else None]
        return " ".join(str(p) for p in parts if p is not None)


def safe(name: str) -> str:
    from neuroadda.selection.select import safe_name

    return safe_name(name)


def sources_for(cfg: TransferStudyConfig, target: str) -> list[str]:
    return [s for s in cfg.sources if s != target and s not in cfg.exclude.get(target, [])]


def backbone_path(cfg: TransferStudyConfig, source: str) -> Path:
    """The source's model in the backbones folder: any kind ``resolve_backbones`` finds (a checkpoint, a
    bioimage.io package, TorchScript + sidecar), else ``<source>/model.pt`` (what pretraining writes)."""
    from neuroadda.selection.select import resolve_backbones

    found = resolve_backbones([source], [], cfg.backbones)[source]
    return found or Path(cfg.backbones) / safe(source) / "model.pt"


def seed_dir(cfg: TransferStudyConfig, target: str, n: int, seed: int, factor: str = "shared") -> Path:
    d = Path(cfg.out) / safe(target) / f"n{n}" / f"seed{seed}"
    return d if factor == "shared" else d / factor


def output(cfg: TransferStudyConfig, el: Element) -> Path:
    """The file whose existence marks ``el`` as done."""
    t = Path(cfg.out) / safe(el.target) if el.target else None
    if el.kind == "pretrain":
        return backbone_path(cfg, el.source)
    if el.kind == "estimator":
        if el.n is not None:  # label-using estimators: per (target, n, seed), on that seed's shared samples
            return seed_dir(cfg, el.target, el.n, el.seed) / "estimators" / f"{el.source}.json"
        return t / "estimators" / f"{el.source}.json"
    if el.kind == "zero-shot":
        return t / "zero_shot" / f"{safe(el.source)}.json"
    if el.kind == "samples":
        return seed_dir(cfg, el.target, el.n, el.seed, el.factor if el.factor == "shared" else
                        f"{el.factor}-{safe(el.source)}") / "samples.json"
    if el.kind == "ceiling":
        return t / "ceiling" / f"seed{el.seed}" / "eval.json"
    if el.kind == "active":
        return t / "active" / f"n{el.n}" / f"seed{el.seed}" / f"{el.factor}.json"
    if el.kind == "finetune":
        sd = seed_dir(cfg, el.target, el.n, el.seed,
                      el.factor if el.factor == "shared" else f"{el.factor}-{safe(el.source)}")
        return sd / safe(el.source) / "eval.json"
    raise ValueError(f"unknown element kind {el.kind!r}")


def check(cfg: TransferStudyConfig) -> None:
    """Refuse a study that cannot run, in one line, before any work: unknown datasets, targets without labels,
    unknown estimators, targets with fewer candidates than the largest budget."""
    from neuroadda.data.cards import get_card
    from neuroadda.selection.estimators import ESTIMATORS, known

    for name in cfg.sources + [t.name for t in cfg.targets]:
        get_card(name)  # InputError naming close names
    for t in cfg.targets:
        if get_card(t.name).labels is None:
            raise InputError(f"target '{t.name}' has no labels: the study scores held-out VI against them")
    bad = [e for e in cfg.estimators if not known(e)]
    if bad:
        raise InputError(f"unknown estimator(s) {', '.join(bad)}; known: {', '.join(ESTIMATORS)}")
    for t in cfg.targets:
        cands = target_data(cfg, t.name)[2]
        if len(cands) < max(cfg.budgets):
            raise InputError(f"target '{t.name}': only {len(cands)} candidates of "
                             f"{tuple(c.stop - c.start for c in cands[0])} voxels outside the held-out region, "
                             f"fewer than n = {max(cfg.budgets)}; give it a smaller candidate_size")


def plan(cfg: TransferStudyConfig) -> list[Element]:
    """Every element, in an order that respects dependencies (backbones first, aggregation is separate)."""
    els = [Element("pretrain", source=s) for s in cfg.sources]
    for t in cfg.targets:
        srcs = sources_for(cfg, t.name)
        els += [Element("estimator", t.name, name) for name in cfg.estimators if not needs_labels(name)]
        els += [Element("zero-shot", t.name, s) for s in srcs]
    for n in cfg.budgets:
        for seed in range(cfg.seeds):  # seeds outermost: every arm gets its first seeds early
            for t in cfg.targets:
                els.append(Element("samples", t.name, None, n, seed))
                els += [Element("estimator", t.name, name, n, seed) for name in cfg.estimators if needs_labels(name)]
                els += [Element("finetune", t.name, a, n, seed) for a in sources_for(cfg, t.name) + [SCRATCH]]
                if cfg.median_uncertainty:
                    for s in sources_for(cfg, t.name):
                        els += [Element("samples", t.name, s, n, seed, "median-uncertainty"),
                                Element("finetune", t.name, s, n, seed, "median-uncertainty")]
    if cfg.active_learning is not None:
        seen = set(els)
        els += [el for el in plan_active_learning(cfg) if el not in seen]
    return els


def study_target(cfg: TransferStudyConfig, name: str) -> StudyTarget:
    return next(t for t in cfg.targets if t.name == name)


def adapt_config(cfg: TransferStudyConfig) -> AdaptConfig:
    ac = load_config(cfg.adapt_config or default_config_dir() / "adapt.yaml", AdaptConfig)
    if cfg.finetune_steps is not None:
        ac = ac.model_copy(update={"finetune": ac.finetune.model_copy(update={"max_steps": cfg.finetune_steps})})
    return ac


@lru_cache(maxsize=8)
def _target(cfg_json: str, name: str):
    """(volume at the study's voxel size, normaliser, candidates, holdout) of one target (cached per process)."""
    from neuroadda.active.pool import candidate_pool
    from neuroadda.data.normalize import fit_normalizer
    from neuroadda.data.volume import open_volume

    cfg = TransferStudyConfig.model_validate_json(cfg_json)
    t, active = study_target(cfg, name), adapt_config(cfg).active
    vol = open_volume(name, require_labels=True, resample_to=t.voxel_size)
    cands, holdout = candidate_pool(vol.shape, t.candidate_size or active.candidate_size,
                                    holdout_fraction=t.holdout_fraction or active.holdout_fraction)
    return vol, fit_normalizer(vol.raw, "zscore"), cands, holdout


def target_data(cfg: TransferStudyConfig, name: str):
    return _target(cfg.model_dump_json(), name)


@lru_cache(maxsize=2)
def _held(cfg_json: str, name: str):
    from neuroadda.workflows.adapt import HeldOut

    cfg = TransferStudyConfig.model_validate_json(cfg_json)
    vol, _, _, holdout = target_data(cfg, name)
    return HeldOut.read(vol, holdout)


def held_out(cfg: TransferStudyConfig, name: str):
    """The target's held-out region, read once per process."""
    return _held(cfg.model_dump_json(), name)


def pretrain_config(cfg: TransferStudyConfig, source: str) -> PretrainConfig:
    path = cfg.pretrain_configs.get(source) or cfg.pretrain_config or default_config_dir() / "pretrain.yaml"
    return load_config(path, PretrainConfig, overrides={"train.logger": "none"})


def run_element(cfg: TransferStudyConfig, el: Element, *, progress: bool = False) -> Path:
    """Do ``el`` (unless its output exists) and return its output file."""
    out = output(cfg, el)
    if out.is_file():
        return out
    if el.kind == "pretrain":
        from neuroadda.workflows.pretrain import pretrain

        pretrain(el.source, pretrain_config(cfg, el.source), out.parent, progress=progress)
    elif el.kind == "estimator":
        from neuroadda.selection.estimators import GATE, Context, estimate, gated

        labelled = ()
        if el.n is not None:
            vol = target_data(cfg, el.target)[0]
            rec = json.loads(run_element(cfg, Element("samples", el.target, None, el.n, el.seed)).read_text())
            labelled = tuple((vol.raw.read(b), vol.labels.read(b)) for b in map(box_from_json, rec["boxes"]))
        if el.source.startswith(GATE):  # compat+NAME from the stored NAME and compat results (no recomputation)
            base, comp = (json.loads(run_element(cfg, Element("estimator", el.target, name, el.n, el.seed)
                                                 if needs_labels(name) else Element("estimator", el.target, name),
                                                 progress=progress).read_text())
                          for name in (el.source[len(GATE):], "compat"))
            write_json(out, {**base, "estimator": el.source, "ungated": base["scores"],
                             "scores": gated(comp["scores"], base["scores"]), "compat": comp["detail"]})
            return out
        ctx = Context(el.target, {s: backbone_path(cfg, s) for s in sources_for(cfg, el.target)},
                      voxel_size=study_target(cfg, el.target).voxel_size, labelled=labelled,
                      labels_kind=target_data(cfg, el.target)[0].labels_kind)
        write_json(out, estimate(el.source, ctx, progress=progress))
    elif el.kind == "zero-shot":
        from neuroadda.workflows.adapt import evaluate_heldout

        evaluate_heldout(backbone_path(cfg, el.source), held_out(cfg, el.target), target_data(cfg, el.target)[1], out)
    elif el.kind == "samples":
        write_json(out, draw_samples(cfg, el, progress=progress))
    elif el.kind == "finetune":
        _finetune(cfg, el, out, progress=progress)
    elif el.kind in ("active", "ceiling"):
        (run_active if el.kind == "active" else run_ceiling)(cfg, el, out, progress=progress)
    return out


def draw_samples(cfg: TransferStudyConfig, el: Element, *, progress: bool = False) -> dict:
    """The sample set of (target, n, seed): chosen without any source model for the shared factor, by the
    source's backbone with the factor's strategy (median-uncertainty, max-uncertainty, k-center, ...) else."""
    from neuroadda.active.samples import select_samples
    from neuroadda.active.strategies import select

    vol, norm, cands, holdout = target_data(cfg, el.target)
    if el.n > len(cands):
        raise InputError(f"target {el.target}: {len(cands)} candidates, fewer than n = {el.n} "
                         "(give the target a smaller candidate_size)")
    if el.factor != "shared":  # a strategy (median-uncertainty, k-center, ...) with the source's backbone
        from neuroadda.models.checkpoint import load_backbone

        active = adapt_config(cfg).active.model_copy(update={
            "candidate_size": tuple(cands[0][i].stop - cands[0][i].start for i in range(3)),
            "holdout_fraction": (study_target(cfg, el.target).holdout_fraction
                                 or adapt_config(cfg).active.holdout_fraction),
            "strategy": el.factor})
        bb = load_backbone(backbone_path(cfg, el.source))
        rec = select_samples(vol, bb.net, norm, active, el.n, seed=el.seed, progress=progress,
                             model_voxel_size=bb.voxel_size)
        boxes = [s["box"] for s in rec["samples"]]
    elif cfg.sampling == "random":
        boxes = [box_to_json(cands[i]) for i in select("random", np.zeros(len(cands)), el.n, seed=el.seed)]
    else:
        feats = np.stack([_intensity_features(vol.raw.read(c), norm) for c in cands])
        boxes = [box_to_json(cands[i]) for i in select("k-center", np.zeros(len(cands)), el.n, embeddings=feats,
                                                     seed=el.seed)]
    return {"target": el.target, "n": el.n, "seed": el.seed, "factor": el.factor, "source": el.source,
            "sampling": cfg.sampling if el.factor == "shared" else el.factor,
            "voxel_size_nm": list(vol.voxel_size), "holdout": box_to_json(holdout), "boxes": boxes}


def _intensity_features(raw: np.ndarray, norm) -> np.ndarray:
    """A fixed, model-free description of a candidate: normalised intensity mean, sd, and a 16-bin histogram."""
    x = norm(raw).ravel()
    hist = np.histogram(np.clip(x, -3, 3), bins=16, range=(-3, 3))[0] / x.size
    return np.concatenate([[x.mean(), x.std()], hist])


def scratch_path(cfg: TransferStudyConfig, target: str) -> Path:
    return Path(cfg.out) / safe(target) / "scratch_init.pt"


def scratch_init(cfg: TransferStudyConfig, target: str) -> Path:
    """A freshly initialised network for the scratch arm: the default pretraining architecture and patch at the
    target's voxel size (so scratch is not handicapped by a source's strides)."""
    import torch

    from neuroadda.models.checkpoint import save_backbone
    from neuroadda.models.unet import build_unet

    path = scratch_path(cfg, target)
    if path.is_file():
        return path
    vol = target_data(cfg, target)[0]
    pc = pretrain_config(cfg, target)
    with torch.random.fork_rng(devices=[]):  # the same initial weights wherever (and however often) it is made
        torch.manual_seed(pc.seed)
        net = build_unet(pc.model, vol.voxel_size, aux_offsets=pc.data.aux_offsets)
    return save_backbone(path, net, {"kind": "scratch-template", "source": None, "voxel_size": list(vol.voxel_size),
                                     "patch_size": list(pc.data.patch_size), "normalization": pc.data.normalization,
                                     "config": pc.model_dump(mode="json")})


def _finetune(cfg: TransferStudyConfig, el: Element, out: Path, *, progress: bool) -> None:
    from neuroadda.active.annotations import sample_labels
    from neuroadda.workflows.adapt import evaluate_heldout
    from neuroadda.workflows.finetune import finetune

    vol, norm, _, _ = target_data(cfg, el.target)
    samples = Element("samples", el.target, el.source if el.factor != "shared" else None, el.n, el.seed, el.factor)
    rec = json.loads(run_element(cfg, samples).read_text())  # drawn here when missing (deterministic per seed)
    boxes = [box_from_json(b) for b in rec["boxes"]]
    labels = sample_labels(vol, boxes, [f"sample_{k:02d}" for k in range(len(boxes))])
    scratch = el.source == SCRATCH
    init = scratch_init(cfg, el.target) if scratch else backbone_path(cfg, el.source)
    model = finetune(vol, boxes, labels, init, adapt_config(cfg), out.parent, scratch=scratch, seed=el.seed,
                     normalizer=norm, progress=progress)
    evaluate_heldout(model, held_out(cfg, el.target), norm, out)


def run(cfg: TransferStudyConfig, *, progress: bool = False, echo=print) -> list[Element]:
    """Run every element not yet done, one after another; returns the elements that ran."""
    todo = plan(cfg)
    ran = []
    for i, el in enumerate(todo, 1):
        head = f"[{i}/{len(todo)}] {el.label()}"
        if output(cfg, el).is_file():
            continue
        echo(f"{head} ...", flush=True)
        run_element(cfg, el, progress=progress)
        ran.append(el)
    return ran

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
