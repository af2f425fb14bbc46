"""Networks NeuroADDA did not write, behind the interface of its own: (B, 1, z, y, x) normalised intensities ->
(B, 3, z, y, x) nearest-neighbour affinity logits.

An :class:`ImportedNet` holds a TorchScript module (its serialised archive too, so a fine-tuned copy is a
self-contained checkpoint) and an :class:`Adapter` saying what the module outputs:

- ``affinities``: 3 channels, reordered to (z, y, x); channel c at voxel v is the affinity of edge (v, v - e_c).
- ``boundaries``: 1 boundary/membrane probability b. The rule: **affinity(v, v - e_c) = 1 - max(b(v),
  b(v - e_c))** (an edge is as much a cut as its more boundary-like end; on the first plane of an axis, where
  v - e_c lies outside, b(v) alone). It is computed on logits, exactly: logit(1 - max(p, q)) = -max(logit p,
  logit q), since the logit is increasing and odd about 1/2.

``values: probabilities`` (the module applies its own sigmoid) is turned into logits with logit(clamp(p, 1e-6)).
The module's parameters train: fine-tuning changes them like ours. Its internals are unknown, so no feature
dropout (``consistency`` perturbs in input space instead) and no encoder features unless the sidecar names a
submodule or exported method (``embedding_layer`` for MMD², ``feature_layer`` for LogME).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from neuroadda.errors import InputError

EPS = 1e-6
ARCHITECTURE = "torchscript"  # ImportedNet.hparams["architecture"]: how checkpoint.py recognises a saved one


class FeaturesUnavailable(InputError):
    """An estimator asked an imported network for features its sidecar does not name."""


class Adapter(BaseModel):
    """How an imported module's output becomes affinity logits, and what else it offers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    output: str  # "affinities" | "boundaries" (check_runs refuses anything else by what the module outputs)
    values: str  # "logits" | "probabilities"
    channels: tuple[int, int, int] = (0, 1, 2)  # affinities: the module's channel of z, y, x
    stride: tuple[int, int, int] = (1, 1, 1)  # input sizes must be multiples of this
    embedding_layer: str | None = None
    feature_layer: str | None = None


def boundary_to_affinity_logits(logits: torch.Tensor) -> torch.Tensor:
    """(B, 1, z, y, x) boundary logits -> (B, 3, z, y, x) affinity logits: channel c at v is
    -max(L(v), L(v - e_c)), i.e. affinity 1 - max(b(v), b(v - e_c)); the first plane of each axis uses L(v).
    Written with slices only, so a traced copy takes any input size."""
    b = logits[:, 0]
    prev = [torch.cat([b[:, :1], b[:, :-1]], 1),  # L(v - e_z), the first plane repeated
            torch.cat([b[:, :, :1], b[:, :, :-1]], 2),
            torch.cat([b[:, :, :, :1], b[:, :, :, :-1]], 3)]
    return torch.stack([-torch.maximum(b, p) for p in prev], 1)


class ImportedNet(nn.Module):
    """A TorchScript ``model`` seen as an affinity network (see the module note); ``archive`` is its saved bytes."""

    def __init__(self, model: nn.Module, adapter: Adapter, archive: bytes):
        super().__init__()
        self.model, self.adapter, self.archive = model, adapter, archive

    @classmethod
    def from_archive(cls, archive: bytes, adapter: Adapter | dict) -> ImportedNet:
        adapter = adapter if isinstance(adapter, Adapter) else Adapter.model_validate(adapter)
        return cls(torch.jit.load(io.BytesIO(archive), map_location="cpu"), adapter, archive)

    @property
    def hparams(self) -> dict:
        """What a checkpoint records to rebuild this network (the archive travels beside it)."""
        return {"architecture": ARCHITECTURE, "adapter": self.adapter.model_dump(mode="json")}

    @property
    def total_stride(self) -> tuple[int, int, int]:
        return tuple(self.adapter.stride)

    @property
    def offsets(self) -> list[tuple[int, int, int]]:
        from neuroadda.data.affinities import OFFSETS

        return [tuple(o) for o in OFFSETS]

    @property
    def dropout_layer(self) -> None:
        """None: the internals are unknown, so ``consistency`` cannot drop features (see consistency-input)."""
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.model(x).float()
        if self.adapter.values == "probabilities":
            y = torch.logit(y.clamp(EPS, 1 - EPS))
        if self.adapter.output == "boundaries":
            return boundary_to_affinity_logits(y[:, :1])
        return y[:, list(self.adapter.channels)]

    def fresh(self) -> ImportedNet:
        """The same architecture with fresh weights, in training mode (PyTorch's default rule, drawn from torch's
        global RNG): a
        weight of 2+ dims kaiming-uniform (a = sqrt 5) and its layer's bias U(+-1/sqrt(fan_in)), as nn.Conv3d
        and nn.Linear do; other 1-D weights 1 and biases 0 (norm layers); running means 0 and variances 1."""
        net = ImportedNet.from_archive(self.archive, self.adapter)
        with torch.no_grad():
            for module in net.model.modules():
                params = dict(module.named_parameters(recurse=False))
                w, b = params.get("weight"), params.get("bias")
                if w is not None and w.dim() >= 2:
                    nn.init.kaiming_uniform_(w, a=math.sqrt(5))
                    if b is not None:
                        fan_in = w[0].numel()
                        nn.init.uniform_(b, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
                else:
                    if w is not None:
                        nn.init.ones_(w)
                    if b is not None:
                        nn.init.zeros_(b)
                for name, buf in module.named_buffers(recurse=False):
                    if name in ("running_mean", "running_var"):
                        buf.fill_(1.0 if name == "running_var" else 0.0)
        return net.train()  # as a newly built module is (a loaded archive keeps the mode it was saved in)

    def missing_features(self, which: str) -> str | None:
        """Why ``which`` ("embedding" or "feature") features are unavailable, or None when the sidecar names them."""
        if getattr(self.adapter, f"{which}_layer") is None:
            return f"an imported model whose sidecar names no {which}_layer"
        return None

    def _layer(self, which: str):
        why = self.missing_features(which)
        if why is not None:
            raise FeaturesUnavailable(f"no {which} features: {why}")
        return resolve(self.model, getattr(self.adapter, f"{which}_layer"))

    def encoder_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[(B, C, z', y', x')]: the output of the sidecar's ``embedding_layer`` on ``x`` (the last is the
        bottleneck, as :meth:`AffinityUNet.encoder_features` orders them)."""
        return [self._layer("embedding")(x)]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder_features(x)[-1]

    def decoder_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, z, y, x) output of the sidecar's ``feature_layer``, nearest-upsampled to the input's shape."""
        f = self._layer("feature")(x).float()
        return nn.functional.interpolate(f, size=tuple(x.shape[2:]), mode="nearest")


def resolve(model: nn.Module, name: str):
    """``model.a.b`` for ``name`` "a.b": a submodule or exported method, callable on the model's input."""
    obj = model
    for part in name.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise AttributeError(name)
    return obj


def check_runs(net: ImportedNet, patch, where: str, channels: int) -> None:
    """Before any work: the module takes (1, 1, *patch) and (1, 1, *(patch + stride)) zeros and returns
    (1, ``channels``, same spatial shape), and the named feature layers exist and return 5-D tensors.
    One-line InputError naming ``where`` otherwise."""
    stride = net.total_stride
    shapes = [tuple(patch), tuple(p + s for p, s in zip(patch, stride))]
    for k, shape in enumerate(shapes):
        x = torch.zeros((1, 1) + shape)
        try:
            with torch.inference_mode():
                y = net.model.eval()(x)
        except Exception as e:  # TorchScript raises RuntimeErrors of many shapes
            hint = "" if k == 0 else " (is the sidecar's stride right? input sizes must be multiples of it)"
            raise InputError(f"{where}: fails on an input of {shape} voxels{hint}: "
                             f"{str(e).strip().splitlines()[-1][:200]}") from None
        if not isinstance(y, torch.Tensor) or y.dim() != 5 or tuple(y.shape[2:]) != shape or y.shape[0] != 1:
            got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise InputError(f"{where}: on a (1, 1, {', '.join(map(str, shape))}) input it returns {got}; NeuroADDA "
                             "needs (1, C, same z, y, x) (no valid-convolution cropping, one output tensor)")
        if y.shape[1] != channels:
            from neuroadda.models.sidecar import check_output

            check_output(net.adapter.output, int(y.shape[1]), where)
    for which in ("embedding", "feature"):
        name = getattr(net.adapter, f"{which}_layer")
        if name is None:
            continue
        try:
            with torch.inference_mode():
                f = resolve(net.model, name)(torch.zeros((1, 1) + shapes[0]))
        except AttributeError:
            raise InputError(f"{where}: {which}_layer '{name}' is no submodule or exported method of the "
                             "model") from None
        except Exception as e:
            raise InputError(f"{where}: {which}_layer '{name}' fails on the model's input: "
                             f"{str(e).strip().splitlines()[-1][:200]}") from None
        if not isinstance(f, torch.Tensor) or f.dim() != 5:
            raise InputError(f"{where}: {which}_layer '{name}' must return (B, C, z, y, x) features")


def load_torchscript(path: str | Path):
    """A TorchScript file and its sidecar (required) as a :class:`~neuroadda.models.checkpoint.Backbone`."""
    from neuroadda.models.record import imported_backbone
    from neuroadda.models.sidecar import affinity_channels, normalization_spec, read_sidecar

    path = Path(path)
    side, side_path = read_sidecar(path, required=True)
    kind = side.output  # checked against what the model really outputs by check_runs, below
    adapter = Adapter(output=kind, values=side.values,
                      channels=affinity_channels(side.offsets, str(side_path)) if kind == "affinities" else (0, 1, 2),
                      stride=tuple(side.stride or (1, 1, 1)), embedding_layer=side.embedding_layer,
                      feature_layer=side.feature_layer)
    archive = path.read_bytes()
    try:
        net = ImportedNet.from_archive(archive, adapter)
    except Exception as e:
        raise InputError(f"{path}: not a loadable TorchScript model ({e.__class__.__name__})") from None
    if any(p % s for p, s in zip(side.patch_size, adapter.stride)):
        raise InputError(f"{side_path}: patch_size {tuple(side.patch_size)} is not a multiple of stride "
                         f"{adapter.stride}")
    check_runs(net, side.patch_size, str(path), {"affinities": 3, "boundaries": 1}.get(kind, 0))
    return imported_backbone(net, {
        "origin": "torchscript", "model_file": str(path), "sidecar": str(side_path),
        "name": side.name or path.stem, "description": side.description, "citation": side.citation,
        "source": side.source, "voxel_size": list(side.voxel_size), "patch_size": list(side.patch_size),
        "normalization": normalization_spec(side.normalization), "threshold": side.threshold,
        "labels_kind": side.labels_kind})
