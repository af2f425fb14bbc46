"""Which candidates to annotate: one ``select`` entry point over a registry of strategies.

Every strategy is ``f(scores, n, embeddings, rng) -> list[int]`` (indices in selection order) and is
deterministic for a given ``rng`` seed. Ties are always broken by the lower candidate index.
"""

from __future__ import annotations

import warnings

import numpy as np


def _median_order(scores: np.ndarray) -> np.ndarray:
    """All indices by |score - median| ascending, ties by index."""
    dist = np.abs(scores - np.median(scores))
    return np.lexsort((np.arange(len(scores)), dist))


def median_uncertainty(scores, n, embeddings, rng) -> list[int]:
    """The ``n`` candidates whose scores are nearest the median score (nearest first, ties by index)."""
    return [int(i) for i in _median_order(scores)[:n]]


def max_uncertainty(scores, n, embeddings, rng) -> list[int]:
    """The ``n`` highest scores, highest first (ties by index)."""
    return [int(i) for i in np.argsort(-scores, kind="stable")[:n]]


def random_choice(scores, n, embeddings, rng) -> list[int]:
    """``n`` distinct candidates uniformly at random."""
    return [int(i) for i in rng.choice(len(scores), n, replace=False)]


def _standardize(emb: np.ndarray) -> np.ndarray:
    """Z-score each feature; constant features become 0."""
    sd = emb.std(0)
    return (emb - emb.mean(0)) / np.where(sd > 1e-12, sd, 1.0)


def k_center(scores, n, embeddings, rng) -> list[int]:
    """Greedy k-center coreset (Sener & Savarese 2018) on standardized embeddings.

    First center: the candidate nearest the embedding mean; then repeatedly the candidate farthest (Euclidean)
    from the chosen set (ties by index)."""
    z = _standardize(embeddings)
    if n == 0:
        return []
    chosen = [int(np.argmin(np.linalg.norm(z, axis=1)))]
    dmin = np.linalg.norm(z - z[chosen[0]], axis=1)
    while len(chosen) < n:
        dmin[chosen] = -1.0  # never re-pick (matters only when points coincide)
        nxt = int(np.argmax(dmin))
        chosen.append(nxt)
        dmin = np.minimum(dmin, np.linalg.norm(z - z[nxt], axis=1))
    return chosen


def median_diverse(scores, n, embeddings, rng) -> list[int]:
    """Diverse picks from the median band.

    The band is the ``3n`` candidates nearest the median score (at most all). Their standardized embeddings are
    clustered into ``n`` clusters (KMeans, ``n_init=10``, seeded from ``rng``); each cluster contributes its
    member nearest the median score. If KMeans leaves fewer than ``n`` non-empty clusters, the band is
    completed in median order. Returned nearest-the-median first."""
    if n == 0:
        return []
    order = _median_order(scores)
    band = order[:min(3 * n, len(scores))]
    if len(band) == n:
        return [int(i) for i in band]
    from sklearn.cluster import KMeans

    seed = int(rng.integers(2**31 - 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate points -> fewer distinct clusters; handled below
        labels = KMeans(n_clusters=n, random_state=seed, n_init=10).fit_predict(_standardize(embeddings[band]))
    picked, seen = [], set()
    for i, lab in zip(band, labels):  # band is in median order, so the first member of a cluster is its pick
        if lab not in seen:
            seen.add(lab)
            picked.append(int(i))
    for i in band:
        if len(picked) == n:
            break
        if int(i) not in picked:
            picked.append(int(i))
    return picked


STRATEGIES = {
    "median-uncertainty": median_uncertainty,
    "max-uncertainty": max_uncertainty,
    "random": random_choice,
    "k-center": k_center,
    "median-diverse": median_diverse,
}
NEEDS_EMBEDDINGS = ("k-center", "median-diverse")


def select(name: str, scores, n: int, *, embeddings=None, seed: int = 0) -> list[int]:
    """Pick ``n`` candidates with strategy ``name`` -> indices into the candidates, in selection order.

    ``scores``: (N,) uncertainties; ``embeddings``: (N, D), required by "k-center" and "median-diverse"."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown selection strategy {name!r}; valid: {', '.join(STRATEGIES)}")
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or not np.all(np.isfinite(scores)):
        raise ValueError(f"scores must be a finite 1-D array, got shape {scores.shape}")
    n = int(n)
    if n < 0 or n > len(scores):
        raise ValueError(f"cannot select {n} of {len(scores)} candidates")
    if name in NEEDS_EMBEDDINGS:
        if embeddings is None:
            raise ValueError(f"strategy {name!r} needs candidate embeddings (embed_candidates)")
        embeddings = np.asarray(embeddings, dtype=np.float64)
        if embeddings.ndim != 2 or embeddings.shape[0] != len(scores):
            raise ValueError(f"embeddings must be ({len(scores)}, D), got {embeddings.shape}")
    elif embeddings is not None:
        embeddings = np.asarray(embeddings, dtype=np.float64)
    return STRATEGIES[name](scores, n, embeddings, np.random.default_rng(seed))
