"""Models NeuroADDA did not write, loaded through the one Backbone record: TorchScript + sidecar and a bioimage.io
package of an independently written plain-PyTorch boundary UNet (tests/models/foreign.py)."""

import numpy as np
import pytest
import torch
import yaml

from neuroadda.errors import InputError
from neuroadda.models.checkpoint import load_backbone, model_kind, save_backbone
from neuroadda.models.imported import ImportedNet
from tests.models.foreign import SIDECAR, PlainUNet, save_torchscript


def _reference_affinities(net: PlainUNet, x: torch.Tensor) -> np.ndarray:
    """1 - max(b(v), b(v - e_c)) from the plain network's own probabilities, with numpy shifts."""
    with torch.no_grad():
        b = net(x).numpy()[:, 0]
    out = []
    for axis in (1, 2, 3):
        prev = np.concatenate([np.take(b, [0], axis), np.delete(b, -1, axis)], axis)
        out.append(1 - np.maximum(b, prev))
    return np.stack(out, 1)


def test_kinds_are_told_apart_without_running_anything(foreign):
    assert model_kind(foreign.ts) == "torchscript"
    assert model_kind(foreign.pkg) == "package"
    assert model_kind(foreign.native) == "checkpoint"


def test_torchscript_and_package_predict_the_boundary_rule(foreign):
    x = torch.randn(2, 1, 8, 16, 16)
    want = _reference_affinities(foreign.net, x)
    for path in (foreign.ts, foreign.pkg):
        bb = load_backbone(path)
        assert isinstance(bb.net, ImportedNet) and bb.origin in ("torchscript", "bioimage.io")
        with torch.no_grad():
            got = torch.sigmoid(bb.net(x)).numpy()
        np.testing.assert_allclose(got, want, atol=2e-6)


def test_the_record_says_what_each_kind_declares(foreign):
    ts, pkg = load_backbone(foreign.ts), load_backbone(foreign.pkg)
    assert ts.voxel_size == (10.0, 10.0, 10.0) and ts.patch_size == (8, 16, 16) and ts.net.total_stride == (2, 2, 2)
    assert ts.meta["source"] == "plain synthetic" and ts.threshold == 0.5 and ts.labels_kind == "3d_instance"
    assert "not calibrated" in ts.threshold_region["what"]
    # the package: voxel size from its axes (10 nm), stride from the size step, z-score from zero_mean_unit_variance,
    # patch from the test input, logits from the sigmoid postprocessing
    assert pkg.voxel_size == (10.0, 10.0, 10.0) and pkg.net.total_stride == (2, 2, 2)
    assert pkg.normalization == "zscore" and pkg.patch_size == (8, 16, 16) and pkg.net.adapter.values == "logits"


def test_an_imported_network_trains_and_saves_as_a_normal_checkpoint(foreign, tmp_path):
    bb = load_backbone(foreign.ts)
    net = bb.net.fresh()
    net.load_state_dict(bb.net.state_dict())
    net.train()
    x, y = torch.randn(1, 1, 8, 16, 16), torch.rand(1, 3, 8, 16, 16).round()
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    torch.nn.functional.binary_cross_entropy_with_logits(net(x), y).backward()
    opt.step()
    assert any(not torch.equal(before[k], v) for k, v in net.state_dict().items())  # TorchScript parameters train
    path = save_backbone(tmp_path / "ft.pt", net.eval(), {**bb.meta, "kind": "finetuned"})
    back = load_backbone(path)
    assert isinstance(back.net, ImportedNet) and model_kind(path) == "checkpoint"
    with torch.no_grad():
        assert torch.equal(back.net(x), net(x))
        assert not torch.equal(back.net(x), bb.net(x))
    assert torch.load(path, weights_only=True)["net"]["architecture"] == "torchscript"


def test_fresh_weights_follow_pytorchs_default_rule(foreign):
    torch.manual_seed(0)
    fresh = load_backbone(foreign.ts).net.fresh()
    assert all(m.training for m in fresh.modules())  # as a newly built module: batch norm learns when fine-tuned
    params = dict(fresh.model.named_parameters())
    w = params["enc1.0.weight"]  # Conv3d(1, 6, 3): kaiming-uniform bound 1/sqrt(fan_in) = 1/sqrt(27)
    assert w.abs().max() <= 1 / np.sqrt(27) + 1e-6 and w.std() > 0.05
    assert torch.equal(params["enc1.1.weight"], torch.ones(6)) and torch.equal(params["enc1.1.bias"], torch.zeros(6))
    trained = dict(load_backbone(foreign.ts).net.model.named_parameters())
    assert not torch.equal(trained["enc1.0.weight"], w)


def test_embedding_layer_named_by_the_sidecar(foreign, tmp_path):
    path = save_torchscript(foreign.net, tmp_path / "enc.pt", {**SIDECAR, "embedding_layer": "encode"})
    net = load_backbone(path).net
    assert net.missing_features("embedding") is None and net.missing_features("feature") is not None
    feats = net.encoder_features(torch.zeros(1, 1, 8, 16, 16))
    assert feats[-1].shape == (1, 12, 4, 8, 8)
    (tmp_path / "enc.yaml").write_text(yaml.safe_dump({**SIDECAR, "embedding_layer": "nope"}))
    with pytest.raises(InputError, match="embedding_layer 'nope' is no submodule"):
        load_backbone(path)


@pytest.mark.parametrize("edit, fragment", [
    ({"output": "lsds"}, "declared as 'lsds'"),
    ({"output": "affinities"}, "outputs 1 channel(s) declared as 'affinities'"),
    ({"stride": [3, 3, 3], "patch_size": [9, 18, 18]}, "fails on an input of"),
])
def test_a_model_that_does_not_fit_its_sidecar_is_refused_before_any_work(foreign, tmp_path, edit, fragment):
    path = save_torchscript(foreign.net, tmp_path / "m.pt", {**SIDECAR, **edit})
    with pytest.raises(InputError) as e:
        load_backbone(path)
    assert fragment in str(e.value) and "\n" not in str(e.value)
