import itertools

import pytest

from neuroadda.active.pool import candidate_pool


def _vox(box):
    return {(z, y, x) for z in range(box[0].start, box[0].stop) for y in range(box[1].start, box[1].stop)
            for x in range(box[2].start, box[2].stop)}


def _intersects(a, b):
    return all(max(s.start, t.start) < min(s.stop, t.stop) for s, t in zip(a, b))


def test_tiling_hand_checked():
    # longest axis x=50: holdout x in [30, 50); candidates tile z 10 (2 full of 4), y 20 (2 of 8), x 30 (3 of 10)
    cands, hold = candidate_pool((10, 20, 50), (4, 8, 10), holdout_fraction=0.4)
    assert hold == (slice(0, 10), slice(0, 20), slice(30, 50))
    assert len(cands) == 2 * 2 * 3
    assert cands[0] == (slice(0, 4), slice(0, 8), slice(0, 10))
    assert cands[1] == (slice(0, 4), slice(0, 8), slice(10, 20))  # C order: x fastest
    assert cands[-1] == (slice(4, 8), slice(8, 16), slice(20, 30))
    for c in cands:
        assert not _intersects(c, hold)
        assert all(s.stop - s.start == n for s, n in zip(c, (4, 8, 10)))
    for a, b in itertools.combinations(cands, 2):
        assert not _intersects(a, b)
    covered = set().union(*map(_vox, cands))
    assert len(covered) == 12 * 320 and not covered & _vox(hold)


def test_holdout_axis_and_fraction():
    cands, hold = candidate_pool((20, 16, 16), (5, 8, 8), holdout_fraction=0.25, holdout_axis=0)
    assert hold == (slice(15, 20), slice(0, 16), slice(0, 16))
    assert len(cands) == 3 * 2 * 2 and max(c[0].stop for c in cands) == 15
    cands0, hold0 = candidate_pool((20, 16, 16), (5, 8, 8), holdout_fraction=0.0)
    assert hold0[0] == slice(20, 20) and len(cands0) == 4 * 2 * 2


def test_no_candidate_fits_names_sizes():
    with pytest.raises(ValueError, match=r"\(8, 8, 8\).*\(10, 10, 6\)"):
        candidate_pool((10, 10, 10), (8, 8, 8), holdout_fraction=0.4, holdout_axis=2)
    with pytest.raises(ValueError, match="holdout_fraction"):
        candidate_pool((10, 10, 10), (2, 2, 2), holdout_fraction=1.0)
    cands, hold = candidate_pool((10, 10, 10), (2, 2, 2))  # cube: ties -> axis 0, cut at 6
    assert hold[0] == slice(6, 10) and len(cands) == 3 * 5 * 5
