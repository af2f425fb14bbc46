"""``neuroadda predict --block-size``: daisy workers give the one-process prediction, into an OME-Zarr image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from neuroadda.cli.main import main
from neuroadda.data.io import open_array
from tests.conftest import labelled_volume as _volume
from tests.conftest import tiny_backbone as _backbone

pytestmark = pytest.mark.integration  # the slow lane: pytest -m 'not integration' skips it


def test_two_workers_equal_the_one_process_prediction(tmp_path):
    vol, bb = _volume(tmp_path / "vol.h5", 0), _backbone(tmp_path / "bb.pt", 0)
    assert main(["predict", "--checkpoint", bb, "--input", vol, "--out", str(tmp_path / "one.zarr"), "--quiet"]) == 0
    assert main(["predict", "--checkpoint", bb, "--input", vol, "--out", str(tmp_path / "many.zarr"), "--quiet",
                 "--block-size", "8", "16", "16", "--workers", "2"]) == 0
    one = zarr.open_array(str(tmp_path / "one.zarr"), mode="r")
    many = open_array(tmp_path / "many.zarr", None)  # OME-Zarr group -> level 0
    assert many.shape == one.shape == (3, 24, 40, 48)
    np.testing.assert_allclose(np.asarray(many[(slice(None),) * 4]), one[...], atol=1e-5)
    assert many.attrs["voxel_size_nm"] == [10.0, 10.0, 10.0] and many.attrs["threshold"] == 0.5
    ome = dict(zarr.open_group(str(tmp_path / "many.zarr"), mode="r").attrs)["ome"]["multiscales"][0]
    assert [a["name"] for a in ome["axes"]] == ["c", "z", "y", "x"]
    assert ome["datasets"][0]["coordinateTransformations"][0]["scale"] == [1.0, 10.0, 10.0, 10.0]
    assert not Path(str(tmp_path / "many.zarr") + ".tmp").exists()
    # the block-wise affinities feed the block-wise segmentation
    assert main(["segment", "--affinities", str(tmp_path / "many.zarr"), "--out", str(tmp_path / "seg.zarr"),
                 "--block-size", "8", "16", "16", "--quiet"]) == 0
    assert open_array(tmp_path / "seg.zarr", None).shape == (24, 40, 48)
