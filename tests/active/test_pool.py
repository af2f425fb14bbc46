import itertools

import numpy as np
import pytest

from neuroadda.active.pool import candidate_pool, pool_origins, stratified_subsample


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


def _reference_pool(shape, size, holdout_fraction, axis=None):
    """The pool as the code before the subsample built it: itertools over the non-held-out starts."""
    from neuroadda.data.regions import box_shape, split_regions

    train, _ = split_regions(shape, holdout_fraction, axis)
    starts = [range(0, a - c + 1, c) for a, c in zip(box_shape(train), size)]
    return [tuple(slice(o, o + c) for o, c in zip(org, size)) for org in itertools.product(*starts)]


@pytest.mark.parametrize("shape,size,frac", [((10, 20, 50), (4, 8, 10), 0.4), ((33, 70, 71), (5, 9, 8), 0.0),
                                             ((64, 64, 64), (16, 16, 16), 0.25)])
def test_pool_is_the_itertools_tiling(shape, size, frac):
    assert candidate_pool(shape, size, holdout_fraction=frac)[0] == _reference_pool(shape, size, frac)


def test_subsample_keeps_a_small_pool_whole_and_in_order():
    origins, _ = pool_origins((64, 64, 64), (16, 16, 16), holdout_fraction=0.0)
    assert stratified_subsample(origins, (16, 16, 16), 64, seed=3).tolist() == list(range(64))
    assert stratified_subsample(origins, (16, 16, 16), None, seed=3).tolist() == list(range(64))


def test_subsample_is_reproducible_and_spatially_stratified():
    size = (4, 4, 4)
    origins, _ = pool_origins((64, 64, 64), size, holdout_fraction=0.0)  # 16^3 = 4096 candidates
    a = stratified_subsample(origins, size, 512, seed=0)
    assert len(a) == 512 == len(set(a.tolist())) and np.all(np.diff(a) > 0)
    assert np.array_equal(a, stratified_subsample(origins, size, 512, seed=0))
    assert not np.array_equal(a, stratified_subsample(origins, size, 512, seed=1))
    # every one of the 64 blocks of 16^3 voxels (64 candidates each) keeps exactly its share, 8 of 64:
    # Z-order runs of 8 candidates are 8 sub-cubes of 2x2x2 candidates, nested in those blocks
    block = (origins[a] // 16) @ np.array([16, 4, 1])
    assert np.bincount(block, minlength=64).tolist() == [8] * 64
    # a uniform draw of 512 would leave some block well off its share (checked on the same seeds)
    rng = np.random.default_rng(0)
    uniform = (origins[rng.choice(len(origins), 512, replace=False)] // 16) @ np.array([16, 4, 1])
    assert np.bincount(uniform, minlength=64).max() > 8
