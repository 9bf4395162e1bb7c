"""Properties of pass@k (hypothesis): pass@1 = c/n; non-decreasing in k; exactly 1 when
n - c < k; equal to brute force over all k-subsets for small n."""

from itertools import combinations
from math import comb

from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.metrics.estimators import pass_at_k

counts = st.integers(min_value=1, max_value=100_000).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n)))


@given(counts)
def test_pass_at_1_is_the_pass_rate(nc):
    n, c = nc
    assert abs(pass_at_k([n], [c], 1)[0] - c / n) < 1e-12


@given(counts, st.integers(1, 200))
@settings(max_examples=200)
def test_non_decreasing_in_k_and_one_when_every_subset_passes(nc, k):
    n, c = nc
    if k + 1 > n:
        return
    low, high = pass_at_k([n], [c], k)[0], pass_at_k([n], [c], k + 1)[0]
    assert high >= low - 1e-12
    assert 0.0 <= low <= 1.0
    if n - c < k:
        assert low == 1.0


@given(st.integers(1, 12).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_equals_the_share_of_k_subsets_with_a_pass(nck):
    n, c, k = nck
    outcomes = [True] * c + [False] * (n - c)
    brute = sum(any(outcomes[i] for i in subset) for subset in combinations(range(n), k)) / comb(n, k)
    assert abs(pass_at_k([n], [c], k)[0] - brute) < 1e-12
