"""Cross-species distances: do MMD² distances between EM volumes follow the species or the microscope?

Runs, for every bundled volume (5 Drosophila crops with labels, 3 raw-only crops: mouse, human, Platynereis),
``neuroadda mmd-matrix`` in ONE encoder at ONE voxel size, then ``neuroadda phylogeny`` (Mantel test of MMD²
against TimeTree divergence times, and partial Mantel tests given the imaging modality), for three patch
seeds, plus one sensitivity run at a finer grid. Prints a summary table; ``--docs`` also writes the figures to
docs/img/cross_species_*.png and the JSON to docs/results/cross_species/.

    python bench/cross_species.py [--encoder CKPT] [--docs]      # ~2 min on 2 CPU cores

Voxel size: 50 x 20 x 20 nm (z, y, x) is the coarsest grid of all volumes (ssTEM sections are 50 nm, the
Platynereis pixels 20 nm), so every volume is only ever downsampled, never interpolated up. Patch 8 x 48 x 48
(0.4 x 0.96 x 0.96 µm) is the largest multiple of the encoder's stride (8, 8, 8) that fits the smallest volume
there (gala: 10 x 50 x 100).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATASETS = ["neuroproof", "gala-train", "gala-test", "isbi2012", "vnc-gerhard2013",
            "kasthuri2015-mouse", "h01-crop", "platynereis-vergara2021"]
MAIN = dict(voxel=(50, 20, 20), patch=(8, 48, 48))
FINER = dict(voxel=(50, 10, 10), patch=(8, 96, 96))  # Platynereis upsampled 2x in-plane here


def run_one(encoder, voxel, patch, seed, patches, permutations, out: Path) -> dict:
    from neuroadda.cli.main import main

    args = ["mmd-matrix", "--datasets", *DATASETS, "--encoder", str(encoder), "--voxel-size", *map(str, voxel),
            "--patch-size", *map(str, patch), "--patches", str(patches), "--seed", str(seed), "--out", str(out),
            "--quiet"]
    print("$ neuroadda " + " ".join(args), flush=True)
    assert main(args) == 0
    assert main(["phylogeny", "--matrix", str(out / "mmd_matrix.json"), "--permutations", str(permutations)]) == 0
    return json.loads((out / "phylogeny.json").read_text())


def gradient_energy(voxel) -> np.ndarray:
    """Mean in-plane gradient magnitude (Sobel) of each z-scored volume at ``voxel``: how fine its texture is."""
    from scipy import ndimage

    from neuroadda.data.volume import open_volume

    out = []
    for d in DATASETS:
        v = open_volume(d, labels_key=None, resample_to=voxel)
        a = v.raw.read(tuple(slice(0, n) for n in v.shape)).astype(np.float64)
        a = (a - a.mean()) / a.std()
        out.append(np.mean([np.hypot(ndimage.sobel(s, 0), ndimage.sobel(s, 1)).mean() for s in a]))
    return np.array(out)


def plot_crops(voxel, path: Path) -> None:
    """One central xy section of each volume at ``voxel``, same physical field of view (the smallest crop's)."""
    from neuroadda.data.volume import open_volume
    from neuroadda.report import pyplot
    from neuroadda.selection.matrix import _label

    vols = [open_volume(d, labels_key=None, resample_to=voxel) for d in DATASETS]
    side = min(min(v.shape[1:]) for v in vols)
    plt = pyplot()
    fig, axes = plt.subplots(2, 4, figsize=(12, 6.6), layout="constrained")
    for ax, d, v in zip(axes.ravel(), DATASETS, vols):
        z, y, x = (n // 2 for n in v.shape)
        img = v.raw.read((slice(z, z + 1), slice(y - side // 2, y - side // 2 + side),
                          slice(x - side // 2, x - side // 2 + side)))[0]
        ax.imshow(img, cmap="gray")
        ax.set_title(_label(d), fontsize=9)
        ax.axis("off")
    fig.suptitle(f"central xy section of each volume at {'x'.join(map(str, voxel))} nm "
                 f"({side * voxel[1] / 1000:.2f} µm field of view)")
    from neuroadda.report import save_figure

    save_figure(fig, path)


def summarize(res: dict) -> dict:
    """The numbers the README quotes, from one phylogeny.json."""
    fine, coarse = res["modality"]["fine"], res["modality"]["coarse"]
    pick = lambda d: {k: (d[k]["r"], d[k]["p_value"]) for k in ("spearman", "pearson")}  # noqa: E731
    m, div, mod = np.array(res["mmd2"]), np.array(res["divergence_mya"]), np.array(fine["classes"], dtype=object)
    iu = np.triu_indices(len(m), 1)
    same_sp, same_mod = div[iu] == 0, (mod[:, None] == mod[None, :])[iu]
    groups = {"same species, same modality": same_sp & same_mod, "same species, other modality": same_sp & ~same_mod,
              "other species (always other modality)": ~same_sp}
    return {"mantel_divergence": pick(res["mantel"]),
            "partial_divergence_given_modality": pick(fine["partial_divergence_given_modality"]),
            "mantel_modality": pick(fine["mantel_modality"]),
            "partial_modality_given_divergence": pick(fine["partial_modality_given_divergence"]),
            "coarse_mantel_modality": pick(coarse["mantel_modality"]),
            "coarse_partial_divergence_given_modality": pick(coarse["partial_divergence_given_modality"]),
            "coarse_partial_modality_given_divergence": pick(coarse["partial_modality_given_divergence"]),
            "mean_mmd2_by_pair_group": {k: [float(m[iu][g].mean()), int(g.sum())] for k, g in groups.items()},
            "exact": res["mantel"]["spearman"]["exact"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--encoder", default="datasets/backbones/gala-train.pt")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--patches", type=int, default=256)
    p.add_argument("--permutations", type=int, default=9999, help="unused for n <= 8 datasets (exact test)")
    p.add_argument("--out", default="runs/cross_species")
    p.add_argument("--docs", action="store_true", help="write figures to docs/img and JSON to docs/results")
    a = p.parse_args()
    os.chdir(ROOT)  # paths (and those recorded in the JSON) are relative to the repository root
    out = Path(a.out)
    from neuroadda.selection.phylogeny import mantel_test

    runs = {}
    for s in a.seeds:
        runs[f"50x20x20 seed {s}"] = run_one(a.encoder, MAIN["voxel"], MAIN["patch"], s, a.patches,
                                             a.permutations, out / f"main_seed{s}")
    runs["50x10x10 seed 0"] = run_one(a.encoder, FINER["voxel"], FINER["patch"], 0, a.patches, a.permutations,
                                      out / "finer_seed0")
    grad = gradient_energy(MAIN["voxel"])
    gdist = np.abs(grad[:, None] - grad[None, :])
    summary = {"datasets": DATASETS, "encoder": a.encoder, "patches_per_volume": a.patches,
               "settings": {"main": MAIN, "finer": FINER}, "runs": {}}
    for name, res in runs.items():
        summary["runs"][name] = summarize(res)
        g = mantel_test(np.array(res["mmd2"]), gdist)
        summary["runs"][name]["exploratory_mantel_gradient_energy"] = (g["r"], g["p_value"])
    summary["gradient_energy"] = dict(zip(DATASETS, grad.round(3).tolist()))
    mats = {k: np.array(r["mmd2"]) for k, r in runs.items()}
    names = list(mats)  # is the matrix itself reproducible across patch seeds and grids?
    summary["matrix_agreement_spearman"] = {f"{a} vs {b}": mantel_test(mats[a], mats[b])["r"]
                                            for i, a in enumerate(names) for b in names[i + 1:]}

    f = lambda rp: f"{rp[0]:+.3f} (p {rp[1]:.3f})"  # noqa: E731
    print("\nSpearman r (exact permutation p, one-sided) of pairwise MMD² with: divergence time; divergence given "
          "modality; 'other modality'; 'other modality' given divergence. Modality as 5 classes / 2 classes.\n")
    print("| run | ~ divergence | ~ divergence given modality (5 / 2) | ~ modality (5 / 2) "
          "| ~ modality given divergence (5 / 2) | exploratory: ~ Δ gradient energy |")
    print("|---|---|---|---|---|---|")
    for name, s in summary["runs"].items():
        two = lambda k, s=s: f"{f(s[k]['spearman'])} / {f(s['coarse_' + k]['spearman'])}"  # noqa: E731
        print(f"| {name} | {f(s['mantel_divergence']['spearman'])} | {two('partial_divergence_given_modality')} "
              f"| {two('mantel_modality')} | {two('partial_modality_given_divergence')} "
              f"| {f(s['exploratory_mantel_gradient_energy'])} |")
    print("\nmean MMD² by pair group (seed 0):",
          json.dumps(summary["runs"]["50x20x20 seed 0"]["mean_mmd2_by_pair_group"]))
    print("gradient energy:", json.dumps(summary["gradient_energy"]))
    print("agreement of the MMD² matrices (Spearman r of their triangles):",
          json.dumps({k: round(v, 3) for k, v in summary["matrix_agreement_spearman"].items()}))
    from neuroadda.report import write_json

    write_json(out / "summary.json", summary)
    plot_crops(MAIN["voxel"], out / "crops.png")
    if a.docs:
        img, res_dir = ROOT / "docs" / "img", ROOT / "docs" / "results" / "cross_species"
        first = out / f"main_seed{a.seeds[0]}"
        for src, dst in ((first / "mmd_matrix.png", "cross_species_mmd_matrix.png"),
                         (first / "mmd_dendrogram.png", "cross_species_dendrogram.png"),
                         (first / "phylogeny.png", "cross_species_phylogeny.png"),
                         (out / "crops.png", "cross_species_crops.png")):
            shutil.copyfile(src, img / dst)
        res_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / "summary.json", res_dir / "summary.json")
        for name in [f"main_seed{s}" for s in a.seeds] + ["finer_seed0"]:
            for j in ("mmd_matrix.json", "phylogeny.json"):  # paths relative to the repository root
                text = (out / name / j).read_text().replace(str(ROOT) + os.sep, "")
                (res_dir / f"{name}_{j}").write_text(text)
        print(f"wrote docs/img/cross_species_*.png and {res_dir.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
