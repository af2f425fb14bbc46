"""What every reader shares, below the readers (:mod:`.io`, :mod:`.tstore`): the URL rule and the multiscale
image."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")  # precomputed://..., n5://..., file://..., gs://...


def is_url(spec: str) -> bool:
    return bool(URL.match(str(spec)))


class Pyramid:
    """A multiscale image read as its level 0 (``shape``, ``dtype``, ``attrs``, slicing), with every stored level
    in ``levels``: (reader, (z, y, x) voxel size relative to level 0), finest first."""

    def __init__(self, levels: list[tuple[Any, tuple[float, float, float]]], attrs: dict[str, Any]):
        base = levels[0][0]
        self.levels, self.attrs = list(levels), attrs
        self.shape, self.dtype, self.ndim = tuple(int(n) for n in base.shape), np.dtype(base.dtype), base.ndim

    def __getitem__(self, idx) -> np.ndarray:
        return np.asarray(self.levels[0][0][idx])
