"""predict_blockwise: same result as one sliding window over the whole volume, bounded reads, zarr output."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import zarr
from monai.inferers import sliding_window_inference

from neuroadda.inference import blockwise
from neuroadda.inference import finalize_zarr, open_prediction_zarr, predict_blockwise, tmp_path_for

SHAPE = (40, 70, 70)
ROI = (8, 12, 12)  # halo (4, 6, 6)
BLOCK = (16, 24, 24)  # 3 * 3 * 3 = 27 blocks


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny convolutions: threads only spin against each other (and against anything else on a small machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _net(kernel: int, bias: bool = True) -> torch.nn.Module:
    torch.manual_seed(0)
    p = kernel // 2
    return torch.nn.Sequential(
        torch.nn.Conv3d(1, 4, kernel, padding=p, bias=bias),
        torch.nn.ReLU(),
        torch.nn.Conv3d(4, 3, kernel, padding=p),
    ).eval()


@pytest.fixture(scope="module")
def volume() -> np.ndarray:
    return np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)


@pytest.fixture
def zarr_volume(tmp_path, volume):
    return zarr.create_array(store=str(tmp_path / "raw.zarr"), data=volume, chunks=(16, 16, 16))


class RecordingVolume:
    """Lazy array-like that records the largest read (in voxels); no __array__, so it cannot be read whole."""

    def __init__(self, array):
        self._array = array
        self.shape = tuple(array.shape)
        self.dtype = array.dtype
        self.largest = 0
        self.reads = 0

    def __getitem__(self, key):
        block = self._array[key]
        self.largest = max(self.largest, int(np.prod(block.shape)))
        self.reads += 1
        return block


def _whole(net, volume, roi, overlap=0.25):
    with torch.inference_mode():
        logits = sliding_window_inference(torch.from_numpy(volume)[None, None], roi, 2, net, overlap=overlap, mode="gaussian")
    return torch.sigmoid(logits)[0].numpy()


def test_matches_whole_volume_sliding_window(zarr_volume, volume, tmp_path):
    """Pointwise model (its receptive field fits any halo): block-wise == one sliding window over everything."""
    net = _net(kernel=1)
    src = RecordingVolume(zarr_volume)
    out = zarr.create_array(store=str(tmp_path / "p.zarr"), shape=(3,) + SHAPE, chunks=(3, 16, 24, 24), dtype="float32")
    predict_blockwise(net, src, out, roi_size=ROI, block_shape=BLOCK, progress=False)
    assert src.reads == 27 >= 8
    np.testing.assert_allclose(out[:], _whole(net, volume, ROI), atol=1e-5, rtol=0)
    # never read whole: every read is at most one block plus its halo, a small part of the volume
    assert src.largest <= np.prod([b + r for b, r in zip(BLOCK, ROI)])
    assert src.largest < 0.2 * np.prod(SHAPE)


def test_halo_covers_receptive_field(volume, monkeypatch):
    """With a seam-free inferer (the model on the whole block), a 5-voxel receptive field within the halo gives
    exactly the model run on the whole volume; a halo too small for it does not (the test can fail)."""
    net = _net(kernel=3, bias=False)

    def one_window(x, roi_size, sw_batch_size, predictor, **kwargs):
        return predictor(x)

    monkeypatch.setattr(blockwise, "sliding_window_inference", one_window)
    with torch.inference_mode():
        direct = torch.sigmoid(net(torch.from_numpy(volume)[None, None]))[0].numpy()
    out = np.zeros((3,) + SHAPE, np.float32)
    predict_blockwise(net, volume, out, roi_size=ROI, block_shape=BLOCK, progress=False)
    np.testing.assert_allclose(out, direct, atol=1e-5, rtol=0)
    predict_blockwise(net, volume, out, roi_size=(2, 2, 2), block_shape=BLOCK, progress=False)  # halo 1 < 2
    assert np.abs(out - direct).max() > 1e-3


def test_receptive_field_with_real_sliding_window(volume):
    """MONAI's own seams (patch borders keep a weight >= 1e-3) mean a 3x3x3 model is not reproduced exactly by
    any tiling; block-wise must be no worse than the whole-volume sliding window against the direct model."""
    net = _net(kernel=3)
    with torch.inference_mode():
        direct = torch.sigmoid(net(torch.from_numpy(volume)[None, None]))[0].numpy()
    whole_err = np.abs(_whole(net, volume, ROI, overlap=0.5) - direct)
    out = np.zeros((3,) + SHAPE, np.float32)
    predict_blockwise(net, volume, out, roi_size=ROI, block_shape=BLOCK, overlap=0.5, progress=False)
    block_err = np.abs(out - direct)
    assert block_err.mean() <= 1.5 * whole_err.mean()
    assert np.percentile(block_err, 99) <= 1.5 * np.percentile(whole_err, 99)


def test_roi_larger_than_volume_is_padded():
    vol = np.random.default_rng(1).standard_normal((5, 30, 9)).astype(np.float32)
    net = _net(kernel=1)
    out = np.zeros((3,) + vol.shape, np.float32)
    predict_blockwise(net, vol, out, roi_size=(16, 12, 16), block_shape=(4, 10, 4), progress=False)
    np.testing.assert_allclose(out, _whole(net, vol, (16, 12, 16)), atol=1e-5, rtol=0)


def test_uint8_output_and_normalize(zarr_volume, volume, tmp_path):
    net = _net(kernel=1)
    out = zarr.create_array(store=str(tmp_path / "u8.zarr"), shape=(3,) + SHAPE, chunks=(3, 16, 32, 32), dtype="uint8")
    predict_blockwise(
        net, zarr_volume, out, roi_size=ROI, block_shape=BLOCK, normalize=lambda b: b * 0.5 + 1.0, progress=False
    )
    expected = np.rint(_whole(net, volume * 0.5 + 1.0, ROI) * 255)
    got = out[:]
    assert got.dtype == np.uint8
    assert np.abs(got.astype(np.int16) - expected).max() <= 1  # float rounding at .5 only
    assert (got == expected).mean() > 0.99


def test_bad_out_shape_and_channels(volume):
    net = _net(kernel=1)
    with pytest.raises(ValueError, match="out must have shape"):
        predict_blockwise(net, volume, np.zeros((3, 4, 4, 4), np.float32), roi_size=8, progress=False)
    with pytest.raises(ValueError, match="model output shape"):
        predict_blockwise(net, volume, np.zeros((2,) + SHAPE, np.float32), roi_size=8, out_channels=2, progress=False)
    with pytest.raises(ValueError, match="float32 or uint8"):
        predict_blockwise(net, volume, np.zeros((3,) + SHAPE, np.float64), roi_size=8, progress=False)


def test_tmp_then_rename(volume, tmp_path):
    net = _net(kernel=1)
    final = str(tmp_path / "pred.zarr")
    for round_ in range(2):  # the second round replaces an existing output
        arr = open_prediction_zarr(final, (3,) + SHAPE, attrs={"voxel_size": (40, 4, 4), "round": np.int64(round_)})
        assert arr.chunks == (3, 40, 64, 64)
        assert os.path.isdir(tmp_path_for(final))
        predict_blockwise(net, volume, arr, roi_size=ROI, block_shape=(40, 64, 64), progress=False)
        finalize_zarr(tmp_path_for(final), final)
        assert sorted(os.listdir(tmp_path)) == ["pred.zarr"]  # no .tmp / .old left behind
        back = zarr.open_array(final, mode="r")
        assert back.shape == (3,) + SHAPE and back.dtype == np.float32
        assert back.attrs["voxel_size"] == [40, 4, 4] and back.attrs["round"] == round_
        np.testing.assert_allclose(back[:], _whole(net, volume, ROI), atol=1e-5, rtol=0)
