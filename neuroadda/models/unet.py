"""MONAI 3-D UNet for affinities, exposing its deepest encoder (bottleneck) activations."""

from __future__ import annotations

import torch
from monai.networks.layers.simplelayers import SkipConnection
from monai.networks.nets import UNet
from torch import nn


def auto_strides(voxel_size, n_down: int) -> list[tuple[int, int, int]]:
    """Anisotropic strides (nnU-Net's rule): halve an axis only while its spacing is < 2x the finest.

    Example: (50, 4, 4) nm with 3 steps -> [(1, 2, 2), (1, 2, 2), (1, 2, 2)]; (10, 10, 10) -> all (2, 2, 2).
    """
    spacing = [float(v) for v in voxel_size]
    out = []
    for _ in range(n_down):
        finest = min(spacing)
        step = tuple(2 if s < 2 * finest else 1 for s in spacing)
        spacing = [s * k for s, k in zip(spacing, step)]
        out.append(step)
    return out


def total_stride(strides) -> tuple[int, int, int]:
    """Product of the per-level strides along (z, y, x): patch sizes must be multiples of it."""
    tot = [1, 1, 1]
    for s in strides:
        tot = [a * b for a, b in zip(tot, s)]
    return tuple(tot)


class AffinityUNet(nn.Module):
    """(B, 1, z, y, x) intensities -> (B, 3, z, y, x) affinity logits; :meth:`encode` -> bottleneck features.

    Args:
        channels: features per level, e.g. (16, 32, 64, 128); the last level is the bottleneck.
        strides: one (z, y, x) stride per down-sampling step (len(channels) - 1 of them).
    """

    def __init__(self, channels, strides, num_res_units: int = 1, norm: str = "instance", dropout: float = 0.0,
                 aux_offsets=()):
        super().__init__()
        if len(strides) != len(channels) - 1:
            raise ValueError(f"need {len(channels) - 1} strides for {len(channels)} channel levels, got {len(strides)}")
        self.hparams = {"channels": list(channels), "strides": [list(s) for s in strides],
                        "num_res_units": num_res_units, "norm": norm, "dropout": dropout,
                        "aux_offsets": [list(o) for o in aux_offsets]}
        self.unet = UNet(spatial_dims=3, in_channels=1, out_channels=3 + len(aux_offsets), channels=tuple(channels),
                         strides=tuple(tuple(s) for s in strides), num_res_units=num_res_units,
                         norm=norm.upper(), dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, z, y, x) -> affinity logits: (B, 3 + n_aux, ...) in training mode, the 3 nearest-neighbour
        channels (B, 3, ...) in eval mode (long-range auxiliary channels are only a training signal)."""
        y = self.unet(x)
        return y if self.training else y[:, :3]

    @property
    def offsets(self) -> list[tuple[int, int, int]]:
        """(dz, dy, dx) of every output channel in training mode: the 3 nearest neighbours, then the auxiliary ones."""
        from neuroadda.data.affinities import OFFSETS

        return [tuple(o) for o in OFFSETS] + [tuple(o) for o in self.hparams["aux_offsets"]]

    def encoder_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Activations of every encoder level, shallow to deep; the last is the bottleneck.

        Runs only the encoder path (the decoder is skipped). Shapes (B, channels[i], z_i, y_i, x_i)."""
        feats, h = [], x
        for node in _levels(self.unet.model):
            h = node[0](h)
            feats.append(h)
        feats.append(node[1].submodule(h))
        return feats

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Bottleneck activations (B, channels[-1], z', y', x') of the deepest encoder level."""
        return self.encoder_features(x)[-1]

    def decoder_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, z, y, x) features of the decoder's last hidden layer at voxel resolution: the input of the top
        up-sampling block of the MONAI UNet, repeated (nearest) to the output's shape."""
        grabbed = {}

        def keep(_module, inp, _out):  # returns None: the module's output is left as it is
            grabbed["f"] = inp[0]

        hook = self.unet.model[2].register_forward_hook(keep)
        try:
            out = self(x)
        finally:
            hook.remove()
        return nn.functional.interpolate(grabbed["f"].float(), size=tuple(out.shape[2:]), mode="nearest")

    def missing_features(self, which: str) -> None:
        """None: encoder ("embedding") and decoder ("feature") activations are always reachable here."""
        return None

    @property
    def dropout_layer(self) -> nn.Module:
        """The first encoder level: ``consistency`` drops features after it."""
        return self.unet.model[0]

    def fresh(self) -> AffinityUNet:
        """The same architecture with fresh weights (drawn from torch's global RNG)."""
        return AffinityUNet(**self.hparams)

    @property
    def total_stride(self) -> tuple[int, int, int]:
        return total_stride(self.hparams["strides"])


def _levels(model: nn.Sequential):
    """MONAI nests each level as Sequential(down, SkipConnection(deeper), up); yield them shallow to deep."""
    node = model
    while True:
        yield node
        sub = node[1].submodule
        if not (isinstance(sub, nn.Sequential) and len(sub) == 3 and isinstance(sub[1], SkipConnection)):
            return
        node = sub


def build_unet(model_cfg, voxel_size, aux_offsets=()) -> AffinityUNet:
    """An :class:`AffinityUNet` from a ``ModelConfig`` (strides 'auto' derive from ``voxel_size``), with one
    extra output channel per long-range ``aux_offsets`` entry (``data.aux_offsets``)."""
    strides = model_cfg.strides
    if strides == "auto":
        strides = auto_strides(voxel_size, len(model_cfg.channels) - 1)
    return AffinityUNet(model_cfg.channels, strides, model_cfg.num_res_units, model_cfg.norm, model_cfg.dropout,
                        aux_offsets=aux_offsets)
