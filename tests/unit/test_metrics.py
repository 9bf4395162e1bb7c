"""jobs.metrics.estimators: the unbiased pass@k estimator and its means, as pure functions over arrays."""

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from jobs.metrics.estimators import default_ks, mean_pass_at_k, pass_at_k

CASES = [(n, c, k) for n in range(1, 11) for c in range(n + 1) for k in range(1, n + 1)]


def brute_force(n: int, c: int, k: int) -> Fraction:
    """The share of all k-subsets of n samples (c passing) that hold at least one pass."""
    outcomes = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return Fraction(sum(any(outcomes[i] for i in s) for s in subsets), len(subsets))


def exact(n: int, c: int, k: int) -> Fraction:
    return 1 - Fraction(math.comb(n - c, k), math.comb(n, k))


def test_matches_a_brute_force_count_over_all_k_subsets():
    """Every n <= 10, c <= n, k <= n; all problems of one k go through one vectorized call."""
    assert len(CASES) == 440
    for k in range(1, 11):
        cases = [(n, c) for n, c, kk in CASES if kk == k]
        got = pass_at_k([n for n, _ in cases], [c for _, c in cases], k)
        want = [float(brute_force(n, c, k)) for n, c in cases]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("n", [1, 7, 100, 12345])
def test_pass_at_1_is_the_pass_rate(n):
    c = np.arange(n + 1)
    np.testing.assert_allclose(pass_at_k(np.full(n + 1, n), c, 1), c / n, rtol=1e-12, atol=1e-15)


def test_monotone_in_k():
    for c in range(0, 51):
        values = [pass_at_k([50], [c], k)[0] for k in range(1, 51)]
        assert all(a <= b + 1e-15 for a, b in zip(values, values[1:])), c


def test_one_when_every_k_subset_must_hold_a_pass():
    for n, c, k in CASES:
        if n - c < k:
            assert pass_at_k([n], [c], k)[0] == 1.0


def test_zero_without_a_pass():
    assert pass_at_k([1, 10, 100000], [0, 0, 0], 1).tolist() == [0.0, 0.0, 0.0]


def test_nan_when_fewer_samples_than_k():
    values = pass_at_k([1, 3, 4], [1, 0, 2], 4)
    assert np.isnan(values[0]) and np.isnan(values[1]) and values[2] == 1.0


def test_vectorized_over_problems_with_unequal_n():
    values = pass_at_k(np.array([1, 5, 100, 5]), np.array([1, 2, 0, 4]), 2)
    assert np.isnan(values[0])
    np.testing.assert_allclose(values[1:], [1 - 3 / 10, 0.0, 1.0], rtol=1e-12)
    assert values.shape == (4,)


def test_values_lie_in_the_unit_interval():
    rng = np.random.default_rng(0)
    n = rng.integers(1, 2000, 500)
    c = rng.integers(0, n + 1)
    for k in (1, 10, 100, 1000):
        values = pass_at_k(n, c, k)
        kept = values[~np.isnan(values)]
        assert kept.min() >= 0.0 and kept.max() <= 1.0
        assert np.isnan(values).sum() == (n < k).sum()


@pytest.mark.parametrize("n, c, k", [(1000, 3, 500), (1000, 1, 1), (2000, 17, 250), (600, 300, 299)])
def test_exact_against_fractions_for_moderate_n(n, c, k):
    assert pass_at_k([n], [c], k)[0] == pytest.approx(float(exact(n, c, k)), rel=1e-10)


@pytest.mark.parametrize("c, k", [(1, 1), (1, 10), (3, 1000), (10, 50000), (1, 99999), (500, 2), (99990, 5)])
def test_stable_for_n_of_100000(c, k):
    """1 - C(n-c, k)/C(n, k) = 1 - prod_{i=n-c+1..n} (1 - k/i), summed in log space."""
    n = 100_000
    i = np.arange(n - c + 1, n + 1, dtype=np.float64)
    log_ratio = np.log1p(-k / i).sum() if n - c >= k else -np.inf
    want = -np.expm1(log_ratio)
    assert pass_at_k([n], [c], k)[0] == pytest.approx(want, rel=1e-9)


def test_tiny_values_keep_their_relative_precision():
    """pass@1 with one pass in 100000 samples is 1e-5, not 0 or a rounding residue."""
    assert pass_at_k([100_000], [1], 1)[0] == pytest.approx(1e-5, rel=1e-12)


@pytest.mark.parametrize("n, c", [([3], [4]), ([3], [-1])])
def test_pass_counts_outside_0_n_are_refused(n, c):
    with pytest.raises(ValueError):
        pass_at_k(n, c, 1)


@pytest.mark.parametrize(
    "max_k, ks",
    [(1, [1]), (2, [1, 2]), (3, [1, 2, 3]), (5, [1, 2, 4, 5]), (8, [1, 2, 4, 8]),
     (100, [1, 2, 4, 8, 16, 32, 64, 100]), (1024, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024])],
)
def test_default_ks_are_powers_of_two_and_max_k(max_k, ks):
    assert default_ks(max_k) == ks


def test_mean_skips_problems_with_fewer_samples_than_k():
    curve = mean_pass_at_k([1, 4], [1, 2], [1, 2, 4, 8])
    assert list(curve) == [1, 2, 4]  # no problem has 8 samples: no entry for k=8
    assert curve[1] == pytest.approx((1.0 + 0.5) / 2, rel=1e-12)
    assert curve[2] == pytest.approx(1 - 1 / 6, rel=1e-12)  # only the problem with n=4
    assert curve[4] == 1.0
    assert all(type(v) is float for v in curve.values())


def test_mean_over_many_problems_is_the_mean_of_the_estimates():
    n, c = [10, 10, 10, 20], [0, 1, 5, 20]
    want = np.mean([0.0, float(exact(10, 1, 3)), float(exact(10, 5, 3)), 1.0])
    assert mean_pass_at_k(n, c, [3])[3] == pytest.approx(want, rel=1e-12)


def test_zero_is_a_positive_zero():
    """metrics.json should read 0.0, never -0.0."""
    assert [math.copysign(1.0, v) for v in pass_at_k([5, 100000], [0, 0], 2)] == [1.0, 1.0]
    assert math.copysign(1.0, mean_pass_at_k([5], [0], [1])[1]) == 1.0
