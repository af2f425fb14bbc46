"""The figure of docs/how-to/lab-volume.md: an exported sample's raw with the backbone's proposal over it, from a
real ``select-samples`` run (bench/lab_path.py's samples folder by default).

With ``--napari`` (napari installed with a Qt binding, in a display: a virtual one from Xvfb does) the sample is
opened the way an annotator opens it (image layer + labels layer) and napari's own screenshot is saved; without
it, matplotlib draws the middle slice of raw, proposal and both overlaid. (QT_QPA_PLATFORM=offscreen does not
work for napari here: Qt's offscreen platform gives vispy no OpenGL context, so the canvas cannot be drawn.)

    python bench/proposal_figure.py --name sample_02 --out docs/img/lab_proposal.png
    xvfb-run -a python bench/proposal_figure.py --napari --name sample_02 --out docs/img/lab_proposal_napari.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import tifffile


def napari_screenshot(raw: np.ndarray, prop: np.ndarray, out: Path) -> None:
    import napari

    viewer = napari.Viewer(show=False)
    viewer.add_image(raw, name="raw")
    viewer.add_labels(prop, name="labels (proposal)", opacity=0.45)
    viewer.dims.set_point(0, raw.shape[0] // 2)
    viewer.window.resize(900, 900)
    viewer.reset_view()
    viewer.screenshot(str(out), canvas_only=False, flash=False)
    viewer.close()


def matplotlib_figure(raw: np.ndarray, prop: np.ndarray, out: Path, title: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from neuroadda.report import label_colors, pyplot, save_figure

    plt = pyplot()
    z = raw.shape[0] // 2
    colors = label_colors(prop[z])
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.9), layout="constrained")
    axes[0].imshow(raw[z], cmap="gray")
    axes[0].set_title("raw (sample_XX.tif)", fontsize=9)
    axes[1].imshow(colors)
    axes[1].set_title("proposal (sample_XX_proposal.tif)", fontsize=9)
    axes[2].imshow(raw[z], cmap="gray")
    axes[2].imshow(colors, alpha=0.4)
    axes[2].set_title("what the annotator corrects: raw + proposal", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    save_figure(fig, out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", default="/tmp/neuroadda_bench_lab_path/1024/samples")
    ap.add_argument("--name", default="sample_00")
    ap.add_argument("--out", default="docs/img/lab_proposal.png")
    ap.add_argument("--napari", action="store_true")
    args = ap.parse_args()
    d = Path(args.samples) / "annotate"
    raw = tifffile.imread(d / f"{args.name}.tif")
    prop = tifffile.imread(d / f"{args.name}_proposal.tif")
    out = Path(args.out)
    if args.napari:
        napari_screenshot(raw, prop, out)
    else:
        matplotlib_figure(raw, prop, out, f"{args.name}: {raw.shape[0]}x{raw.shape[1]}x{raw.shape[2]} voxels, middle "
                                          f"slice; {int(prop.max())} objects proposed by the backbone")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
