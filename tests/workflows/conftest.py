"""Fixtures of the workflow tests: tiny synthetic datasets with their own cards for the transfer study."""

import h5py
import pytest

from tests.conftest import blob_labels, raw_from_labels

CARD = """name: {name}
description: tiny synthetic volume
organism: none
species: Drosophila melanogaster
tissue: none
modality: {modality}
voxel_size_nm: [10.0, 10.0, 10.0]
files:
  - filename: {name}.h5
raw: {{file: {name}.h5, key: raw}}
{labels}labels_kind: 3d_instance
label_zero: boundary
license: CC0
citation: none
local_dir: data
"""


@pytest.fixture
def study_env(tmp_path, monkeypatch):
    cards = tmp_path / "cards"
    (cards / "data").mkdir(parents=True)
    for k, (name, modality) in enumerate([("a", "FIB-SEM"), ("b", "FIB-SEM"), ("c", "ssTEM"), ("raw-only", "SBEM")]):
        lab = blob_labels((16, 48, 48), cell=6 + 2 * k, seed=k)
        with h5py.File(cards / "data" / f"{name}.h5", "w") as f:
            f["raw"] = raw_from_labels(lab, seed=k)
            if name != "raw-only":
                f["labels"] = lab
        labels = "" if name == "raw-only" else f"labels: {{file: {name}.h5, key: labels}}\n"
        (cards / f"{name}.yaml").write_text(CARD.format(name=name, modality=modality, labels=labels))
    monkeypatch.setenv("NEUROADDA_DATASETS", str(cards))
    pre = tmp_path / "pretrain.yaml"
    pre.write_text("model:\n  channels: [4, 8]\ndata:\n  patch_size: [8, 16, 16]\ntrain:\n  max_steps: 3\n"
                   "  batch_size: 1\n  val_patches: 0\n  thresholds: [0.3, 0.7]\n  checkpoint_every: 0\n")
    ada = tmp_path / "adapt.yaml"
    ada.write_text("active:\n  candidate_size: [8, 16, 16]\n  holdout_fraction: 0.4\nfinetune:\n  max_steps: 2\n"
                   "  batch_size: 1\n  thresholds: [0.3, 0.7]\n  logger: none\n  checkpoint_every: 0\n")
    cfg = tmp_path / "study.yaml"
    cfg.write_text(f"targets:\n  - name: a\n  - name: b\nsources: [a, b, c]\nbudgets: [1]\nseeds: 2\n"
                   "estimators: [mmd2, compat+entropy, zero-shot-vi]\n"
                   f"backbones: {tmp_path / 'bb'}\npretrain_config: {pre}\nadapt_config: {ada}\n"
                   f"out: {tmp_path / 'study'}\n")
    return tmp_path, cfg
