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
