"""Session fixtures for the imported-model tests: a foreign model saved every way NeuroADDA takes models."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.conftest import labelled_volume, tiny_backbone
from tests.models.foreign import SIDECAR, save_package, save_torchscript, train_plain_unet


@pytest.fixture(scope="session")
def foreign(tmp_path_factory):
    """paths: ``ts`` (TorchScript, probabilities, sidecar), ``pkg`` (bioimage.io zip, logits + sigmoid),
    ``native`` (a tiny NeuroADDA checkpoint), ``target`` and ``source`` (24x40x48 labelled HDF5, 10 nm); ``net``:
    the trained plain UNet (probabilities)."""
    d = tmp_path_factory.mktemp("foreign")
    net = train_plain_unet(logits=False)
    return SimpleNamespace(
        net=net, ts=save_torchscript(net, d / "plain_ts.pt", SIDECAR),
        pkg=save_package(net, d / "plain_pkg.zip", d / "pkg-work"),
        native=tiny_backbone(d / "native.pt", seed=0), target=labelled_volume(d / "target.h5", seed=3),
        source=labelled_volume(d / "source.h5", seed=4), dir=d)
