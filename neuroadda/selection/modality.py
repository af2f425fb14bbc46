"""Imaging-modality classes of datasets, and the partial Mantel test that controls for them.

Does image-domain distance follow the species or the microscope? :func:`partial_mantel_test` correlates two
distance matrices (e.g. MMD² and divergence time) while holding a third fixed (e.g. "same modality or not",
:func:`modality_matrix`), as in Smouse, Long & Sokal (1986) with the permutation scheme of Legendre & Legendre
(Numerical Ecology, §10.5): rows and columns of the first matrix are permuted jointly.
"""

from __future__ import annotations

import itertools
import re

import numpy as np
from scipy.stats import rankdata

from neuroadda.errors import InputError

# first matching pattern (on the lower-cased card 'modality' text) wins; order matters (FIB-SEM is block-face too)
_FINE_RULES = ((r"fib-sem", "FIB-SEM"), (r"multibeam|multi-beam", "multibeam SEM"),
               (r"\bsbem\b|block-face", "SBEM"), (r"sstem|\btem\b", "ssTEM"), (r"atum|sssem", "ATUM-SEM"))
_COARSE = {"FIB-SEM": "block-face", "SBEM": "block-face",
           "ssTEM": "serial-section", "ATUM-SEM": "serial-section", "multibeam SEM": "serial-section"}
SCHEMES = ("fine", "coarse")
EXACT_MAX_N = 8  # up to 8! = 40320 relabellings are enumerated (exact p); above, random ones are drawn


def modality_class(modality: str, scheme: str = "fine") -> str:
    """Class of a card's free-text ``modality``.

    ``fine``: FIB-SEM, SBEM, ssTEM, ATUM-SEM (single-beam SEM of tape-collected sections) or multibeam SEM.
    ``coarse``: block-face (FIB-SEM, SBEM; the block is imaged, then milled or cut) or serial-section (sections
    are cut first, then imaged by TEM or SEM). Text matching no class is an :class:`InputError`."""
    if scheme not in SCHEMES:
        raise InputError(f"modality scheme must be one of {', '.join(SCHEMES)}, got '{scheme}'")
    text = modality.lower()
    for pattern, cls in _FINE_RULES:
        if re.search(pattern, text):
            return cls if scheme == "fine" else _COARSE[cls]
    raise InputError(f"modality '{modality}': no known imaging class (FIB-SEM, SBEM, ssTEM, ATUM/ssSEM, multibeam)")


def modality_matrix(classes: list[str]) -> np.ndarray:
    """(n, n) float64: 0 where two datasets share a modality class, 1 where they differ."""
    c = np.asarray(classes, dtype=object)
    return (c[:, None] != c[None, :]).astype(np.float64)


def perm_chunks(n: int, permutations: int, seed: int, batch: int = 2048) -> list[np.ndarray]:
    """Relabellings as (k, n) index arrays: all n! for n <= EXACT_MAX_N (the identity first, in chunks of at
    most 5040), else ``permutations`` random ones in chunks of at most ``batch``, a deterministic function of
    ``seed``."""
    if n <= EXACT_MAX_N:
        allp = np.array(list(itertools.permutations(range(n))), dtype=np.intp)
        return [allp[s:s + 5040] for s in range(0, len(allp), 5040)]
    rng = np.random.default_rng(seed)
    return [rng.permuted(np.tile(np.arange(n), (min(batch, permutations - s), 1)), axis=1)
            for s in range(0, permutations, batch)]


def _unit(v: np.ndarray) -> np.ndarray | None:
    """Centred vector scaled to norm 1, or None if it is constant."""
    c = v - v.mean()
    norm = np.linalg.norm(c)
    return None if norm <= 1e-12 * max(1.0, float(np.abs(v).max(initial=0.0))) else c / norm


def _partial(rxy, rxz, ryz):
    """Partial correlation of x and y given z from the three pairwise correlations (arrays allowed)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rxy - rxz * ryz) / np.sqrt((1 - rxz ** 2) * (1 - ryz ** 2))


def _square(m, what: str) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or not np.isfinite(m).all():
        raise InputError(f"{what}: need a finite square matrix, got shape {m.shape}")
    if not np.allclose(m, m.T, rtol=1e-6, atol=1e-12):
        raise InputError(f"{what}: matrix is not symmetric")
    return m


def partial_mantel_test(x, y, z, *, permutations: int = 9999, method: str = "spearman",
                        alternative: str = "greater", seed: int = 0, batch: int = 2048) -> dict:
    """Partial Mantel test: correlation of the upper triangles of ``x`` and ``y`` given ``z`` (all symmetric
    (n, n); units irrelevant, diagonals ignored).

    ``r`` is the partial correlation r_xy.z = (r_xy − r_xz r_yz) / √((1 − r_xz²)(1 − r_yz²)) of the n(n−1)/2
    entries (Pearson, or Pearson on their ranks for ``method="spearman"``); a constant ``z`` removes nothing
    (r = r_xy). The null distribution permutes rows and columns of ``x`` jointly; p as in
    :func:`neuroadda.selection.phylogeny.mantel_test` (exact over all n! relabellings for n <= 8). Also
    returned: the three pairwise correlations. If ``x`` or ``y`` is constant, or ``y`` or ``x`` is a linear
    function of ``z``, r and p are None and ``note`` says why.
    """
    if method not in ("spearman", "pearson") or alternative not in ("greater", "two-sided") or permutations < 1:
        raise InputError(f"partial_mantel_test: bad method '{method}', alternative '{alternative}' or "
                         f"permutations {permutations}")
    x, y, z = (_square(m, f"partial_mantel_test {k}") for m, k in ((x, "x"), (y, "y"), (z, "z")))
    if not x.shape == y.shape == z.shape:
        raise InputError(f"partial_mantel_test: shapes differ, {x.shape}, {y.shape}, {z.shape}")
    n = x.shape[0]
    iu = np.triu_indices(n, 1)
    tri = [m[iu] for m in (x, y, z)]
    if method == "spearman":  # ranks move with the entries under relabelling, so rank once
        tri = [rankdata(t) for t in tri]
    out = dict(r=None, p_value=None, permutations=0, n=n, n_pairs=len(tri[0]), method=method,
               alternative=alternative, exact=n <= EXACT_MAX_N, r_xy=None, r_xz=None, r_yz=None, note=None)
    ux, uy, uz = (_unit(t) for t in tri) if len(tri[0]) >= 3 else (None, None, None)
    if ux is None or uy is None:
        out["note"] = "correlation undefined: fewer than 3 pairs, or x or y has all pairwise values equal"
        return out
    rxy = float(ux @ uy)
    rxz, ryz = (0.0, 0.0) if uz is None else (float(ux @ uz), float(uy @ uz))
    out.update(r_xy=rxy, r_xz=rxz, r_yz=ryz)
    if max(abs(rxz), abs(ryz)) > 1 - 1e-9:
        out["note"] = "partial correlation undefined: x or y is a linear function of z"
        return out
    r = float(_partial(rxy, rxz, ryz))
    xm = np.zeros((n, n))
    xm[iu] = ux  # permuting preserves the multiset of entries, hence their mean and norm
    xm = xm + xm.T
    zz = np.zeros_like(uy) if uz is None else uz
    eps, hits, total = 1e-10, 0, 0
    for perms in perm_chunks(n, permutations, seed, batch):
        xp = xm[perms[:, :, None], perms[:, None, :]][:, iu[0], iu[1]]  # (k, pairs), each row unit-norm, centred
        rp = _partial(xp @ uy, xp @ zz, ryz)  # nan where a relabelled x is collinear with z: never a hit
        hits += int(np.sum(rp >= r - eps) if alternative == "greater" else np.sum(np.abs(rp) >= abs(r) - eps))
        total += len(perms)
    p = hits / total if n <= EXACT_MAX_N else (1 + hits) / (1 + total)
    out.update(r=r, p_value=float(p), permutations=total)
    return out
