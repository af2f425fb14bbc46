"""Backbone checkpoints: plain dicts of tensors and JSON-like metadata, loadable with ``weights_only=True``."""

from __future__ import annotations

import datetime as _dt
import os
import subprocess
from pathlib import Path
from typing import Any

import torch

from neuroadda import __version__
from neuroadda.errors import InputError
from neuroadda.models.unet import AffinityUNet

FORMAT = "neuroadda-backbone-v1"


def code_version() -> str:
    """Package version plus the git commit of this checkout, when there is one."""
    from neuroadda.paths import checkout_root

    root = checkout_root()
    if root is None:  # an installed wheel: no git commit to add (an enclosing repository is not ours)
        return __version__
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{__version__}+g{sha}" if sha else __version__


def save_backbone(path: str | Path, net: AffinityUNet, meta: dict[str, Any]) -> Path:
    """Write ``net`` and ``meta`` (config, card, seed, threshold, voxel size, ...) atomically (tmp + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "net": net.hparams, "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
               "code_version": code_version(), "created": _dt.datetime.now(_dt.timezone.utc).isoformat(), **meta}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_backbone(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[AffinityUNet, dict[str, Any]]:
    """(network in eval mode, metadata). Anything that is not a NeuroADDA backbone is an InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # pickle/zip errors come in many types
        raise InputError(f"{path}: not a loadable torch checkpoint ({e.__class__.__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(f"{path}: not a NeuroADDA backbone checkpoint (expected format '{FORMAT}'; "
                         "make one with 'neuroadda pretrain')")
    net = AffinityUNet(**payload["net"])
    net.load_state_dict(payload["state_dict"])
    net.eval()
    meta = {k: v for k, v in payload.items() if k not in ("state_dict",)}
    return net, meta
