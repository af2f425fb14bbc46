"""``neuroadda segment --block-size``: exact with ascent fragments (the default) at any context, close to the
whole-volume run with watershed fragments, resumable, one-line errors, OME-Zarr out, and plain zarr / HDF5 /
OME-Zarr in."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr
from skimage.metrics import variation_of_information

from neuroadda.cli.main import main
from neuroadda.data.io import open_array
from neuroadda.data.ome import create_image
from neuroadda.segmentation import agglomerate, segment
from neuroadda.segmentation.ascent import ascent_fragments
from neuroadda.workflows.scheduler import BlockwiseError, Cluster, run_stage
from neuroadda.workflows.segment_blockwise import segment_blockwise
from tests.conftest import same_partition, smooth_affinities

pytestmark = pytest.mark.integration  # the slow lane: pytest -m 'not integration' skips it

BLOCK = (8, 16, 16)


@pytest.fixture(scope="module")
def affs_zarr(tmp_path_factory):
    affs = smooth_affinities((20, 40, 40), seed=1)
    path = tmp_path_factory.mktemp("affs") / "affs.zarr"
    arr = zarr.create_array(store=str(path), shape=affs.shape, dtype=np.float32, chunks=(3, 8, 16, 16))
    arr[...] = affs
    arr.attrs.update({"threshold": 0.5, "voxel_size_nm": [20.0, 10.0, 10.0]})
    return path, affs


def _read(path) -> np.ndarray:
    return np.asarray(open_array(Path(path), None)[(slice(None),) * 3])


@pytest.mark.parametrize("block, context", [(BLOCK, 0), ((7, 13, 11), 3)])
def test_ascent_reproduces_the_whole_volume_segmentation_at_any_context(affs_zarr, tmp_path, block, context):
    """The default (ascent) fragments are exact block by block: with no context or a little, and odd block
    sizes, the result is segment()'s on the whole volume, ids aside."""
    path, affs = affs_zarr
    s = segment_blockwise(path, tmp_path / "seg.zarr", block_size=block, context=context, workers=2, progress=False)
    seg = _read(tmp_path / "seg.zarr")
    whole = segment(affs, 0.5)
    assert same_partition(seg, whole)
    assert s["graph"]["fragments"] == len(np.unique(ascent_fragments(affs))) < s["graph"]["pieces"]
    assert s["graph"]["segments"] == len(np.unique(whole))
    assert seg.min() == 1 and seg.max() == len(np.unique(seg))
    if context == 0:
        assert s["contexts"]["grown_blocks"] == s["blocks"]  # every block had to read more than it was given


def test_ascent_per_slice_reproduces_the_whole_volume_segmentation(tmp_path):
    """2-D-labelled affinities (ssTEM) are segmented slice by slice, block-wise too."""
    affs = smooth_affinities((6, 40, 40), seed=4)
    affs[0] = 0  # z-affinities of 2-D labels are never trained; prediction sets them to 0
    path = tmp_path / "affs.zarr"
    arr = zarr.create_array(store=str(path), shape=affs.shape, dtype=np.float32, chunks=(3, 3, 16, 16))
    arr[...] = affs
    arr.attrs.update({"threshold": 0.5, "labels_kind": "2d_instance_per_slice"})
    segment_blockwise(path, tmp_path / "seg.zarr", block_size=(3, 16, 16), context=2, progress=False)
    seg = _read(tmp_path / "seg.zarr")
    whole = segment(affs, 0.5, per_slice=True)
    assert same_partition(seg, whole)
    assert all(not np.isin(seg[z], seg[z + 1]).any() for z in range(5))  # no segment spans two slices


def test_watershed_with_full_context_reproduces_the_whole_volume_segmentation(affs_zarr, tmp_path):
    """With a context that holds the volume, every block sees the whole-volume watershed fragments: the region
    graph is waterz's and the result is segment()'s exactly, ids aside."""
    path, affs = affs_zarr
    s = segment_blockwise(path, tmp_path / "seg.zarr", block_size=BLOCK, context=40, workers=2,
                          fragments="watershed", progress=False)
    seg = _read(tmp_path / "seg.zarr")
    whole = segment(affs, 0.5, fragments="watershed")
    assert same_partition(seg, whole)
    assert s["graph"]["segments"] == len(np.unique(whole)) and seg.min() == 1 and seg.max() == len(np.unique(seg))


def test_watershed_small_context_is_waterz_on_its_own_fragments_and_close_to_whole(affs_zarr, tmp_path):
    path, affs = affs_zarr
    out = tmp_path / "seg.zarr"
    segment_blockwise(path, out, block_size=BLOCK, context=8, workers=2, fragments="watershed", progress=False)
    seg = _read(out)
    frag = np.asarray(zarr.open_array(str(tmp_path / "seg.zarr.work" / "fragments.zarr"), mode="r")[...])
    assert same_partition(seg, next(agglomerate(affs, [0.5], fragments=frag))[1])  # the stitching is exact
    split, merge = variation_of_information(segment(affs, 0.5, fragments="watershed"), seg)
    assert split + merge < 0.5, (split, merge)  # measured 0.31: the fragments near block faces differ


def test_rerun_reuses_fragments_and_a_new_threshold_only_regroups(affs_zarr, tmp_path):
    path, affs = affs_zarr
    out, work = tmp_path / "seg.zarr", tmp_path / "seg.zarr.work"
    segment_blockwise(path, out, block_size=BLOCK, workers=2, progress=False)
    stamps = {p: p.stat().st_mtime_ns for p in (work / "blocks").glob("*.npz")}
    assert len(stamps) == 3 * 3 * 3
    segment_blockwise(path, out, block_size=BLOCK, threshold=0.3, workers=2, progress=False)
    assert {p: p.stat().st_mtime_ns for p in (work / "blocks").glob("*.npz")} == stamps
    assert same_partition(_read(out), segment(affs, 0.3))
    assert zarr.open_group(str(out), mode="r").attrs["threshold"] == 0.3


class _FailOnce:
    """A block function that logs each call and fails on block 4 while ``flag`` exists."""

    def __init__(self, log: Path, flag: Path):
        self.log, self.flag = str(log), str(flag)

    def __call__(self, info) -> None:
        with open(self.log, "a") as f:
            f.write(f"{info.index}\n")
        if info.index == 4 and Path(self.flag).exists():
            raise RuntimeError("injected failure")


def test_restart_skips_finished_blocks(tmp_path):
    log, flag = tmp_path / "calls.txt", tmp_path / "fail"
    flag.touch()
    cluster = Cluster("local", 2)
    with pytest.raises(BlockwiseError, match="1 of 8 blocks failed.*run the same command again"):
        run_stage("s", (4, 4, 4), (2, 2, 2), _FailOnce(log, flag), work_dir=tmp_path / "w", cluster=cluster,
                  progress=False, max_retries=0)
    assert sorted(int(x) for x in log.read_text().split()) == list(range(8))
    flag.unlink()
    log.unlink()
    run_stage("s", (4, 4, 4), (2, 2, 2), _FailOnce(log, flag), work_dir=tmp_path / "w", cluster=cluster,
              progress=False)
    assert log.read_text().split() == ["4"]  # only the failed block ran again


def test_hdf5_and_ome_zarr_inputs_give_the_same_segmentation(affs_zarr, tmp_path):
    path, affs = affs_zarr
    with h5py.File(tmp_path / "affs.h5", "w") as f:
        f["affs"] = affs
        f["affs"].attrs["threshold"] = 0.5
    arr = create_image(tmp_path / "affs_ome.zarr", affs.shape, np.float32, voxel_size_nm=(40, 8, 8),
                       chunks=(3, 8, 16, 16), channel_axis=True, attrs={"threshold": 0.5})
    arr[...] = affs
    segment_blockwise(f"{tmp_path / 'affs.h5'}:affs", tmp_path / "a.zarr", block_size=BLOCK, progress=False)
    segment_blockwise(tmp_path / "affs_ome.zarr", tmp_path / "b.zarr", block_size=BLOCK, workers=2, progress=False)
    a, b = _read(tmp_path / "a.zarr"), _read(tmp_path / "b.zarr")
    np.testing.assert_array_equal(a, b)  # deterministic: same ids whatever the input format and worker count
    assert open_array(tmp_path / "b.zarr", None).attrs["voxel_size_nm"] == [40.0, 8.0, 8.0]


def test_output_is_ome_zarr_with_the_voxel_size(affs_zarr, tmp_path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Multiscales, Reader

    path, _ = affs_zarr
    assert main(["segment", "--affinities", str(path), "--out", str(tmp_path / "seg.zarr"), "--block-size",
                 *map(str, BLOCK), "--workers", "2", "--quiet"]) == 0
    nodes = list(Reader(parse_url(str(tmp_path / "seg.zarr")))())  # ome-zarr-py's own reader
    ms = [n for n in nodes if n.load(Multiscales)][0]
    assert [a["name"] for a in ms.metadata["axes"]] == ["z", "y", "x"]
    assert {a["unit"] for a in ms.metadata["axes"]} == {"nanometer"}
    assert ms.metadata["coordinateTransformations"][0][0]["scale"] == [20.0, 10.0, 10.0]
    assert ms.data[0].shape == (20, 40, 40) and ms.data[0].dtype == np.uint64
    assert not (tmp_path / "seg.zarr.tmp").exists()


@pytest.mark.parametrize("argv, message", [
    (["--block-size", "0", "16", "16"], "block size must be 3 positive integers"),
    (["--block-size", "8", "16", "16", "--threshold", "1.5"], "must be a number in (0, 1)"),
    (["--block-size", "8", "16", "16", "--context", "-1"], "context must be a non-negative integer"),
    (["--workers", "2"], "need --block-size"),
])
def test_bad_input_is_one_line_and_writes_nothing(affs_zarr, tmp_path, capsys, argv, message):
    path, _ = affs_zarr
    out = tmp_path / "seg.zarr"
    assert main(["segment", "--affinities", str(path), "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []


def test_missing_or_misshapen_affinities_are_named(tmp_path, capsys):
    assert main(["segment", "--affinities", str(tmp_path / "nope.zarr"), "--out", str(tmp_path / "s.zarr"),
                 "--block-size", "8", "8", "8"]) == 2
    assert "nope.zarr: no such file or directory" in capsys.readouterr().err
    zarr.create_array(store=str(tmp_path / "bad.zarr"), shape=(2, 8, 8, 8), dtype=np.float32)
    assert main(["segment", "--affinities", str(tmp_path / "bad.zarr"), "--out", str(tmp_path / "s.zarr"),
                 "--block-size", "8", "8", "8", "--threshold", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "bad.zarr: affinities must be (3, z, y, x)" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s.zarr").exists() and not (tmp_path / "s.zarr.work").exists()


def test_settings_json_guards_the_work_folder(affs_zarr, tmp_path):
    path, _ = affs_zarr
    segment_blockwise(path, tmp_path / "seg.zarr", block_size=BLOCK, progress=False)
    settings = json.loads((tmp_path / "seg.zarr.work" / "settings.json").read_text())
    assert settings["block"] == list(BLOCK) and settings["context"] == 32
    segment_blockwise(path, tmp_path / "seg.zarr", block_size=(10, 20, 20), progress=False)  # other blocks: afresh
    assert len(list((tmp_path / "seg.zarr.work" / "blocks").glob("*.npz"))) == 2 * 2 * 2
