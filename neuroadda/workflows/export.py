"""``neuroadda export``: any model NeuroADDA takes -> a bioimage.io model package (folder, and a zip).

The normaliser and the test input come from the data the model was trained on (a fine-tuned checkpoint's
target, else its source; ``sample`` overrides): the normaliser fitted there becomes the package's fixed
preprocessing, and one patch from the volume's centre is the test input. Without such data the package
normalises each tensor by itself (zero_mean_unit_variance) and its test input is synthetic; the export says so.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from neuroadda.errors import InputError


def training_data(bb, sample: str | None):
    """(raw (z, y, x) test patch, fitted normaliser, where it came from) or (synthetic patch, None, why)."""
    from neuroadda.data.volume import open_volume

    spec = sample or bb.meta.get("target") or bb.meta.get("source")
    stride = np.asarray(bb.net.total_stride)
    try:
        if spec is None:
            raise InputError("the model records no training data")
        vol = open_volume(str(spec), labels_key=None, resample_to=bb.voxel_size)
    except InputError as e:
        if sample is not None:
            raise
        patch = np.maximum(np.asarray(bb.patch_size) // stride, 1) * stride
        rng = np.random.default_rng(0)
        return rng.normal(128, 40, tuple(patch)).astype(np.float32), None, f"synthetic ({e})"
    shape = np.asarray(vol.shape)
    patch = np.minimum(np.asarray(bb.patch_size), shape) // stride * stride
    if (patch < stride).any():
        raise InputError(f"{spec}: smaller than one network stride {tuple(stride)}; give --sample")
    start = (shape - patch) // 2
    box = tuple(slice(int(a), int(a + p)) for a, p in zip(start, patch))
    return np.asarray(vol.raw.read(box), np.float32), bb.normalizer_for(vol.raw), vol.name


def package_name(text: str) -> str:
    """``text`` in the characters a bioimage.io name allows (letters, digits, ``_+- ()``), 5 to 64 of them."""
    import re

    name = re.sub(r"[^A-Za-z0-9_+\- ()]+", "-", text).strip(" -")[:64]
    return name if len(name) >= 5 else f"NeuroADDA model {name}".strip()


def export_package(checkpoint: str | Path, out: str | Path, *, zip_too: bool = False, sample: str | None = None,
                   name: str | None = None, authors=("NeuroADDA",), license: str = "MIT",
                   echo=print) -> list[Path]:
    """Write the package of ``checkpoint`` (any kind load_backbone takes) to ``out`` (and ``out.zip``);
    returns the paths written. Everything is checked and built in a temporary folder first."""
    from neuroadda.models.checkpoint import load_backbone
    from neuroadda.models.package_write import build_package, write_package

    try:
        import bioimageio.spec  # noqa: F401
    except ImportError:
        raise InputError("export needs bioimageio.core: pip install 'neuroadda[bioimageio]'") from None
    bb = load_backbone(checkpoint)
    raw, norm, origin = training_data(bb, sample)
    if norm is None:
        echo(f"note: no training data at hand ({origin.removeprefix('synthetic (').rstrip(')')}): the package "
             "normalises each tensor itself and its test input is synthetic; give --sample NAME|PATH to fix both",
             file=sys.stderr)
    trained_on = Path(str(bb.meta.get("target") or bb.meta.get("source") or checkpoint)).stem
    name = package_name(name or f"NeuroADDA {bb.meta.get('kind', 'backbone')} {trained_on}")
    work = Path(tempfile.mkdtemp(prefix="neuroadda-export-"))
    try:
        descr = build_package(bb, raw, norm, work, name=name, authors=list(authors), license=license)
        return write_package(descr, Path(out), zip_too=zip_too)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def check_package(path: str | Path) -> tuple[bool, str]:
    """Run bioimageio.core's own test (the test tensors reproduced by every weight format, at several sizes) on
    ``path``; (passed, one line per failed check)."""
    from bioimageio.core import test_model

    from neuroadda.models.package_read import quiet_bioimageio

    quiet_bioimageio()
    summary = test_model(str(path))
    failed = [f"{d.name}: {d.errors[0].msg[:200]}" for d in summary.details if d.status == "failed" and d.errors]
    return summary.status == "passed", "; ".join(failed)
