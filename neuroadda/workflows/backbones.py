"""One backbone checkpoint per candidate source: given, found in a folder, or pretrained when missing."""

from __future__ import annotations

from pathlib import Path

from neuroadda.errors import InputError


def backbones_for(sources: list[str], pairs: list[str], folder: str | Path | None, *, pretrain_missing: bool = False,
                  pretrain_config: str | Path | None = None, out: str | Path = ".", progress: bool = True,
                  echo=print) -> dict[str, Path]:
    """{source: checkpoint} from ``SOURCE=CKPT`` pairs and ``folder/<source>/model.pt``; with
    ``pretrain_missing`` the missing ones are pretrained (default config) into ``folder`` or ``out/backbones``."""
    from neuroadda.selection.select import resolve_backbones, safe_name

    backbones = resolve_backbones(sources, pairs, folder)
    missing = [s for s, p in backbones.items() if p is None]
    if missing and not pretrain_missing:
        raise InputError(f"no backbone checkpoint for source(s) {', '.join(missing)}: give --backbone SOURCE=CKPT, "
                         "--backbones DIR, or --pretrain-missing")
    if missing:
        from neuroadda.config import default_config_dir, load_config
        from neuroadda.workflows.pretrain import pretrain

        cfg = load_config(pretrain_config or default_config_dir() / "pretrain.yaml")
        root = Path(folder or Path(out) / "backbones")
        for s in missing:
            echo(f"pretraining a backbone for {s} ...")
            backbones[s] = pretrain(s, cfg, root / safe_name(s), progress=progress)
    return backbones


def check_specs(groups: dict[str, list[str]]) -> None:
    """Every dataset name is a known card (close names suggested) and every PATH[:KEY] exists (URLs are checked
    when opened): a one-line InputError naming the flag otherwise. Run before any work (some estimators never
    open a source volume)."""
    from neuroadda.data.cards import get_card
    from neuroadda.data.io import is_url, split_spec
    from neuroadda.data.volume import is_dataset_name
    from neuroadda.errors import InputError

    for flag, specs in groups.items():
        for spec in specs:
            if is_url(spec):
                continue  # opened (and checked) where it is read
            if is_dataset_name(spec):
                get_card(spec)
            elif not split_spec(spec)[0].exists():
                raise InputError(f"{flag}: '{spec}' is neither a dataset name nor an existing path")


def model_pairs(pairs: list[str], sources: list[str]) -> dict[str, Path]:
    """{name: model} from ``NAME=MODEL`` pairs (``--model``): names unique and none of ``sources``."""
    from neuroadda.selection.select import split_pair

    out: dict[str, Path] = {}
    for pair in pairs:
        name, model = split_pair(pair, "--model")
        if name in sources or name in out:
            raise InputError(f"--model '{pair}': the name '{name}' is taken (by --sources or another --model)")
        out[name] = model
    return out


def check_models(backbones: dict[str, Path]) -> dict[str, Path]:
    """``backbones`` after loading each model once (any kind; a one-line InputError names a bad one)."""
    from neuroadda.models.checkpoint import load_backbone

    for path in backbones.values():
        load_backbone(path)
    return backbones
