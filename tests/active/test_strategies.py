import numpy as np
import pytest

from neuroadda.active.strategies import STRATEGIES, select


def test_median_uncertainty_picks_median_and_neighbours():
    scores = np.arange(11.0)
    assert select("median-uncertainty", scores, 3) == [5, 4, 6]  # nearest first, equal distance -> lower index
    assert select("median-uncertainty", scores[::-1], 3) == [5, 4, 6]
    assert select("median-uncertainty", [0.0, 1.0, 1.0, 9.0], 2) == [1, 2]  # median 1


def test_max_uncertainty():
    assert select("max-uncertainty", [0.2, 0.9, 0.1, 0.9, 0.5], 3) == [1, 3, 4]


def test_random_deterministic_per_seed():
    s = np.zeros(50)
    a, b, c = select("random", s, 10, seed=1), select("random", s, 10, seed=1), select("random", s, 10, seed=2)
    assert a == b and a != c
    assert len(set(a)) == 10 and all(0 <= i < 50 for i in a)
    assert a == [int(i) for i in np.random.default_rng(1).choice(50, 10, replace=False)]


def test_k_center_on_a_line():
    emb = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [10.0]])
    # mean 20/6 = 3.33 -> first centre 3.0 (index 3); farthest from it 10 (index 5); then farthest from {3, 10}: 0
    assert select("k-center", np.zeros(6), 3, embeddings=emb) == [3, 5, 0]
    assert select("k-center", np.zeros(6), 6, embeddings=emb)[:3] == [3, 5, 0]


def test_median_diverse_distinct_from_band():
    rng = np.random.default_rng(0)
    scores = rng.random(40)
    emb = rng.normal(size=(40, 5))
    n = 4
    picks = select("median-diverse", scores, n, embeddings=emb, seed=3)
    band = set(np.argsort(np.abs(scores - np.median(scores)), kind="stable")[:3 * n].tolist())
    assert len(picks) == n and len(set(picks)) == n and set(picks) <= band
    assert picks == select("median-diverse", scores, n, embeddings=emb, seed=3)
    # two well-separated clusters in the band: one pick from each, the member nearest the median
    scores2 = np.array([0.50, 0.51, 0.49, 0.52, 0.48, 0.53, 0.0, 1.0])
    emb2 = np.array([[0, 0], [0, 0.1], [10, 10], [10, 10.1], [0, 0.2], [10, 10.2], [5, 5], [5, 5]], float)
    assert sorted(select("median-diverse", scores2, 2, embeddings=emb2)) == [0, 2]


def test_errors():
    with pytest.raises(ValueError, match="median-uncertainty"):
        select("nope", [1.0, 2.0], 1)
    with pytest.raises(ValueError, match="cannot select 3 of 2"):
        select("random", [1.0, 2.0], 3)
    for name in ("k-center", "median-diverse"):
        with pytest.raises(ValueError, match="embeddings"):
            select(name, [1.0, 2.0], 1)
    assert set(STRATEGIES) == {"median-uncertainty", "max-uncertainty", "random", "k-center", "median-diverse"}
    from neuroadda.config import STRATEGY_NAMES

    assert tuple(STRATEGIES) == STRATEGY_NAMES  # the config's names are the implemented ones
