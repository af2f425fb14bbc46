"""The lab path on daisy workers: a precomputed input predicted and segmented block by block into OME-Zarr images
with pyramids that ome-zarr-py opens, and candidates scored block by block exactly as in one process."""

from __future__ import annotations

import numpy as np
import pytest
import tensorstore as ts

from neuroadda.cli.main import main
from neuroadda.config import AdaptConfig
from neuroadda.data.io import open_array
from neuroadda.workflows import pyramid
from neuroadda.workflows.select_samples import select_samples_for
from tests.conftest import labelled_volume, tiny_backbone

pytestmark = pytest.mark.integration  # the slow lane: pytest -m 'not integration' skips it


def _as_precomputed(h5, path):
    import h5py

    a = h5py.File(h5, "r")["raw"][()]
    s = ts.open({"driver": "neuroglancer_precomputed", "kvstore": path.resolve().as_uri() + "/", "create": True,
                 "multiscale_metadata": {"type": "image", "data_type": "uint8", "num_channels": 1},
                 "scale_metadata": {"size": list(a.shape[::-1]), "resolution": [10, 10, 10], "encoding": "raw",
                                    "chunk_size": [16, 16, 8], "voxel_offset": [0, 0, 0]}}).result()
    s[..., 0] = a.T
    return "precomputed://" + path.resolve().as_uri()


def test_precomputed_in_pyramids_out(tmp_path, monkeypatch):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    from neuroadda.data.pyramid import downsample_mode

    monkeypatch.setattr(pyramid, "MIN_SIZE", 12)  # the level rule at a scale a test can afford: 24x40x48 -> 3 levels
    h5, bb = labelled_volume(tmp_path / "vol.h5", 0), tiny_backbone(tmp_path / "bb.pt", 0)
    spec = _as_precomputed(h5, tmp_path / "vol")
    for name, inp in (("h5", h5), ("pc", spec)):
        assert main(["predict", "--checkpoint", bb, "--input", inp, "--out", str(tmp_path / f"{name}.ome.zarr"),
                     "--block-size", "8", "16", "16", "--workers", "2", "--quiet"]) == 0
    affs = [np.asarray(d) for d in next(iter(Reader(parse_url(str(tmp_path / "pc.ome.zarr")))())).data]
    same = [np.asarray(d) for d in next(iter(Reader(parse_url(str(tmp_path / "h5.ome.zarr")))())).data]
    assert len(affs) >= 3 and all(np.array_equal(a, b) for a, b in zip(affs, same))  # precomputed read as HDF5
    assert affs[1].shape == (3, 12, 20, 24)
    ref = affs[0].reshape(3, 12, 2, 20, 2, 24, 2).mean(axis=(2, 4, 6))  # 2x2x2 means, done independently
    np.testing.assert_allclose(affs[1], ref, atol=1e-6)
    assert main(["segment", "--affinities", str(tmp_path / "pc.ome.zarr"), "--out", str(tmp_path / "seg.ome.zarr"),
                 "--block-size", "8", "16", "16", "--workers", "2", "--quiet"]) == 0
    seg = [np.asarray(d) for d in next(iter(Reader(parse_url(str(tmp_path / "seg.ome.zarr")))())).data]
    assert len(seg) >= 3 and seg[0].shape == (24, 40, 48)
    assert np.array_equal(seg[1], downsample_mode(seg[0], (2, 2, 2), seg[1].shape))
    for fine, coarse in zip(seg, seg[1:]):
        assert set(np.unique(coarse)) <= set(np.unique(fine))  # no level invents an id
    assert open_array(tmp_path / "seg.ome.zarr", None).levels[1][1] == (2.0, 2.0, 2.0)


def test_blockwise_scoring_equals_one_process(tmp_path):
    h5, bb = labelled_volume(tmp_path / "vol.h5", 0), tiny_backbone(tmp_path / "bb.pt", 0)
    cfg = AdaptConfig.model_validate({"active": {"candidate_size": [8, 16, 16], "strategy": "k-center",
                                                 "max_candidates": 12}})
    one, _ = select_samples_for(h5, bb, cfg, 3, tmp_path / "one", proposals=False)
    many, _ = select_samples_for(h5, bb, cfg, 3, tmp_path / "many", proposals=False, block_size=(16, 16, 24),
                                 workers=2)
    assert len(one["scores"]) == 12 and one["candidates"] == many["candidates"]
    np.testing.assert_allclose(many["scores"], one["scores"], rtol=1e-6)
    assert [s["box"] for s in many["samples"]] == [s["box"] for s in one["samples"]]
    assert len(list((tmp_path / "many.work" / "scores").glob("*.npz"))) == 2 * 3 * 2
