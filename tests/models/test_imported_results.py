"""The committed fine-tuning results of imported models (bench/imported_finetune.py) and the table in
docs/how-to/own-models.md, recomputed from the per-seed VIs with numpy and scipy."""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results" / "imported"
PAGE = ROOT / "docs" / "how-to" / "own-models.md"


def _load(name):
    path = RESULTS / name
    if not path.is_file():
        pytest.skip(f"{path} is not committed")
    return json.loads(path.read_text())


@pytest.mark.parametrize("name", ["finetune_neuroproof.json", "finetune_neuroproof_plain.json"])
def test_paired_statistics_recomputed(name):
    r = _load(name)
    for key, field in (("finetuned_minus_zero_shot", "vi"),
                       ("finetuned_minus_zero_shot_at_its_threshold", "vi_at_zero_shot_threshold")):
        for arm, d in r[key].items():
            diffs = np.array(r["arms"][arm][field]) - r["zero_shot"][arm]["vi"]
            np.testing.assert_allclose(d["per_seed"], diffs, atol=1e-12)
            assert d["mean"] == pytest.approx(diffs.mean()) and d["ci95"][0] <= diffs.mean() <= d["ci95"][1]
            assert diffs.min() - 1e-12 <= d["ci95"][0] and d["ci95"][1] <= diffs.max() + 1e-12  # means of resamples
            assert d["wilcoxon_p"] == pytest.approx(stats.wilcoxon(diffs, method="exact").pvalue)
    for arm in r["arms"]:
        vi = np.array(r["arms"][arm]["vi"])
        assert r["arms"][arm]["mean_sd"] == pytest.approx([vi.mean(), vi.std(ddof=1)])
        split, merge = np.array(r["arms"][arm]["vi_split"]), np.array(r["arms"][arm]["vi_merge"])
        np.testing.assert_allclose(split + merge, vi, atol=1e-9)


def test_the_page_shows_the_committed_numbers():
    r = _load("finetune_neuroproof.json")
    page = PAGE.read_text()
    vi = np.array(r["arms"]["package"]["vi"])
    d = vi - r["zero_shot"]["package"]["vi"]
    ci = r["finetuned_minus_zero_shot"]["package"]["ci95"]
    for text in (f"{r['zero_shot']['package']['vi']:.3f}", f"{vi.mean():.3f} ± {vi.std(ddof=1):.3f}",
                 ", ".join(f"{v:.3f}" for v in vi), f"{d.mean():+.3f}".replace("-", "−"),
                 f"[{ci[0]:+.3f}, {ci[1]:+.3f}]".replace("-", "−")):
        assert text in page, text
    assert r["arms"]["native"]["vi"] == r["arms"]["package"]["vi"]  # the page says: identical at every seed
