"""Source-selection estimators behind one interface.

An estimator maps a :class:`Context` (the target, one backbone per candidate source, settings, and optionally a
few annotated target samples) to one score per source, **lower = better transfer expected**, with whatever
uncertainty and flags it can give. ``estimate(name, ctx)`` returns ``{"estimator", "scores": {source: float},
"detail": {source: {...}}, "settings": {...}}``. Estimators are pure functions of their inputs (seeded).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Context:
    """What an estimator may look at.

    target: dataset name or PATH[:KEY] (raw is enough); voxel_size: (z, y, x) nm the target is used at (None =
    as stored); backbones: {source: checkpoint}; labelled: annotated target samples ((raw, gt), ...) for the
    estimators that need labels (empty before annotation)."""

    target: str
    backbones: dict[str, Path]
    voxel_size: tuple[float, float, float] | None = None
    n_patches: int = 256
    seed: int = 0
    permutations: int = 200
    labelled: tuple = field(default=(), compare=False)


def _mmd2(ctx: Context, progress: bool) -> dict:
    from neuroadda.selection.select import EmbedSettings, rank_sources

    sel = rank_sources(ctx.target, ctx.backbones, EmbedSettings(n_patches=ctx.n_patches, seed=ctx.seed,
                                                                voxel_size=ctx.voxel_size),
                       permutations=ctx.permutations, progress=progress)
    return {"scores": {r["source"]: r["mmd2"] for r in sel["ranking"]},
            "detail": {r["source"]: {k: r[k] for k in ("ci_low", "ci_high", "p_value", "target_self_mmd2")}
                       for r in sel["ranking"]},
            "settings": sel["settings"]}


ESTIMATORS: dict[str, Callable[[Context, bool], dict]] = {"mmd2": _mmd2}


def estimate(name: str, ctx: Context, *, progress: bool = False) -> dict:
    """Scores of estimator ``name`` for every source of ``ctx`` (lower = better)."""
    from neuroadda.errors import InputError

    if name not in ESTIMATORS:
        raise InputError(f"unknown estimator '{name}'; known: {', '.join(ESTIMATORS)}")
    return {"estimator": name, **ESTIMATORS[name](ctx, progress)}
