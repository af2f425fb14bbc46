"""A model NeuroADDA did not write: a plain-PyTorch 3-D UNet (no MONAI, not our class) with one boundary channel,
trained a few steps on a tiny synthetic volume, saved as TorchScript + sidecar and as a bioimage.io package built
with bioimageio.spec's own API (as another lab would)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from tests.conftest import blob_labels, raw_from_labels


class PlainUNet(nn.Module):
    """Two levels: (B, 1, z, y, x) -> (B, 1, z, y, x) boundary logits (``logits``) or probabilities."""

    def __init__(self, width: int = 6, logits: bool = True):
        super().__init__()
        self.logits = logits
        self.enc1 = nn.Sequential(nn.Conv3d(1, width, 3, padding=1), nn.BatchNorm3d(width), nn.ReLU())
        self.enc2 = nn.Sequential(nn.MaxPool3d(2), nn.Conv3d(width, 2 * width, 3, padding=1), nn.ReLU())
        self.up = nn.ConvTranspose3d(2 * width, width, 2, stride=2)
        self.dec = nn.Sequential(nn.Conv3d(2 * width, width, 3, padding=1), nn.ReLU(), nn.Conv3d(width, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.enc1(x)
        y = self.dec(torch.cat([a, self.up(self.enc2(a))], 1))
        return y if self.logits else torch.sigmoid(y)

    @torch.jit.export
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The deeper level's features (B, 2 width, z/2, y/2, x/2)."""
        return self.enc2(self.enc1(x))


def synthetic_pair(seed: int = 0, shape=(12, 24, 24)) -> tuple[np.ndarray, np.ndarray]:
    """(raw uint8, boundary mask float32) of blob labels: the boundary is label 0."""
    lab = blob_labels(shape, cell=6, seed=seed)
    return raw_from_labels(lab, seed=seed), (lab == 0).astype(np.float32)


def train_plain_unet(steps: int = 20, seed: int = 0, logits: bool = True) -> PlainUNet:
    """A few Adam steps of BCE on the boundary mask, the whole 12x24x24 volume per step, z-scored per volume."""
    torch.manual_seed(seed)
    raw, target = synthetic_pair(seed)
    x = torch.from_numpy(((raw - raw.mean()) / raw.std()).astype(np.float32))[None, None]
    y = torch.from_numpy(target)[None, None]
    net = PlainUNet(logits=True)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.binary_cross_entropy_with_logits(net(x), y).backward()
        opt.step()
    net.logits = logits
    return net.eval()


def save_torchscript(net: PlainUNet, path: Path, sidecar: dict | None) -> Path:
    """``torch.jit.script`` the network to ``path`` and write ``sidecar`` beside it (``<stem>.yaml``)."""
    torch.jit.script(net.eval()).save(str(path))
    if sidecar is not None:
        path.with_suffix(".yaml").write_text(yaml.safe_dump(sidecar))
    return path


SIDECAR = {"voxel_size": [10.0, 10.0, 10.0], "normalization": "zscore", "output": "boundaries",
           "values": "probabilities", "patch_size": [8, 16, 16], "stride": [2, 2, 2], "source": "plain synthetic"}


def save_package(net: PlainUNet, path: Path, work: Path, *, channel: str = "boundaries") -> Path:
    """The network (logits) as a bioimage.io 0.5 zip at ``path``: torchscript weights, zero-mean-unit-variance
    preprocessing, sigmoid postprocessing, 10 nm axes, test tensors; built with bioimageio.spec."""
    from bioimageio.spec import save_bioimageio_package
    from bioimageio.spec.model import v0_5 as m

    work.mkdir(parents=True, exist_ok=True)
    logit_net = copy.deepcopy(net).eval()
    logit_net.logits = True
    torch.jit.script(logit_net).save(str(work / "weights.pt"))
    raw, _ = synthetic_pair(seed=1, shape=(8, 16, 16))
    x = raw.astype(np.float32)[None, None]
    with torch.no_grad():
        y = torch.sigmoid(logit_net(torch.from_numpy((x - x.mean()) / (x.std() + 1e-6)))).numpy()
    np.save(work / "in.npy", x)
    np.save(work / "out.npy", y)
    (work / "README.md").write_text("# Plain boundary UNet\n\nA test model.\n")
    rid = m.TensorId("input")
    space = [m.SpaceInputAxis(id=m.AxisId(a), size=m.ParameterizedSize(min=4, step=2), scale=10.0, unit="nanometer")
             for a in "zyx"]
    descr = m.ModelDescr(
        name="plain boundary unet", description="boundary probabilities of a plain PyTorch UNet",
        authors=[m.Author(name="Another Lab")], cite=[m.CiteEntry(text="a test", doi=m.Doi("10.1000/xyz123"))],
        license=m.LicenseId("MIT"), documentation=m.FileDescr(source=work / "README.md"),
        inputs=[m.InputTensorDescr(id=rid, axes=[m.BatchAxis(), m.ChannelAxis(channel_names=[m.Identifier("em")]),
                                                 *space], test_tensor=m.FileDescr(source=work / "in.npy"),
                                   preprocessing=[m.ZeroMeanUnitVarianceDescr()])],
        outputs=[m.OutputTensorDescr(
            id=m.TensorId("prediction"), test_tensor=m.FileDescr(source=work / "out.npy"),
            axes=[m.BatchAxis(), m.ChannelAxis(channel_names=[m.Identifier(channel)])]
            + [m.SpaceOutputAxis(id=m.AxisId(a), size=m.SizeReference(tensor_id=rid, axis_id=m.AxisId(a)),
                                 scale=10.0, unit="nanometer") for a in "zyx"],
            postprocessing=[m.SigmoidDescr()])],
        weights=m.WeightsDescr(torchscript=m.TorchscriptWeightsDescr(
            source=work / "weights.pt", pytorch_version=m.Version(torch.__version__.split("+")[0]))))
    return Path(save_bioimageio_package(descr, output_path=path))
