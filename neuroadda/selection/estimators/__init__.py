"""Source-selection estimators behind one interface.

An estimator maps a :class:`Context` (the target, one backbone per candidate source, settings, and optionally a
few annotated target samples) to one score per source, **lower = better transfer expected**, with whatever
uncertainty and flags it can give. ``estimate(name, ctx)`` returns ``{"estimator", "scores": {source: float},
"detail": {source: {...}}, "settings": {...}}``. Estimators are pure functions of their inputs (seeded).

``compat+NAME`` is the gated combination: sources that fail the task-compatibility check (``compat``) are
ranked after every compatible one, each group ordered by NAME.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from neuroadda.selection.estimators.distance import mmd2_common_estimator, mmd2_estimator
from neuroadda.selection.estimators.labelled import logme_estimator, zero_shot_vi_estimator
from neuroadda.selection.estimators.prediction import (
    compat_estimator,
    consistency_estimator,
    consistency_input_estimator,
    entropy_estimator,
)


@dataclass(frozen=True)
class Context:
    """What an estimator may look at.

    target: dataset name or PATH[:KEY] (raw is enough); voxel_size: (z, y, x) nm of the grid the target is
    used at before it meets each backbone (None = as stored; the study's grid, or the annotated samples' grid);
    stored_voxel_size: the target's own voxel size when its card or file does not say it; backbones: {source:
    checkpoint}; labelled: annotated target samples ((raw, gt), ...) on the ``voxel_size`` grid for the
    estimators that need labels (empty before annotation), with ``labels_kind`` saying how they are scored.
    Every estimator lets each backbone see the target where the two meet (:mod:`neuroadda.data.grid`)."""

    target: str
    backbones: dict[str, Path]
    voxel_size: tuple[float, float, float] | None = None
    stored_voxel_size: tuple[float, float, float] | None = None
    n_patches: int = 256
    seed: int = 0
    permutations: int = 200
    labelled: tuple = field(default=(), compare=False)
    labels_kind: str = "3d_instance"
    pooling: str = "mean"  # mmd2 only: global pooling of the bottleneck
    space: str = "standardize"  # mmd2 only: per-backbone normalisation of the embeddings

    def target_volume(self):
        """The target (raw only) on the ``voxel_size`` grid, lazily."""
        from neuroadda.data.volume import open_volume

        return open_volume(self.target, labels_key=None, voxel_size=self.stored_voxel_size,
                           resample_to=self.voxel_size)


ESTIMATORS: dict[str, Callable[[Context, bool], dict]] = {
    "mmd2": mmd2_estimator,
    "mmd2-common": mmd2_common_estimator,
    "compat": compat_estimator,
    "entropy": entropy_estimator,
    "consistency": consistency_estimator,
    "consistency-input": consistency_input_estimator,
    "zero-shot-vi": zero_shot_vi_estimator,
    "logme": logme_estimator,
}
NEEDS_LABELS = ("zero-shot-vi", "logme")
GATE = "compat+"


def known(name: str) -> bool:
    return name in ESTIMATORS or (name.startswith(GATE) and name[len(GATE):] in ESTIMATORS)


def needs_labels(name: str) -> bool:
    return name.removeprefix(GATE) in NEEDS_LABELS


def gated(compat: dict[str, float], scores: dict[str, float]) -> dict[str, float]:
    """Scores with every incompatible source (compat 1) placed after every compatible one, order kept within."""
    finite = [v for v in scores.values() if v == v]
    span = (max(finite) - min(finite) + 1.0) if finite else 1.0
    return {s: v + span * compat.get(s, 0.0) for s, v in scores.items()}


def estimate(name: str, ctx: Context, *, progress: bool = False) -> dict:
    """Scores of estimator ``name`` (or ``compat+NAME``) for every source of ``ctx`` (lower = better)."""
    from neuroadda.errors import InputError

    if not known(name):
        raise InputError(f"unknown estimator '{name}'; known: {', '.join(ESTIMATORS)} (and compat+NAME)")
    if name.startswith(GATE):
        base = estimate(name[len(GATE):], ctx, progress=progress)
        comp = ESTIMATORS["compat"](ctx, progress)
        return {**base, "estimator": name, "ungated": base["scores"], "scores": gated(comp["scores"], base["scores"]),
                "compat": comp["detail"]}
    return {"estimator": name, **ESTIMATORS[name](ctx, progress)}
