"""Bad input: one clear line naming the file/key/field, exit code 2, no traceback, nothing half-written."""

import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from neuroadda.cli.main import main

pytestmark = pytest.mark.integration  # the slow lane: pytest -m 'not integration' skips it


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, fragment", [
    (["evaluate", "--seg", "nope.zarr", "--gt", "gala-test"], "nope.zarr: no such file"),
    (["evaluate", "--seg", "{h5}:seg", "--gt", "gala-tset"], "did you mean gala-test"),
    (["evaluate", "--seg", "{h5}:missing", "--gt", "gala-test"], "no dataset 'missing'"),
    (["evaluate", "--seg", "{h5}:seg", "--gt", "gala-test"], "does not match ground truth"),
    (["evaluate", "--seg", "{h5}:fseg", "--gt", "{h5}:seg"], "must be integer labels"),
    (["evaluate", "--seg", "{h5}:seg", "--gt", "{h5}:zeros"], "empty labels"),
    (["pretrain", "--source", "{h5}", "--out", "{tmp}/o"], "{h5}: no dataset 'labels'"),
    (["pretrain", "--source", "gala-train", "--config", "{tmp}/bad.yaml"], "field 'train.max_stpes'"),
    (["predict", "--checkpoint", "{tmp}/bad.pt", "--input", "gala-test", "--out", "{tmp}/a.zarr"],
     "not a NeuroADDA backbone checkpoint"),
    (["segment", "--affinities", "{h5}:seg", "--out", "{tmp}/s.zarr"], "affinities must be (3, z, y, x)"),
    (["datasets", "fetch", "h01"], "cannot be fetched"),
])
def test_one_line_errors(tmp_path, capsys, argv, fragment):
    h5 = tmp_path / "in.h5"
    with h5py.File(h5, "w") as f:
        f["seg"] = np.ones((4, 8, 8), np.uint64)
        f["fseg"] = np.ones((4, 8, 8), np.float32)
        f["zeros"] = np.zeros((4, 8, 8), np.uint64)
        f["raw"] = np.zeros((4, 8, 8), np.uint8)  # no labels: pretraining needs them
    (tmp_path / "bad.yaml").write_text("train:\n  max_stpes: 3\n")
    torch.save({"state_dict": {}}, tmp_path / "bad.pt")
    argv = [a.format(h5=h5, tmp=tmp_path) for a in argv]
    code, out, err = _run(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert fragment.format(h5=h5, tmp=tmp_path) in lines[0]
    assert not list(tmp_path.glob("*.tmp")) and not (tmp_path / "a.zarr").exists()


def test_console_script_exit_code_and_help():
    r = subprocess.run([sys.executable, "-m", "neuroadda.cli.main", "evaluate", "--seg", "x.zarr", "--gt", "y.h5"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "x.zarr" in r.stderr
    r = subprocess.run([sys.executable, "-m", "neuroadda.cli.main", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "pretrain" in r.stdout and "evaluate" in r.stdout


def test_datasets_list_and_verify(capsys):
    code, out, _ = _run(capsys, "datasets", "list")
    assert code == 0 and "gala-test" in out and "cremi-a" in out and "bundled" in out
    code, out, _ = _run(capsys, "datasets", "verify", "gala-test", "isbi2012")
    assert code == 0 and out.count(": ok") == 2


# --- refused before any work: exit 2, one line, nothing on disk -------------------------------------------------

PRETRAIN = "model:\n  channels: [4, 8, 16]\ndata:\n  patch_size: [8, 16, 16]\ntrain:\n  max_steps: 2\n" \
           "  batch_size: 1\n  val_patches: 1\n  logger: none\n  thresholds: [0.3, 0.7]\n"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Tiny volumes (24x40x48, 10 nm): good labels, all 0, one object, no object in the pretraining validation
    slab (x >= 38) or in adapt's held-out slab (x >= 29); a backbone, configs, and samples on the all-0 volume."""
    from tests.conftest import ADAPT_CONFIG as CONFIG
    from tests.conftest import blob_labels, raw_from_labels
    from tests.conftest import tiny_backbone as _backbone

    d = tmp_path_factory.mktemp("bad_inputs")
    lab = blob_labels((24, 40, 48), cell=6, seed=0)
    no_val, no_held = lab.copy(), lab.copy()
    no_val[..., 38:] = 0
    no_held[..., 29:] = 0
    for name, labels in (("ok", lab), ("zeros", np.zeros_like(lab)), ("single", np.where(lab > 0, 7, 0)),
                         ("noval", no_val), ("noheld", no_held)):
        with h5py.File(d / f"{name}.h5", "w") as f:
            f["raw"], f["labels"] = raw_from_labels(lab), labels.astype(np.uint64)
            f.attrs["resolution_nm"] = [10.0, 10.0, 10.0]
    _backbone(d / "bb.pt", 0)
    (d / "adapt.yaml").write_text(CONFIG)
    (d / "pretrain.yaml").write_text(PRETRAIN)
    (d / "batch0.yaml").write_text(PRETRAIN.replace("batch_size: 1", "batch_size: 0"))
    (d / "patch0.yaml").write_text(PRETRAIN.replace("[8, 16, 16]", "[0, 16, 16]"))
    (d / "holdout.yaml").write_text(CONFIG.replace("holdout_fraction: 0.4", "holdout_fraction: 1.5"))
    (d / "thr.yaml").write_text(CONFIG.replace("thresholds: [0.3, 0.7]", "thresholds: [0.0, 0.7]"))
    (d / "exp.yaml").write_text(f"targets: [neuroprooof]\nsources: [{d / 'ok.h5'}]\nout: {d / 'o'}\n")
    (d / "demo.yaml").write_text("target: neuroproof\nsources: [gala-train, isbi2012]\nn: 0\n")
    for name in ("zeros", "single"):
        assert main(["select-samples", "--target", str(d / f"{name}.h5"), "--backbone", str(d / "bb.pt"), "--n", "2",
                     "--out", str(d / f"sel_{name}"), "--config", str(d / "adapt.yaml"), "--quiet"]) == 0
    return d


A = ["--config", "{d}/adapt.yaml", "--quiet"]
ADAPT = ["adapt", "--sources", "{d}/ok.h5", "--backbone", "{d}/ok.h5={d}/bb.pt", "--n", "1", "--seeds", "1", *A]
REFUSED = [
    ("pretrain-zeros", ["pretrain", "--source", "{d}/zeros.h5", "--config", "{d}/pretrain.yaml"],
     "zeros.h5:labels: labels hold no object (every voxel is 0)"),
    ("pretrain-single", ["pretrain", "--source", "{d}/single.h5", "--config", "{d}/pretrain.yaml"],
     "single.h5:labels: labels hold a single object (id 7)"),
    ("pretrain-val-slab", ["pretrain", "--source", "{d}/noval.h5", "--config", "{d}/pretrain.yaml"],
     "noval.h5:labels: labels of the threshold-choice slab in 0:24 x 0:40 x 38:48 hold no object"),
    ("pretrain-max-steps", ["pretrain", "--source", "{d}/ok.h5", "--max-steps", "-5"],
     "--max-steps -5: Input should be greater than or equal to 1"),
    ("pretrain-batch", ["pretrain", "--source", "{d}/ok.h5", "--config", "{d}/batch0.yaml"],
     "batch0.yaml: field 'train.batch_size'"),
    ("pretrain-patch", ["pretrain", "--source", "{d}/ok.h5", "--config", "{d}/patch0.yaml"],
     "patch0.yaml: field 'data.patch_size.0': Input should be greater than 0"),
    ("pretrain-missing", ["pretrain", "--source", "{d}/nope.h5"], "nope.h5: no such file"),
    ("pretrain-voxel", ["pretrain", "--source", "{d}/ok.h5", "--voxel-size", "0", "10", "10"],
     "argument --voxel-size: must be a number > 0, got 0"),
    ("finetune-zeros", ["finetune", "--target", "{d}/zeros.h5", "--samples", "{d}/sel_zeros/samples.json",
                        "--backbone", "{d}/bb.pt", *A], "]: all labels are 0 (unlabelled): nothing to train on"),
    ("finetune-single", ["finetune", "--target", "{d}/single.h5", "--samples", "{d}/sel_single/samples.json",
                         "--backbone", "{d}/bb.pt", *A], "the samples' labels hold a single object (id 7) in all"),
    ("finetune-max-steps", ["finetune", "--target", "{d}/ok.h5", "--samples", "{d}/sel_zeros/samples.json",
                            "--backbone", "{d}/bb.pt", "--max-steps", "0", *A],
     "--max-steps 0: Input should be greater than"),
    ("select-samples-n", ["select-samples", "--target", "{d}/ok.h5", "--backbone", "{d}/bb.pt", "--n", "0", *A],
     "argument --n: must be an integer >= 1, got 0"),
    ("select-samples-pool", ["select-samples", "--target", "{d}/ok.h5", "--backbone", "{d}/bb.pt", "--n", "99", *A],
     "cannot select 99 samples"),
    ("select-samples-ckpt", ["select-samples", "--target", "{d}/ok.h5", "--backbone", "{d}/adapt.yaml", *A],
     "adapt.yaml: not a loadable torch checkpoint"),
    ("select-samples-strategy", ["select-samples", "--target", "{d}/ok.h5", "--backbone", "{d}/bb.pt",
                                 "--strategy", "median", *A], "--strategy median: Value error, unknown strategy"),
    ("select-source-target", ["select-source", "--target", "neuroprooof", "--sources", "{d}/ok.h5", "--backbone",
                              "{d}/ok.h5={d}/bb.pt"], "did you mean neuroproof"),
    ("select-source-perms", ["select-source", "--target", "{d}/ok.h5", "--sources", "{d}/ok.h5", "--permutations",
                             "-1"], "argument --permutations: must be an integer >= 0, got -1"),
    ("select-source-space", ["select-source", "--target", "{d}/ok.h5", "--sources", "{d}/ok.h5", "--space", "pca:0"],
     "argument --space: must be standardize, none or pca:K (K >= 1), got 'pca:0'"),
    ("select-source-patches", ["select-source", "--target", "{d}/ok.h5", "--sources", "{d}/ok.h5", "--patches", "2"],
     "argument --patches: must be an integer >= 4, got 2"),
    ("adapt-zeros", [*ADAPT, "--target", "{d}/zeros.h5"], "zeros.h5:labels: labels hold no object"),
    ("adapt-single", [*ADAPT, "--target", "{d}/single.h5"], "single.h5:labels: labels hold a single object"),
    ("adapt-heldout", [*ADAPT, "--target", "{d}/noheld.h5"],
     "noheld.h5:labels: labels of the held-out region in 0:24 x 0:40 x 29:48 hold no object"),
    ("adapt-source", [*ADAPT, "--target", "{d}/ok.h5", "--sources", "{d}/ok.h5", "{d}/nope.h5", "--backbone",
                      "{d}/nope.h5={d}/bb.pt"],
     "--sources: '{d}/nope.h5' is neither a dataset name nor an existing path"),
    ("adapt-ckpt", [*ADAPT, "--target", "{d}/ok.h5", "--backbone", "{d}/ok.h5={d}/adapt.yaml"],
     "adapt.yaml: not a loadable torch checkpoint"),
    ("adapt-n", [*ADAPT, "--target", "{d}/ok.h5", "--n", "0"], "argument --n: must be an integer >= 1"),
    ("adapt-seeds", [*ADAPT, "--target", "{d}/ok.h5", "--seeds", "0"], "argument --seeds: must be an integer >= 1"),
    ("adapt-max-steps", [*ADAPT, "--target", "{d}/ok.h5", "--max-steps", "-5"], "--max-steps -5: Input should be"),
    ("adapt-holdout", [*ADAPT, "--target", "{d}/ok.h5", "--config", "{d}/holdout.yaml"],
     "holdout.yaml: field 'active.holdout_fraction'"),
    ("adapt-thresholds", [*ADAPT, "--target", "{d}/ok.h5", "--config", "{d}/thr.yaml"],
     "thr.yaml: field 'finetune.thresholds'"),
    ("predict-input", ["predict", "--checkpoint", "{d}/bb.pt", "--input", "{d}/nope.h5"], "nope.h5: no such file"),
    ("predict-overlap", ["predict", "--checkpoint", "{d}/bb.pt", "--input", "{d}/ok.h5", "--overlap", "1.5"],
     "argument --overlap: must be a number in [0, 1), got 1.5"),
    ("predict-block", ["predict", "--checkpoint", "{d}/bb.pt", "--input", "{d}/ok.h5", "--block-shape", "0", "8", "8"],
     "argument --block-shape: must be an integer >= 1, got 0"),
    ("segment-threshold", ["segment", "--affinities", "{d}/ok.h5:raw", "--threshold", "1.5"],
     "argument --threshold: must be a number in (0, 1), got 1.5"),
    ("mmd-matrix-patches", ["mmd-matrix", "--datasets", "{d}/ok.h5", "{d}/single.h5", "--encoder", "{d}/bb.pt",
                            "--patches", "1"], "argument --patches: must be an integer >= 4, got 1"),
    ("mmd-matrix-encoder", ["mmd-matrix", "--datasets", "{d}/ok.h5", "{d}/single.h5", "--encoder", "{d}/adapt.yaml"],
     "adapt.yaml: not a loadable torch checkpoint"),
    ("phylogeny-matrix", ["phylogeny", "--matrix", "{d}/nope.json"], "nope.json: MMD matrix file not found"),
    ("demo-config", ["demo", "--config", "{d}/demo.yaml"], "demo.yaml: field 'n': Input should be greater than"),
]


@pytest.mark.parametrize("argv, fragment", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused_before_any_work(inputs, tmp_path, capsys, argv, fragment):
    out = tmp_path / "out"
    argv = [a.format(d=inputs) for a in argv]
    argv += ["--out", str(out)]
    code, _, err = _run(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert fragment.format(d=inputs) in lines[0]
    assert not out.exists(), f"{argv[0]} left {out} behind"
    assert not list(inputs.rglob("*.tmp")) and not (inputs / "o").exists()


@pytest.mark.parametrize("command", ["experiment", "submit"])
def test_experiment_grid_refused_before_any_work(inputs, capsys, command):
    code, _, err = _run(capsys, command, "--config", str(inputs / "exp.yaml"),
                        *(["--dry-run"] if command == "submit" else []))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "did you mean neuroproof" in lines[0], err
    assert not (inputs / "o").exists()


def test_demo_without_the_bundled_crops_says_where_to_put_them(tmp_path, capsys, monkeypatch):
    """Cards without their crops (an installed wheel): one line naming the data home, nothing written."""
    import shutil

    from neuroadda.data.cards import datasets_dir

    cards = tmp_path / "cards"
    shutil.copytree(datasets_dir(), cards, ignore=shutil.ignore_patterns("data", "backbones"))
    monkeypatch.setenv("NEUROADDA_DATASETS", str(cards))
    monkeypatch.setenv("NEUROADDA_DATA", str(tmp_path / "home"))
    code, _, err = _run(capsys, "demo", "--out", str(tmp_path / "demo"))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert "training_sample2.h5 is missing" in lines[0] and str(tmp_path / "home") in lines[0]
    assert "datasets/data/drosophila_medulla_fibsem_neuroproof" in lines[0]
    assert not (tmp_path / "demo").exists() and not (tmp_path / "home").exists()
    code, out, _ = _run(capsys, "datasets", "list")
    assert code == 0 and "bundled, not here" in out and str(tmp_path / "home") in out.strip().splitlines()[-1]
