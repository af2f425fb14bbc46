"""Writing results: JSON and figures, atomically (temp name, then rename), so nothing is ever half-written."""

from __future__ import annotations

import json
import os
import shutil
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


def tmp_path_for(path: str | os.PathLike) -> str:
    """Where an array or OME-Zarr group is written before :func:`finalize_zarr` moves it to ``path``."""
    return os.fspath(path) + ".tmp"


def finalize_zarr(tmp_path: str | os.PathLike, final_path: str | os.PathLike) -> None:
    """Move a finished ``tmp_path`` to ``final_path``, replacing what was there.

    The old output is first renamed aside, then the new one renamed into place, then the old one deleted,
    so at no time is ``final_path`` a half-written array.
    """
    tmp, final = Path(tmp_path), Path(final_path)
    if not tmp.exists():
        from neuroadda.errors import InputError

        raise InputError(f"no prediction to finalize at {tmp}")
    old = None
    if os.path.lexists(final):
        old = final.with_name(final.name + ".old")
        if os.path.lexists(old):
            shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()
