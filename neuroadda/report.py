"""Writing results: JSON and figures, atomically (temp name, then rename), so nothing is ever half-written."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (``.NAME.PID.tmp``: hidden, no suffix a reader globs for, unique
    per process as two may write one file) to write into; on success it is renamed onto ``path``, on an
    exception removed. Every file the tool writes goes through here, so a reader never sees a half-written one
    and a killed run leaves at most a ``.tmp`` file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | Path, data) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    return write_text(path, json.dumps(data, indent=2, default=float) + "\n")


def save_npz(path: str | Path, **arrays) -> Path:
    """Write ``arrays`` compressed to ``path`` (.npz) atomically."""
    import numpy as np

    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: numpy appends no .npz
        np.savez_compressed(f, **arrays)
    return Path(path)


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

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format=Path(path).suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return Path(path)


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
