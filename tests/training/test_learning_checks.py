"""Issue 10: label 0's meaning is read strictly, targets without boundaries are refused before training, the
threshold is chosen on a region predicted with real context, and a model that has not learned says so."""

import h5py
import numpy as np
import pytest
import torch

from neuroadda.cli.main import main
from neuroadda.data.normalize import Normalizer
from neuroadda.data.patches import PatchDataset, check_target_edges, target_edge_counts
from neuroadda.data.regions import grow_box
from neuroadda.data.volume import open_volume, parse_label_zero
from neuroadda.errors import InputError
from neuroadda.segmentation.threshold import calibrate, table_warning, validation_region
from tests.conftest import blob_labels, raw_from_labels

pytestmark = pytest.mark.integration  # the slow lane: pytest -m 'not integration' skips it


def _h5(path, lab, label_zero=None):
    with h5py.File(path, "w") as f:
        f.create_dataset("raw", data=raw_from_labels(lab))
        d = f.create_dataset("labels", data=lab)
        if label_zero is not None:
            d.attrs["label_zero"] = label_zero
        f.attrs["resolution_nm"] = [10.0, 10.0, 10.0]
    return path


@pytest.mark.parametrize("value, expect", [(None, "boundary"), ("boundary", "boundary"), (" Boundary ", "boundary"),
                                           ("unlabelled", "unlabelled"), ("unlabeled", "unlabelled"),
                                           (b"unlabelled", "unlabelled")])
def test_documented_label_zero_values(value, expect):
    assert parse_label_zero(value, "f.h5:labels attribute label_zero") == expect


@pytest.mark.parametrize("value", ["boundary / unlabeled: ignore", "membrane: ignore", "unlabeled (almost absent)",
                                   "ignore"])
def test_free_text_label_zero_is_refused_naming_file_and_attribute(tmp_path, value):
    path = _h5(tmp_path / "lab.h5", blob_labels(), value)
    with pytest.raises(InputError) as e:
        open_volume(str(path), require_labels=True)
    msg = str(e.value)
    assert "lab.h5:labels attribute label_zero" in msg and repr(value) in msg and "--label-zero" in msg
    assert open_volume(str(path), require_labels=True, label_zero="boundary").label_zero == "boundary"
    assert open_volume(str(path), labels_key=None).labels is None  # raw only: label 0 does not matter


def test_bundled_file_by_path_reads_its_card():
    # gala's HDF5 says "boundary / unlabeled: ignore"; its card says boundary
    by_path = open_volume("datasets/data/drosophila_medulla_fibsem_gala/train.h5", require_labels=True)
    by_name = open_volume("gala-train", require_labels=True)
    assert by_path.label_zero == by_name.label_zero == "boundary"
    assert by_path.card is not None and by_path.card.name == "gala-train"
    assert by_path.voxel_size == by_name.voxel_size


def _objects_meet_only_across_zero():
    return blob_labels((8, 32, 32), cell=8)  # every object is enclosed by a one-voxel 0 boundary


def test_no_boundary_edge_is_refused(tmp_path):
    path = _h5(tmp_path / "v.h5", _objects_meet_only_across_zero())
    vol = open_volume(str(path), require_labels=True, label_zero="unlabelled")
    box = tuple(slice(0, n) for n in vol.shape)
    ds = PatchDataset(vol, box, (8, 16, 16), Normalizer("none"), length=8, seed=0)
    pos, neg = target_edge_counts(ds, 8)
    assert neg == 0 and pos > 0
    with pytest.raises(InputError, match="no boundary .*--label-zero boundary"):
        check_target_edges(ds, "v.h5", label_zero="unlabelled")
    vol_b = open_volume(str(path), require_labels=True, label_zero="boundary")
    ds_b = PatchDataset(vol_b, box, (8, 16, 16), Normalizer("none"), length=8, seed=0)
    pos_b, neg_b = check_target_edges(ds_b, "v.h5", label_zero="boundary")
    assert pos_b == pos and neg_b > 0


def test_unbalanced_targets_warn(tmp_path):
    lab = np.ones((8, 32, 32), np.uint64)
    lab[:, 0, 31] = 2  # one thin object: few boundary edges
    path = _h5(tmp_path / "u.h5", lab, "boundary")
    vol = open_volume(str(path), require_labels=True)
    ds = PatchDataset(vol, tuple(slice(0, n) for n in vol.shape), (8, 32, 32), Normalizer("none"), length=2, seed=0)
    seen = []
    check_target_edges(ds, "u.h5", label_zero="boundary", n=2, warn=seen.append)
    assert len(seen) == 1 and "unbalanced" in seen[0]


def test_pretrain_cli_refuses_ambiguous_labels_before_writing(tmp_path, capsys):
    path = _h5(tmp_path / "v.h5", blob_labels((16, 120, 120), cell=8), "boundary / unlabeled: ignore")
    out = tmp_path / "run"
    code = main(["pretrain", "--source", str(path), "--out", str(out), "--max-steps", "2", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "label_zero" in err[0] and not out.exists()
    code = main(["pretrain", "--source", str(path), "--out", str(out), "--max-steps", "2", "--quiet",
                 "--label-zero", "unlabelled"])
    err = capsys.readouterr().err
    assert code == 2 and "no boundary" in err and not out.exists()


def test_grow_box_and_validation_region():
    assert grow_box((slice(0, 50), slice(0, 100), slice(160, 200)), (16, 96, 96), (50, 100, 200)) == \
        (slice(0, 50), slice(0, 100), slice(104, 200))  # shifted to stay inside
    assert grow_box((slice(10, 20), slice(0, 4), slice(0, 4)), (4, 8, 8), (30, 6, 30)) == \
        (slice(10, 20), slice(0, 6), slice(0, 8))  # capped by the volume
    lab = blob_labels((8, 24, 40), cell=6)
    from neuroadda.data.volume import LabelledVolume, Volume

    vol = LabelledVolume("v", Volume(raw_from_labels(lab), "v", (1, 1, 1)),
                         Volume(lab, "v", (1, 1, 1), is_labels=True), (1, 1, 1))
    box = (slice(0, 8), slice(0, 24), slice(30, 40))
    raw, gt, ctx = validation_region(vol, box, (8, 16, 16))
    assert ctx == (slice(0, 8), slice(0, 24), slice(24, 40)) and raw.shape == gt.shape == (8, 24, 16)
    assert not gt[:, :, :6].any()  # outside the scored slab: ignored
    np.testing.assert_array_equal(gt[:, :, 6:], lab[:, :, 30:40])


class _Constant(torch.nn.Module):
    """A 'network' that predicts affinity ``p`` everywhere: it has learned nothing."""

    total_stride = (1, 1, 1)

    def __init__(self, p):
        super().__init__()
        self.logit = float(np.log(p / (1 - p)))
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return torch.full((x.shape[0], 3) + tuple(x.shape[2:]), self.logit) + self.w


def test_calibrate_flags_a_model_that_has_not_learned():
    lab = blob_labels((8, 32, 32), cell=8)
    raw = raw_from_labels(lab)
    cal = calibrate(_Constant(0.99), [(raw, lab)], Normalizer("none"), [0.1, 0.5, 0.9], (8, 16, 16))
    one = cal["one_segment_vi"]
    assert one > 1.0 and not cal["learned"]
    assert all(abs(r["vi"] - one) < 1e-9 for r in cal["table"])  # every threshold: one segment


def test_calibrate_learned_on_true_affinities_and_warns_at_table_edge():
    from neuroadda.data.affinities import affinities_from_labels

    lab = blob_labels((8, 32, 32), cell=8)
    affs, _ = affinities_from_labels(lab)

    class _Oracle(torch.nn.Module):
        total_stride = (1, 1, 1)

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):  # the true affinities as confident logits (x is the raw block itself)
            a = torch.from_numpy(affinities_from_labels(np.asarray(x[0, 0].round().numpy(), np.int64))[0])[None]
            return (a * 2 - 1) * 8 + self.w

    cal = calibrate(_Oracle(), [(lab.astype(np.float32), lab)], Normalizer("none"), [0.3, 0.5, 0.7], (8, 32, 32))
    assert cal["learned"] and min(r["vi"] for r in cal["table"]) < 0.2 * cal["one_segment_vi"]
    assert affs.shape[0] == 3 and cal["warning"] is None  # every threshold ties: no trend to warn about


def test_table_warning_only_for_a_trend_at_the_edge():
    def rows(vis):
        return [{"threshold": t, "vi": v} for t, v in zip([0.1, 0.5, 0.9], vis)]

    assert "largest" in table_warning(rows([3.0, 2.0, 1.0]), 0.9)
    assert "smallest" in table_warning(rows([1.0, 2.0, 3.0]), 0.1)
    assert table_warning(rows([2.0, 1.0, 3.0]), 0.5) is None
    assert table_warning(rows([1.0, 1.0, 3.0]), 0.1) is None  # tie with the neighbour


def test_not_learned_flag_travels_to_segment(tmp_path, capsys):
    from neuroadda.models.checkpoint import load_backbone, save_backbone
    from neuroadda.models.unet import AffinityUNet

    lab = blob_labels((8, 32, 32), cell=8)
    vol = _h5(tmp_path / "v.h5", lab, "boundary")
    net = AffinityUNet([4, 8], [(2, 2, 2)])
    meta = {"kind": "backbone", "voxel_size": [10.0, 10.0, 10.0], "patch_size": [8, 16, 16],
            "normalization": "zscore", "threshold": 0.5, "learned": False}
    ckpt = save_backbone(tmp_path / "model.pt", net, meta)
    assert load_backbone(ckpt)[1]["learned"] is False
    affs, seg = tmp_path / "a.zarr", tmp_path / "s.zarr"
    assert main(["predict", "--checkpoint", str(ckpt), "--input", str(vol), "--out", str(affs), "--quiet"]) == 0
    assert main(["segment", "--affinities", str(affs), "--out", str(seg)]) == 0
    assert "learned: false" in capsys.readouterr().err
