"""``neuroadda export``: the package passes bioimageio.core's own test offline, and says what it should."""

import h5py
import numpy as np
import pytest
import yaml

from neuroadda.cli.main import main
from neuroadda.data.cards import get_card
from neuroadda.paths import datasets_dir
from neuroadda.workflows.export import check_package, export_package, package_name


@pytest.mark.integration  # bioimageio.core runs every weight format at 6 input sizes: ~5-10 s
def test_a_tiny_backbone_package_passes_bioimageios_test(foreign, tmp_path):
    (path,) = export_package(foreign.native, tmp_path / "pkg", sample=foreign.source)
    passed, why = check_package(path)
    assert passed, why


def test_without_training_data_the_package_normalises_per_tensor_and_says_so(foreign, tmp_path, capsys):
    code = main(["export", "--checkpoint", foreign.native, "--out", str(tmp_path / "pkg")])  # its source 'x' is no data
    err = capsys.readouterr().err
    rdf = yaml.safe_load((tmp_path / "pkg" / "rdf.yaml").read_text())
    assert code == 0 and "no training data at hand" in err
    assert [p["id"] for p in rdf["inputs"][0]["preprocessing"] if p["id"] != "ensure_dtype"] == [
        "zero_mean_unit_variance"]


def test_package_names_keep_to_bioimageios_characters():
    assert package_name("NeuroADDA finetuned /data/my vol.h5:raw") == "NeuroADDA finetuned -data-my vol-h5-raw"
    assert len(package_name("x" * 200)) == 64 and len(package_name("ab")) >= 5


@pytest.mark.integration
def test_the_demo_gala_backbone_exports_and_passes_bioimageios_test_offline(tmp_path):
    ckpt = datasets_dir() / "backbones" / "gala-train.pt"
    paths = export_package(ckpt, tmp_path / "gala", zip_too=True)
    for path in paths:
        passed, why = check_package(path)
        assert passed, why
    rdf = yaml.safe_load((tmp_path / "gala" / "rdf.yaml").read_text())
    card = get_card("gala-train")
    with h5py.File(card.file_path(card.files[0].filename), "r") as f:
        raw = f["raw"][:].astype(np.float64)  # 1 M voxels: the normaliser samples all of them
    (fixed,) = [p["kwargs"] for p in rdf["inputs"][0]["preprocessing"] if p["id"] == "fixed_zero_mean_unit_variance"]
    assert fixed["mean"] == pytest.approx(raw.mean(), rel=1e-5) and fixed["std"] == pytest.approx(raw.std(), rel=1e-5)
    ours = rdf["config"]["neuroadda"]
    assert ours["threshold"] == 0.7 and ours["voxel_size"] == [10.0, 10.0, 10.0]
    assert ours["training_card"]["name"] == "gala-train" and ours["code_version"]
    assert {c.get("doi") for c in rdf["cite"]} >= {"10.48550/arXiv.2503.06196", "10.1371/journal.pone.0071715"}
    assert (tmp_path / "gala" / "training_card.yaml").is_file() and "# Validation" in (
        tmp_path / "gala" / "README.md").read_text()
