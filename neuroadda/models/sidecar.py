"""The sidecar YAML that tells NeuroADDA what an imported network expects and outputs.

A TorchScript file needs one (``unet.pt`` -> ``unet.yaml`` beside it, or ``unet.pt.yaml``); beside a bioimage.io
package (``pkg.zip`` -> ``pkg.yaml``, folder ``pkg/`` -> ``pkg.yaml``) it is optional and its fields override
what the package says. Unknown keys are errors; every problem is one line naming the file and the field.

Normalisation (``normalization``), as NeuroADDA applies it to a whole volume before tiling:

- ``zscore`` / ``percentile`` / ``none``: fitted per volume (:mod:`neuroadda.data.normalize`);
- ``{mean: M, std: S}``: fixed, ``(x - M) / S``;
- ``{min_percentile: a, max_percentile: b}``: per volume, ``(x - p_a) / (p_b - p_a)``.

Internally a normalisation is a *spec*: a mode string, ``{"mode": "fixed", "center", "scale"}`` or
``{"mode": "range", "low", "high"}`` (percentiles), read by :func:`neuroadda.data.normalize.normalizer_from_spec`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError, model_validator

from neuroadda.errors import InputError, format_validation_error, read_yaml_mapping
from neuroadda.vocab import LabelsKind

Triple = tuple[PositiveInt, PositiveInt, PositiveInt]
OUTPUTS = ("affinities", "boundaries")
NEAREST = ((-1, 0, 0), (0, -1, 0), (0, 0, -1))  # (dz, dy, dx) of affinity channels z, y, x: edge (v, v + offset)
REQUIRED_TORCHSCRIPT = {
    "voxel_size": "the voxel size the model was trained at, nm (z, y, x)",
    "normalization": "zscore | percentile | none | {mean, std} | {min_percentile, max_percentile}",
    "output": "affinities (3 nearest-neighbour channels) or boundaries (1 boundary/membrane channel)",
    "values": "logits or probabilities (whether the model applies a sigmoid itself)",
    "patch_size": "the window the model predicts, voxels (z, y, x)",
}


class FixedNorm(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mean: float
    std: PositiveFloat


class RangeNorm(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min_percentile: float = Field(ge=0, lt=100)
    max_percentile: float = Field(gt=0, le=100)

    @model_validator(mode="after")
    def _ordered(self):
        if self.max_percentile <= self.min_percentile:
            raise ValueError("max_percentile must be above min_percentile")
        return self


class Sidecar(BaseModel):
    """What a sidecar may say; every field is optional here, :func:`read_sidecar` says which one a kind needs."""

    model_config = ConfigDict(extra="forbid")

    voxel_size: tuple[PositiveFloat, PositiveFloat, PositiveFloat] | None = None
    normalization: Literal["zscore", "percentile", "none"] | FixedNorm | RangeNorm | None = None
    output: str | None = Field(None, description="affinities | boundaries (anything else is refused by name)")
    values: Literal["logits", "probabilities"] | None = None
    patch_size: Triple | None = None
    stride: Triple | None = Field(None, description="input sizes must be multiples of this (z, y, x); default 1")
    offsets: list[tuple[int, int, int]] | None = Field(None, description="affinities: (dz, dy, dx) per channel")
    threshold: float | None = Field(None, gt=0, lt=1, description="waterz threshold (default 0.5)")
    labels_kind: LabelsKind | None = None
    embedding_layer: str | None = Field(None, description="submodule or exported method: input -> encoder features")
    feature_layer: str | None = Field(None, description="submodule or exported method: input -> decoder features")
    name: str | None = None
    source: str | None = Field(None, description="the data the model was trained on (a dataset name or text)")
    description: str | None = None
    citation: str | None = None


def sidecar_path(model: str | Path) -> Path | None:
    """The sidecar of ``model`` that exists: ``<stem>.yaml`` beside it, then ``<name>.yaml``; None if neither."""
    model = Path(model)
    for cand in (model.with_suffix(".yaml") if model.suffix else model.with_name(model.name + ".yaml"),
                 model.with_name(model.name + ".yaml")):
        if cand.is_file() and cand != model:
            return cand
    return None


def read_sidecar(model: str | Path, *, required: bool) -> tuple[Sidecar, Path | None]:
    """(the sidecar of ``model``, its path). ``required`` (TorchScript): it must exist and give every field of
    :data:`REQUIRED_TORCHSCRIPT`; otherwise a missing sidecar is an empty one. One-line InputError on problems."""
    path = sidecar_path(model)
    if path is None:
        if required:
            stem = Path(model).with_suffix(".yaml").name
            raise InputError(f"{model}: a TorchScript model needs a sidecar YAML beside it ({stem}) giving "
                             f"{', '.join(REQUIRED_TORCHSCRIPT)}; see docs/how-to/own-models.md")
        return Sidecar(), None
    try:
        side = Sidecar.model_validate(read_yaml_mapping(path, "sidecar"))
    except ValidationError as e:
        raise InputError(format_validation_error(e, str(path))) from None
    except Exception as e:  # ConfigError from read_yaml_mapping: already one line
        raise InputError(str(e)) from None
    if required:
        for field, what in REQUIRED_TORCHSCRIPT.items():
            if getattr(side, field) is None:
                raise InputError(f"{path}: missing field '{field}' ({what})")
    return side, path


def normalization_spec(value) -> str | dict:
    """A sidecar ``normalization`` as the spec :func:`neuroadda.data.normalize.normalizer_from_spec` reads."""
    if isinstance(value, FixedNorm):
        return {"mode": "fixed", "center": float(value.mean), "scale": float(value.std)}
    if isinstance(value, RangeNorm):
        return {"mode": "range", "low": float(value.min_percentile), "high": float(value.max_percentile)}
    return str(value)


def check_output(kind: str | None, channels: int, where: str, names=()) -> str:
    """``kind`` (declared, or None) checked against the number of output ``channels``; returns the kind.

    One-line InputError naming ``where`` and what it outputs for anything but 3 nearest-neighbour affinities or
    one boundary map (long-range affinities, LSDs, several classes)."""
    shown = f" ({', '.join(str(n) for n in names)})" if names else ""
    what = (f"{where}: outputs {channels} channel(s){shown}" + (f" declared as '{kind}'" if kind else "")
            + "; NeuroADDA uses 3 nearest-neighbour affinities or 1 boundary/membrane map (long-range affinities, "
              "LSDs and several-channel outputs are not supported)")
    if kind is not None and kind not in OUTPUTS:
        raise InputError(what)
    if kind is None:
        raise InputError(f"{where}: cannot tell what its {channels} output channel(s){shown} are; if they are "
                         "3 nearest-neighbour affinities or 1 boundary map, say so in a sidecar (output: affinities "
                         "or output: boundaries)")
    if channels != {"affinities": 3, "boundaries": 1}[kind]:
        raise InputError(what)
    return kind


def affinity_channels(offsets, where: str) -> tuple[int, int, int]:
    """For affinity outputs: the output channel holding each of NeuroADDA's z, y, x affinities, from the declared
    per-channel ``offsets`` (None = already z, y, x); anything but the nearest-neighbour set is refused."""
    if offsets is None:
        return (0, 1, 2)
    offs = [tuple(int(v) for v in o) for o in offsets]
    if len(offs) != 3 or sorted(offs) != sorted(NEAREST):
        raise InputError(f"{where}: affinity offsets {offs} are not the nearest-neighbour set {list(NEAREST)} "
                         "(long-range or positive offsets are not supported)")
    return tuple(offs.index(o) for o in NEAREST)
