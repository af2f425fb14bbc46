"""Bad input: one clear line naming the file/key/field, exit code 2, no traceback, nothing half-written."""

import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from neuroadda.cli.main import main


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
