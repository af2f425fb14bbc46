"""Per-volume intensity normalization from statistics of a random sample of blocks (never the whole volume)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuroadda.data.volume import Volume


@dataclass(frozen=True)
class Normalizer:
    """``x -> (x - center) / scale`` as float32.

    ``mode="zscore"``: center = mean, scale = std. ``mode="percentile"``: robust z-score, center = median,
    scale = (p99 - p1) / 4 (a Gaussian's 1st-99th percentile span is ~4.65 sd). ``mode="none"``: identity.
    """

    mode: str
    center: float = 0.0
    scale: float = 1.0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if self.mode == "none":
            return x
        return (x - np.float32(self.center)) / np.float32(self.scale)

    def to_dict(self) -> dict:
        return {"mode": self.mode, "center": self.center, "scale": self.scale}


def sample_voxels(vol: Volume, *, n_blocks: int = 24, block: int = 48, seed: int = 0) -> np.ndarray:
    """Voxels from ``n_blocks`` random cubes (edge ``block``, clipped to the volume), flattened float32."""
    rng = np.random.default_rng(seed)
    size = [min(block, n) for n in vol.shape]
    total = int(np.prod(vol.shape))
    if total <= n_blocks * int(np.prod(size)):
        return np.asarray(vol.read((slice(None),) * 3), np.float32).ravel()
    parts = []
    for _ in range(n_blocks):
        start = [int(rng.integers(0, n - s + 1)) for n, s in zip(vol.shape, size)]
        parts.append(vol.read(tuple(slice(a, a + s) for a, s in zip(start, size))).ravel())
    return np.concatenate(parts).astype(np.float32)


def fit_normalizer(vol: Volume, mode: str = "zscore", *, seed: int = 0) -> Normalizer:
    """Statistics of ``vol`` for ``mode`` in {"zscore", "percentile", "none"}."""
    if mode == "none":
        return Normalizer("none")
    if mode not in ("zscore", "percentile"):
        raise ValueError(f"normalization must be zscore, percentile or none, got {mode!r}")
    v = sample_voxels(vol, seed=seed)
    if mode == "zscore":
        center, scale = float(v.mean()), float(v.std())
    else:
        p1, p50, p99 = np.percentile(v, [1, 50, 99])
        center, scale = float(p50), float(p99 - p1) / 4.0
    return Normalizer(mode, center, scale if scale > 1e-8 else 1.0)


def normalizer_from_spec(vol: Volume, spec, *, seed: int = 0) -> Normalizer:
    """The normaliser a model's ``spec`` asks for on ``vol``: a mode of :func:`fit_normalizer` (str), fixed
    values ``{"mode": "fixed", "center", "scale"}``, or ``{"mode": "range", "low", "high"}``: per volume,
    ``(x - p_low) / (p_high - p_low)`` (percentiles of the sampled voxels)."""
    if isinstance(spec, str):
        return fit_normalizer(vol, spec, seed=seed)
    mode = spec.get("mode")
    if mode == "fixed":
        return Normalizer("fixed", float(spec["center"]), float(spec["scale"]))
    if mode == "range":
        lo, hi = np.percentile(sample_voxels(vol, seed=seed), [float(spec["low"]), float(spec["high"])])
        return Normalizer("range", float(lo), float(hi - lo) if hi - lo > 1e-8 else 1.0)
    raise ValueError(f"normalization spec must be a mode, fixed or range, got {spec!r}")
