"""predict_blockwise: same result as one sliding window over the whole volume, bounded reads, zarr output."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import zarr
from monai.inferers import sliding_window_inference

from neuroadda.inference import blockwise, finalize_zarr, open_prediction_zarr, predict_blockwise, tmp_path_for

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
        logits = sliding_window_inference(torch.from_numpy(volume)[None, None], roi, 2, net, overlap=overlap,
                                          mode="gaussian")
    return torch.sigmoid(logits)[0].numpy()


def test_matches_whole_volume_sliding_window(zarr_volume, volume, tmp_path):
    """Pointwise model (its receptive field fits any halo): block-wise == one sliding window over everything."""
    net = _net(kernel=1)
    src = RecordingVolume(zarr_volume)
    out = zarr.create_array(store=str(tmp_path / "p.zarr"), shape=(3,) + SHAPE, chunks=(3, 16, 24, 24), dtype="float32")
    predict_blockwise(net, src, out, roi_size=ROI, block_shape=BLOCK, progress=False)
    assert src.reads == 27 >= 8
    np.testing.assert_allclose(out[:], _whole(net, volume, ROI), atol=1e-5, rtol=0)
    # never read whole: every read is one block plus the windows touching it (< roi on each side)
    assert src.largest <= np.prod([b + 2 * (r - 1) for b, r in zip(BLOCK, ROI)])
    assert src.largest < 0.25 * np.prod(SHAPE)


def test_halo_covers_receptive_field(volume, monkeypatch):
    """With a seam-free inferer (the model on the whole block), a 5-voxel receptive field within the read margin
    (>= roi - step per side) gives exactly the model run on the whole volume; a margin of 1 does not."""
    net = _net(kernel=3, bias=False)

    def one_window(x, roi_size, sw_batch_size, predictor, **kwargs):
        return predictor(x)

    monkeypatch.setattr(blockwise, "sliding_window_inference", one_window)
    with torch.inference_mode():
        direct = torch.sigmoid(net(torch.from_numpy(volume)[None, None]))[0].numpy()
    out = np.zeros((3,) + SHAPE, np.float32)
    predict_blockwise(net, volume, out, roi_size=ROI, block_shape=BLOCK, progress=False)
    np.testing.assert_allclose(out, direct, atol=1e-5, rtol=0)
    predict_blockwise(net, volume, out, roi_size=(2, 2, 2), block_shape=BLOCK, progress=False)  # margin 1 < 2
    assert np.abs(out - direct).max() > 1e-3


def _norm_net() -> torch.nn.Module:
    """3x3x3 convs + instance norm: every window's output depends on the whole window (like AffinityUNet)."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.InstanceNorm3d(4), torch.nn.ReLU(),
        torch.nn.Conv3d(4, 3, 3, padding=1),
    ).eval()


@pytest.mark.parametrize("overlap", [0.25, 0.5])
@pytest.mark.parametrize("block", [BLOCK, (8, 20, 33), (40, 70, 70)])
def test_equals_whole_volume_sliding_window_any_block(volume, overlap, block):
    """Windows placed as on the whole volume: block-wise == whole-volume MONAI even when each window's output
    depends on the whole window (instance norm), for any block shape."""
    net = _norm_net()
    out = np.zeros((3,) + SHAPE, np.float32)
    predict_blockwise(net, volume, out, roi_size=ROI, block_shape=block, overlap=overlap, progress=False)
    np.testing.assert_allclose(out, _whole(net, volume, ROI, overlap=overlap), atol=1e-5, rtol=0)


def test_window_extents_match_monai():
    from monai.data.utils import dense_patch_slices
    from monai.inferers.utils import _get_scan_interval

    cases = [(40, 8, 0.25), (70, 12, 0.5), (250, 96, 0.25), (97, 96, 0.25), (96, 96, 0.25), (5, 16, 0.25)]
    for size, roi, overlap in cases:
        padded = max(size, roi)
        step = _get_scan_interval((padded,), (roi,), 1, (overlap,))
        monai_w = [(s[0].start, min(s[0].stop, size)) for s in dense_patch_slices((padded,), (roi,), step)]
        assert [tuple(w) for w in blockwise.window_extents(size, roi, overlap).tolist()] == monai_w


def test_default_block_shape_bounded_and_chunk_aligned():
    roi = (16, 96, 96)
    for shape, cap in [((250, 250, 250), 2**24), ((1024, 1024, 1024), 2**24), ((512, 512, 512), 2**22)]:
        block = blockwise.choose_block_shape(shape, roi, 0.25, (64, 64, 64), cap)
        assert all(b % 64 == 0 or b == s for b, s in zip(block, shape))
        ws = [blockwise.window_extents(s, r, 0.25) for s, r in zip(shape, roi)]
        reads = [max(blockwise._read_range(w, a, min(a + b, s))[1] - blockwise._read_range(w, a, min(a + b, s))[0]
                     for a in range(0, s, b)) for w, s, b in zip(ws, shape, block)]
        assert np.prod(reads) <= cap
    assert blockwise.choose_block_shape((250, 250, 250), roi, 0.25, (64, 64, 64), 2**24) == (250, 250, 250)


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
