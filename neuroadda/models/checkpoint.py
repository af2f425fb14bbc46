"""Backbone checkpoints: plain dicts of tensors and JSON-like metadata, loadable with ``weights_only=True``.

:func:`load_backbone` returns a :class:`Backbone`: a ``(net, meta)`` pair (it unpacks as one) with typed
accessors for what every reader needs (voxel size, patch, normalisation, threshold and the region it was
chosen on, labels kind, whether the model learned), so no caller digs through the metadata dict by hand.

It takes every kind of model the same way, so no stage asks where one came from: a NeuroADDA checkpoint, a
bioimage.io model package (a folder with ``rdf.yaml``/``bioimageio.yaml``, or its zip), or a TorchScript file
with a sidecar YAML (:mod:`.sidecar`). ``net`` is then an :class:`~neuroadda.models.unet.AffinityUNet` or an
:class:`~neuroadda.models.imported.ImportedNet`: both map (B, 1, z, y, x) normalised intensities to (B, 3, z, y,
x) affinity logits and offer ``total_stride``, ``offsets``, ``fresh()`` (same architecture, new weights) and
``dropout_layer``. A fine-tuned imported network is saved as a normal checkpoint holding its TorchScript archive.
"""

from __future__ import annotations

import datetime as _dt
import subprocess
from pathlib import Path
from typing import Any

import torch

from neuroadda._version import __version__
from neuroadda.errors import InputError
from neuroadda.models.imported import ARCHITECTURE, ImportedNet
from neuroadda.models.record import Backbone, imported_backbone  # noqa: F401  (re-exported: callers import it here)
from neuroadda.models.unet import AffinityUNet
from neuroadda.report import atomic_path

FORMAT = "neuroadda-backbone-v1"
PACKAGE_YAMLS = ("rdf.yaml", "bioimageio.yaml")


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


def save_backbone(path: str | Path, net: AffinityUNet | ImportedNet, meta: dict[str, Any]) -> Path:
    """Write ``net`` and ``meta`` (config, card, seed, threshold, voxel size, ...) atomically (tmp + rename);
    numpy values in ``meta`` are stored as Python ones (:func:`plain`). An imported network's TorchScript archive
    is stored beside its weights (a uint8 tensor), so the checkpoint is self-contained."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "net": plain(net.hparams),
               "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
               "code_version": code_version(), "created": _dt.datetime.now(_dt.UTC).isoformat(), **plain(meta)}
    if isinstance(net, ImportedNet):
        payload["torchscript"] = torch.frombuffer(bytearray(net.archive), dtype=torch.uint8)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def model_kind(path: Path) -> str:
    """"package" (bioimage.io), "torchscript" or "checkpoint", from the file's layout (nothing is executed)."""
    import zipfile

    path = Path(path)
    if path.is_dir():
        if any((path / n).is_file() for n in PACKAGE_YAMLS):
            return "package"
        raise InputError(f"{path}: a folder without rdf.yaml or bioimageio.yaml is no bioimage.io package")
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    if path.name in PACKAGE_YAMLS or path.name.endswith(".bioimageio.yaml"):
        return "package"
    if not zipfile.is_zipfile(path):
        return "checkpoint"
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    if any(n in PACKAGE_YAMLS or n.endswith(".bioimageio.yaml") for n in names):
        return "package"
    if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
        return "torchscript"
    return "checkpoint"


def load_backbone(path: str | Path, map_location: str | torch.device = "cpu") -> Backbone:
    """Any model NeuroADDA takes (a checkpoint, a bioimage.io package, TorchScript + sidecar) as a
    :class:`Backbone`, network in eval mode; anything else is a one-line InputError."""
    path = Path(path)
    kind = model_kind(path)
    if kind == "package":
        from neuroadda.models.package_read import load_package

        return load_package(path)
    if kind == "torchscript":
        from neuroadda.models.imported import load_torchscript

        return load_torchscript(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # pickle/zip errors come in many types
        raise InputError(f"{path}: not a loadable torch checkpoint ({e.__class__.__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(f"{path}: not a NeuroADDA backbone checkpoint (expected format '{FORMAT}'; make one with "
                         "'neuroadda pretrain'), bioimage.io package or TorchScript model")
    if payload["net"].get("architecture") == ARCHITECTURE:
        net = ImportedNet.from_archive(payload["torchscript"].numpy().tobytes(), payload["net"]["adapter"])
    else:
        net = AffinityUNet(**payload["net"])
    net.load_state_dict(payload["state_dict"])
    net.eval()
    meta = {k: v for k, v in payload.items() if k not in ("state_dict", "torchscript")}
    return Backbone(net, meta)
