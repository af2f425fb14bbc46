"""Writing results: JSON and figures, atomically (temp name, then rename), so nothing is ever half-written."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_json(path: str | Path, data) -> Path:
    """Write ``data`` as indented JSON to ``path`` via a temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # unique: two processes may write the same file
    tmp.write_text(json.dumps(data, indent=2, default=float) + "\n")
    os.replace(tmp, path)
    return path


def save_npz(path: str | Path, **arrays) -> Path:
    """Write ``arrays`` compressed to ``path`` (.npz) via a temporary file."""
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
    return path


def label_colors(labels, seed: int = 0):
    """(y, x) ids -> (y, x, 3) uint8 random colours (fixed seed, by rank of the id in this image), id 0 black."""
    import numpy as np

    ids, inv = np.unique(labels, return_inverse=True)
    colors = np.random.default_rng(seed).integers(40, 256, (len(ids), 3), dtype=np.uint8)
    colors[ids == 0] = 0
    return colors[inv.reshape(labels.shape)]


def pyplot():
    """matplotlib.pyplot on the Agg backend with mathtext off, so a '$' in a dataset name or path is shown as
    it is instead of being parsed as LaTeX (which fails on unbalanced '$')."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["text.parse_math"] = False
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 150) -> Path:
    """Save a matplotlib figure as PNG via a temporary file, then close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    os.replace(tmp, path)
    return path
