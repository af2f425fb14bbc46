"""Statistics against scipy and hand-computed cases."""

import numpy as np
import pytest
from scipy import stats

from neuroadda.metrics.stats import bootstrap_ci, kendall_tau, mean_sd, rankdata, spearman, wilcoxon_signed_rank


def test_mean_sd_hand():
    assert mean_sd([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_sd([5.0]) == (5.0, 0.0)


@pytest.mark.parametrize("seed", range(5))
def test_wilcoxon_matches_scipy_exact(seed):
    rng = np.random.default_rng(seed)
    d = rng.normal(0.3, 1.0, 7)
    assert abs(wilcoxon_signed_rank(d) - stats.wilcoxon(d, method="exact").pvalue) < 1e-12


def test_wilcoxon_hand_computed():
    # all five differences positive: W+ = 15, the most extreme of 2^5 sign patterns on each side -> p = 2/32
    assert wilcoxon_signed_rank([0.1, 0.2, 0.3, 0.4, 0.5]) == pytest.approx(2 / 32)
    assert wilcoxon_signed_rank([0.0, 0.0]) == 1.0
    # a tie: |d| = (1, 1, 2) -> ranks (1.5, 1.5, 3); W+ = 1.5 + 3 = 4.5, centre 3. Subset sums of the ranks:
    # 0, 1.5, 1.5, 3, 3, 4.5, 4.5, 6 -> 6 of 8 lie at least 1.5 from the centre -> p = 0.75
    assert wilcoxon_signed_rank([-1.0, 1.0, 2.0]) == pytest.approx(0.75)


def test_rank_correlations_match_scipy():
    rng = np.random.default_rng(0)
    for _ in range(10):
        a = rng.integers(0, 4, 6).astype(float)  # with ties
        b = rng.normal(size=6)
        if np.ptp(a) == 0:
            continue
        assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic)
        assert kendall_tau(a, b) == pytest.approx(stats.kendalltau(a, b).statistic)
    np.testing.assert_array_equal(rankdata([3, 1, 3, 2]), stats.rankdata([3, 1, 3, 2]))
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_bootstrap_ci_brackets_the_mean_and_is_seeded():
    d = [0.1, 0.3, 0.2, 0.5, 0.4]
    m, lo, hi = bootstrap_ci(d)
    assert m == pytest.approx(0.3) and lo < m < hi and lo >= 0.1 and hi <= 0.5
    assert bootstrap_ci(d) == bootstrap_ci(d)
    assert bootstrap_ci([0.7]) == (0.7, 0.7, 0.7)
