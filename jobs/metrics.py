"""Metrics as pure functions over arrays: no I/O, no config.

pass@k is the unbiased estimator of Chen et al. (2021): for a problem with n samples of which
c pass, the probability that a uniformly random k-subset holds at least one pass,
1 - C(n-c, k) / C(n, k), computed through log-gamma so that it stays exact to float precision
for n in the hundreds of thousands and vectorizes over problems with unequal n.
"""

import numpy as np
from scipy.special import gammaln


def _log_choose(n: np.ndarray, k: np.ndarray) -> np.ndarray:
    return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)


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
    log_ratio = _log_choose(fails[rest], k) - _log_choose(n[rest], k)
    result[rest] = -np.expm1(log_ratio)
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
