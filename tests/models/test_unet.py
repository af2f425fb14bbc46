import pytest
import torch

from neuroadda.config import ModelConfig
from neuroadda.models.unet import _levels, auto_strides, build_unet, total_stride


def test_auto_strides_isotropic_and_anisotropic():
    assert auto_strides((10, 10, 10), 3) == [(2, 2, 2)] * 3
    assert auto_strides((50, 4, 4), 4) == [(1, 2, 2), (1, 2, 2), (1, 2, 2), (2, 2, 2)]
    assert auto_strides((40, 4, 4), 3) == [(1, 2, 2), (1, 2, 2), (1, 2, 2)]
    assert total_stride([(1, 2, 2), (2, 2, 2)]) == (2, 4, 4)


def test_forward_shape_and_bottleneck_is_the_deepest_level():
    torch.manual_seed(0)
    net = build_unet(ModelConfig(channels=[4, 8, 16]), (40, 4, 4)).eval()
    x = torch.randn(2, 1, 8, 32, 32)
    assert net(x).shape == (2, 3, 8, 32, 32)
    seen = []
    *_, deepest = _levels(net.unet.model)
    deepest[1].submodule.register_forward_hook(lambda m, i, o: seen.append(o))
    with torch.no_grad():
        net(x)
        feats = net.encode(x)
    assert feats.shape == (2, 16, 8, 8, 8)  # strides (1,2,2) twice: z 8, y/x 32/4
    torch.testing.assert_close(feats, seen[0])


def test_wrong_number_of_strides():
    with pytest.raises(ValueError, match="need 2 strides"):
        build_unet(ModelConfig(channels=[4, 8, 16], strides=[(2, 2, 2)]), (10, 10, 10))


def test_auxiliary_channels_in_training_only():
    import torch

    net = build_unet(ModelConfig(channels=[4, 8, 16]), (10, 10, 10), aux_offsets=[(0, 0, -4), (-2, 0, 0)])
    x = torch.zeros(1, 1, 8, 16, 16)
    assert net.train()(x).shape[1] == 5 and net.eval()(x).shape[1] == 3
    assert net.offsets[3:] == [(0, 0, -4), (-2, 0, 0)] and len(net.offsets) == 5
