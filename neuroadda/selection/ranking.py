"""One source ranking from one or several estimators, with compatibility flags and a noise verdict.

:func:`rank` runs the estimators of :mod:`neuroadda.selection.estimators` (the first one orders the sources,
the others are shown beside it), always adds the task-compatibility check's flags, and says whether the two
leaders can be told apart: by their confidence intervals when the estimator gives them, or, for the MMD²
estimators, by whether both are within the target's own half-vs-half variation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neuroadda.report import save_figure, write_json

DEFAULT_ESTIMATOR = "compat+mmd2-common"  # the transfer study's choice (docs/results/transfer_study; a test checks it)
DEFAULT_LABELLED_ESTIMATOR = "logme"  # the study's best label-using one
# The study's best label-free estimator that needs no source volume: the default's stand-in when a candidate's
# training data or encoder features are not at hand (an imported model, a checkpoint whose source is elsewhere).
NO_SOURCE_DATA_ESTIMATOR = "consistency"


def rank(target: str, backbones: dict[str, Path], estimators: list[str] | None = None, *, voxel_size=None,
         stored_voxel_size=None, n_patches: int = 256, seed: int = 0, permutations: int = 1000, labelled=(),
         labels_kind: str = "3d_instance", pooling: str = "mean", space: str = "standardize",
         progress: bool = False) -> dict:
    """The selection record: ``{"target", "estimator", "best", "ranking": [{"source", "rank", "score", "scores",
    "compatible", "flags", ...}], "cannot_distinguish", "noise", "estimators": {name: result}, "settings"}``.

    Rows keep each estimator's per-source detail; with ``mmd2`` first they also carry ``mmd2``, ``ci_low``,
    ``ci_high``, ``p_value`` and ``target_self_mmd2`` (as earlier versions wrote). ``voxel_size``: the grid the
    target is used at before it meets each backbone (None = as stored); ``stored_voxel_size``: the target's own
    voxel size where its card or file does not give it. ``settings.grid`` states the rule
    (:mod:`neuroadda.data.grid`) and ``settings.seen_at`` each backbone's meeting grid. When a candidate is an
    imported model, ``consistency`` is replaced by ``consistency-input`` for all; when the default cannot embed
    some candidate's training data, :data:`NO_SOURCE_DATA_ESTIMATOR` ranks all (``substituted`` says so)."""
    from neuroadda.data.grid import RULE
    from neuroadda.data.volume import seen_by
    from neuroadda.errors import InputError
    from neuroadda.models.checkpoint import load_backbone
    from neuroadda.selection.estimators import Context, estimate

    note = None
    if not estimators and not labelled:
        estimators, note = without_source_data([DEFAULT_ESTIMATOR], backbones)
    estimators = list(estimators or [DEFAULT_LABELLED_ESTIMATOR])
    estimators, swapped = input_space_only(estimators, backbones)
    if swapped and note:  # the stand-in itself had to go to input space
        note = {**note, "to": swapped["to"], "imported": swapped["imported"], "why": f"{note['why']}; {swapped['why']}"}
    else:
        note = swapped or note
    ctx = Context(target, dict(backbones), voxel_size=tuple(voxel_size) if voxel_size else None,
                  stored_voxel_size=tuple(stored_voxel_size) if stored_voxel_size else None, n_patches=n_patches,
                  seed=seed, permutations=permutations, labelled=tuple(labelled), labels_kind=labels_kind,
                  pooling=pooling, space=space)
    results = {name: estimate(name, ctx, progress=progress) for name in estimators}
    compat = results.get("compat") or estimate("compat", ctx)
    primary = results[estimators[0]]
    if not any(np.isfinite(v) for v in primary["scores"].values()):
        raise InputError(f"{estimators[0]} could score none of the candidates")
    base = primary.get("ungated", primary["scores"])
    order = sorted(primary["scores"], key=lambda s: (not np.isfinite(primary["scores"][s]), primary["scores"][s]))
    rows = []
    for i, s in enumerate(order, 1):
        c = compat["detail"][s]
        flags = [f"incompatible: {r}" for r in c["reasons"]] + c["warnings"]
        for res in results.values():
            flags += list((res["detail"].get(s) or {}).get("flags", []))
        row = {**(primary["detail"].get(s) or {}),  # the estimator's detail first: the row's own keys win
               "source": s, "rank": i, "score": float(base[s]), "ranked_by": float(primary["scores"][s]),
               "scores": {n: float(r["scores"][s]) for n, r in results.items()}, "compatible": c["compatible"],
               "flags": flags, "backbone": str(backbones[s])}
        if estimators[0] == "mmd2":
            row["mmd2"] = row["score"]
            row["within_target_variation"] = bool(row["mmd2"] <= row["target_self_mmd2"])
        rows.append(row)
    verdict, why = distinguishable(estimators[0], rows)
    tvol = ctx.target_volume()
    rec = {"target": target, "estimator": estimators[0], "best": rows[0]["source"], "ranking": rows,
           "cannot_distinguish": verdict is False, "noise": why, "estimators": results,
           "settings": {**primary.get("settings", {}), "estimators": estimators, "seed": seed,
                        "n_patches": n_patches, "permutations": permutations, "grid": RULE,
                        "target_voxel_size_nm": list(tvol.voxel_size),
                        "seen_at": {s: list(seen_by(tvol, load_backbone(p).voxel_size).voxel_size)
                                    for s, p in backbones.items()}}}
    if note:
        rec["substituted"] = note
    if estimators[0] == "mmd2":
        rec["best_significantly_closer"] = bool(len(rows) > 1 and rows[0]["ci_high"] < rows[1]["ci_low"])
    return rec


def without_source_data(estimators: list[str], backbones: dict[str, Path]) -> tuple[list[str], dict | None]:
    """The default ranks every candidate by its source volume in every backbone's space; when some candidate
    cannot be embedded so (no training data at hand, or an imported model without encoder features), EVERY
    candidate is ranked by :data:`NO_SOURCE_DATA_ESTIMATOR` instead. Returns (the estimators, None or
    {"from", "to", "why", "candidates"})."""
    from neuroadda.errors import InputError
    from neuroadda.selection.select import embeddable

    if estimators[0].removeprefix("compat+") not in ("mmd2", "mmd2-common"):
        return estimators, None
    try:
        left_out = embeddable(backbones)[2]
    except InputError:
        left_out = dict.fromkeys(backbones, "no training data or encoder features at hand")
    if not left_out:
        return estimators, None
    return [NO_SOURCE_DATA_ESTIMATOR], {
        "from": estimators[:1], "to": [NO_SOURCE_DATA_ESTIMATOR], "candidates": sorted(left_out),
        "why": f"the default {estimators[0]} compares every candidate's training data in every backbone's space, "
               f"and {'; '.join(f'{s}: {w}' for s, w in left_out.items())}; so every candidate is ranked by "
               f"{NO_SOURCE_DATA_ESTIMATOR} (the study's best estimator without source data)"}


def input_space_only(estimators: list[str], backbones: dict[str, Path]) -> tuple[list[str], dict | None]:
    """``consistency`` perturbs features inside our encoder; when any candidate's internals are unknown (an
    imported model) EVERY candidate, ours too, is ranked by ``consistency-input`` instead, so the scores stay
    comparable. Returns (the estimators to run, None or {"from", "to", "why", "imported"})."""
    from neuroadda.models.checkpoint import load_backbone

    wants = [n for n in estimators if n.removeprefix("compat+") == "consistency"]
    if not wants:
        return estimators, None
    opaque = [s for s, p in backbones.items() if load_backbone(p).net.dropout_layer is None]
    if not opaque:
        return estimators, None
    swap = {n: n + "-input" for n in wants}
    return [swap.get(n, n) for n in estimators], {
        "from": wants, "to": [swap[n] for n in wants], "imported": opaque,
        "why": f"{', '.join(opaque)} {'is an imported model' if len(opaque) == 1 else 'are imported models'} whose "
               "internals NeuroADDA cannot perturb, so every candidate, ours too, is ranked with input-space "
               "perturbations only (consistency-input) and the scores stay comparable"}


def distinguishable(estimator: str, rows: list[dict]) -> tuple[bool | None, str]:
    """(True / False / None = unknown, why) for the two leading rows."""
    if len(rows) < 2:
        return True, "one source"
    a, b = rows[0], rows[1]
    if "skipped" in b:
        return None, f"the runner-up was not scored ({b['skipped']})"
    if estimator.removeprefix("compat+") in ("mmd2", "mmd2-common"):
        floor_a = a.get("target_self_mmd2", 1.0)
        floor_b = b.get("target_self_mmd2", 1.0)
        if a["score"] <= floor_a and b["score"] <= floor_b:
            return False, "both leaders are within the target's own half-vs-half variation"
    if "ci_low" in a and "ci_high" in a and "ci_low" in b:
        if estimator.startswith("compat+") and a["compatible"] != b["compatible"]:
            return True, "the runner-up fails the compatibility check"  # gated: compatibility ranks first
        if a["ci_high"] >= b["ci_low"]:
            return False, f"the leaders' 95% intervals overlap ({a['ci_high']:.4g} >= {b['ci_low']:.4g})"
        return True, "the leader's 95% interval lies below the runner-up's"
    return None, f"{estimator} gives no uncertainty for its scores"


def verdict_line(rec: dict) -> str:
    best = rec["best"]
    if rec["cannot_distinguish"]:
        return (f"best source: {best}, but it cannot be distinguished from {rec['ranking'][1]['source']} "
                f"({rec['noise']})")
    return f"best source: {best} ({rec['noise']})"


def plot_ranking(rec: dict, path: Path) -> Path:
    """Horizontal bars of the ranking estimator's score (with 95% intervals when given), best at the top,
    incompatible sources hatched."""
    from neuroadda.data.io import short_name
    from neuroadda.report import pyplot

    plt = pyplot()
    rows = rec["ranking"][::-1]
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(rows) + 1.8), layout="constrained")
    y = np.arange(len(rows))
    vals = [r["score"] for r in rows]
    err = None
    if all("ci_low" in r for r in rows):
        err = np.clip([[r["score"] - r["ci_low"] for r in rows], [r["ci_high"] - r["score"] for r in rows]], 0, None)
    bars = ax.barh(y, vals, xerr=err, capsize=4,
                   color=["#d62728" if r["source"] == rec["best"] else "#7f7f7f" for r in rows])
    for bar, r in zip(bars, rows):
        if not r["compatible"]:
            bar.set_hatch("//")
    labels = [short_name(r["source"]) + (f"\n(p={r['p_value']:.3g})" if "p_value" in r else "") for r in rows]
    ax.set_yticks(y, labels)
    ax.set_xlabel(f"{rec['estimator']} (lower = better transfer expected; hatched = incompatible)")
    ax.set_title(f"Sources ranked for {short_name(rec['target'])}: best = {short_name(rec['best'])}")
    return save_figure(fig, path)


def write_ranking(rec: dict, out_dir: str | Path) -> Path:
    """``selection.json`` and ``ranking.png`` (plus ``mmd.png`` when MMD² ranked) in ``out_dir``, atomically."""
    out_dir = Path(out_dir)
    write_json(out_dir / "selection.json", rec)
    plot_ranking(rec, out_dir / ("mmd.png" if rec["estimator"] == "mmd2" else "ranking.png"))
    return out_dir / "selection.json"
