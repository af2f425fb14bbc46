"""The built wheel works from any folder: cards, configs, SLURM templates and demo backbones ship inside it
(``neuroadda/_data``), the bundled crops do not, and ``datasets list`` / ``demo`` say where to put them.

The wheel is built (with the sdist, both checked by twine) from a copy of the source tree, installed without
dependencies into a fresh venv whose only link to the project venv is a ``.pth`` line naming its
site-packages (for torch and the rest; ``.pth`` files there, such as the editable install's, are not run),
and run with no ``PYTHONPATH`` from an empty folder."""

from __future__ import annotations

import importlib.util
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CROPS = REPO / "datasets" / "data"

pytestmark = pytest.mark.integration


def _copy_source(dest: Path) -> Path:
    """The files a release is built from (no crops, runs, caches or build leftovers)."""
    skip = shutil.ignore_patterns("*.h5", "__pycache__", "*.egg-info", "build", "dist", "runs", ".venv", ".git*",
                                  ".pytest_cache", "lightning_logs", "wandb")
    dest.mkdir()
    for name in ("neuroadda", "datasets", "configs", "slurm"):
        shutil.copytree(REPO / name, dest / name, ignore=skip)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv bin folder, environment without PYTHONPATH, dist folder) with the freshly built wheel installed."""
    for mod in ("build", "twine"):
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"'{mod}' is not installed (pip install -e '.[dev]')")
    tmp = tmp_path_factory.mktemp("pkg")
    src = _copy_source(tmp / "src")
    dist = tmp / "dist"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NEUROADDA_DATASETS")}
    run = lambda *cmd, **kw: subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, **kw)  # noqa: E731
    res = run(sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(src))
    assert res.returncode == 0, res.stderr[-3000:]
    res = run(sys.executable, "-m", "twine", "check", "--strict", *map(str, sorted(dist.iterdir())))
    assert res.returncode == 0 and res.stdout.count("PASSED") == 2, res.stdout + res.stderr
    venv = tmp / "venv"
    res = run(sys.executable, "-m", "venv", "--without-pip", str(venv))
    assert res.returncode == 0, res.stderr
    py = venv / "bin" / "python"
    (wheel,) = dist.glob("*.whl")
    res = run(sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q", str(wheel))
    assert res.returncode == 0, res.stderr[-3000:]
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, env=env, check=True).stdout.strip()
    deps = [p for p in site.getsitepackages() if Path(p).is_dir()]
    Path(purelib, "_project_deps.pth").write_text("\n".join(deps) + "\n")
    return venv / "bin", env, dist


def _in_empty_folder(installed, tmp_path, *argv, data_home=None):
    bin_dir, env, _ = installed
    work = tmp_path / "empty"
    work.mkdir(exist_ok=True)
    env = {**env, "NEUROADDA_DATA": str(data_home or tmp_path / "no-data"), "HOME": str(tmp_path)}
    return subprocess.run([str(bin_dir / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=300, env=env,
                          cwd=work)


def test_wheel_holds_the_package_data_and_no_crops(installed):
    import zipfile

    _, _, dist = installed
    (wheel,) = dist.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    cards = sorted(p.name for p in (REPO / "datasets").glob("*.yaml"))
    assert cards and all(f"neuroadda/_data/datasets/{c}" in names for c in cards)  # phylogeny.yaml included
    for rel in ("configs/demo.yaml", "configs/pretrain.yaml", "configs/experiment.yaml", "slurm/array.sbatch",
                "slurm/aggregate.sbatch", "datasets/backbones/isbi2012.pt", "datasets/data/README.md"):
        assert f"neuroadda/_data/{rel}" in names, rel
    assert not [n for n in names if n.endswith(".h5")]
    (sdist,) = dist.glob("*.tar.gz")
    assert sdist.stat().st_size < 5e6 and wheel.stat().st_size < 5e6  # crops (~50 MB) stay out of both


def test_installed_package_reads_its_own_data(installed, tmp_path):
    code = ("import neuroadda, neuroadda.workflows.demo as d, neuroadda.paths as p\n"
            "from neuroadda.config import DemoConfig, load_config\n"
            "cfg = load_config(d.DEFAULT_CONFIG, DemoConfig)\n"
            "print(neuroadda.__file__); print(p.resource_root()); print(p.checkout_root())\n"
            "print(all(x.is_file() for x in d.backbone_paths(cfg).values()))\n"
            "from neuroadda.models.checkpoint import code_version; print(code_version())")
    res = _in_empty_folder(installed, tmp_path, "python", "-c", code)
    assert res.returncode == 0, res.stderr[-2000:]
    module, root, checkout, backbones, version = res.stdout.split()
    venv = installed[0].parent
    assert Path(module).is_relative_to(venv) and Path(root) == Path(module).parent / "_data"
    assert checkout == "None" and backbones == "True" and "+g" not in version  # not this repository's git


def test_datasets_list_from_an_empty_folder_says_where_the_crops_go(installed, tmp_path):
    res = _in_empty_folder(installed, tmp_path, "neuroadda", "datasets", "list")
    assert res.returncode == 0, res.stderr
    assert "cremi-a" in res.stdout and "neuroproof" in res.stdout and "h01" in res.stdout
    assert "bundled, not here" in res.stdout
    hint = res.stdout.strip().splitlines()[-1]
    assert "datasets/data/drosophila_medulla_fibsem_neuroproof" in hint and str(tmp_path / "no-data") in hint
    if CROPS.is_dir() and any(CROPS.rglob("*.h5")):  # the checkout's crops, through $NEUROADDA_DATA
        res = _in_empty_folder(installed, tmp_path, "neuroadda", "datasets", "list", data_home=CROPS)
        row = next(line for line in res.stdout.splitlines() if line.startswith("neuroproof "))
        missing = [ln for ln in res.stdout.splitlines() if ln.rstrip().endswith("bundled, not here")
                   and not ln.rstrip().endswith("not bundled, not here")]  # local-only cards may be absent
        assert res.returncode == 0 and row.rstrip().endswith("bundled") and not missing


def test_demo_help_and_missing_crops_from_an_empty_folder(installed, tmp_path):
    res = _in_empty_folder(installed, tmp_path, "neuroadda", "demo", "--help")
    assert res.returncode == 0 and "--retrain" in res.stdout, res.stderr
    res = _in_empty_folder(installed, tmp_path, "neuroadda", "demo", "--out", "demo-out")
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert "bundled crops are not part of the installed package" in lines[0] and "NEUROADDA_DATA" in lines[0]
    assert not (tmp_path / "empty" / "demo-out").exists()


def test_submit_dry_run_with_the_shipped_experiment_config(installed, tmp_path):
    """configs/experiment.yaml resolves to the shipped copy from any folder; templates come from the wheel."""
    res = _in_empty_folder(installed, tmp_path, "neuroadda", "submit", "--config", "configs/experiment.yaml",
                           "--dry-run")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "--dependency=afterok:" in res.stdout and "pretrain" in res.stdout
    sdir = tmp_path / "empty" / "runs" / "experiment" / "slurm"
    assert (sdir / "neuroproof.sbatch").is_file() and (sdir / "pretrain.sbatch").is_file()
