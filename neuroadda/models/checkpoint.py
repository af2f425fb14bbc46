"""Backbone checkpoints: plain dicts of tensors and JSON-like metadata, loadable with ``weights_only=True``.

:func:`load_backbone` returns a :class:`Backbone`: a ``(net, meta)`` pair (it unpacks as one) with typed
accessors for what every reader needs (voxel size, patch, normalisation, threshold and the region it was
chosen on, labels kind, whether the model learned), so no caller digs through the metadata dict by hand.
"""

from __future__ import annotations

import datetime as _dt
import subprocess
from pathlib import Path
from typing import Any, NamedTuple

import torch

from neuroadda._version import __version__
from neuroadda.errors import InputError
from neuroadda.models.unet import AffinityUNet
from neuroadda.report import atomic_path

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


def plain(obj):
    """``obj`` with numpy scalars and arrays made Python numbers and lists (recursively through dicts, lists and
    tuples), so the checkpoint loads with ``torch.load(..., weights_only=True)``."""
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain(v) for v in obj)
    return obj


def save_backbone(path: str | Path, net: AffinityUNet, meta: dict[str, Any]) -> Path:
    """Write ``net`` and ``meta`` (config, card, seed, threshold, voxel size, ...) atomically (tmp + rename);
    numpy values in ``meta`` are stored as Python ones (:func:`plain`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "net": plain(net.hparams),
               "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
               "code_version": code_version(), "created": _dt.datetime.now(_dt.UTC).isoformat(), **plain(meta)}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


class Backbone(NamedTuple):
    """A loaded checkpoint: the network (eval mode) and its metadata, with typed accessors."""

    net: AffinityUNet
    meta: dict[str, Any]

    @property
    def voxel_size(self) -> tuple[float, float, float]:
        """(z, y, x) nm the network was trained at."""
        return tuple(float(v) for v in self.meta["voxel_size"])

    @property
    def patch_size(self) -> tuple[int, int, int]:
        return tuple(int(v) for v in self.meta["patch_size"])

    @property
    def normalization(self) -> str:
        return self.meta.get("normalization", "zscore")

    @property
    def threshold(self) -> float | None:
        t = self.meta.get("threshold")
        return None if t is None else float(t)

    @property
    def labels_kind(self) -> str:
        return self.meta.get("labels_kind", "3d_instance")

    @property
    def learned(self) -> bool | None:
        """False when calibration found the model no better than one segment; None in older checkpoints."""
        return self.meta.get("learned")

    @property
    def threshold_region(self) -> dict:
        """Where the threshold was chosen, one type for every checkpoint kind: ``{"what": str, "box": [[start,
        stop] x 3] | None}`` (older checkpoints stored a box list after pretraining, a string after fine-tuning)."""
        region = self.meta.get("threshold_region")
        if isinstance(region, dict):
            return region
        if isinstance(region, list):
            what = "validation slab" if self.meta.get("threshold_region_is_validation") else "training volume"
            return {"what": what, "box": region}
        return {"what": region or "unknown", "box": None}

    def normalizer_for(self, raw, *, seed: int = 0):
        """The intensity normaliser this network expects, fitted on the raw :class:`~neuroadda.data.volume.Volume`."""
        from neuroadda.data.normalize import fit_normalizer

        return fit_normalizer(raw, self.normalization, seed=seed)


def load_backbone(path: str | Path, map_location: str | torch.device = "cpu") -> Backbone:
    """The network (eval mode) and its metadata as a :class:`Backbone`; anything that is not a NeuroADDA
    backbone is an InputError."""
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
    return Backbone(net, meta)
