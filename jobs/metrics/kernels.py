"""The selection metrics at k for every problem at once: numba kernels over flat per-sample
arrays. Votes (majority@k, weighted@k) first, best-of-k at the end.

A vote at k is the expected accuracy of the answer elected by a uniformly random k-subset of a
problem's samples: the plurality (majority@k) or the largest sum of sample weights
(weighted@k); ties are broken uniformly, so a tie among m answers counts the mean worth of the
m. An answer's worth is the mean correctness of its samples (0 or 1 when the verifier is
consistent). Samples without an answer are drawn but cast no vote.

Per problem and k, the value is exact when that is cheap, else a seeded Monte Carlo estimate:
- majority: a dynamic program over answer counts (below), always for n <= exact_n (20 by
  default: at most ~4e6 steps), and up to n = 1000 (C(n, k) must fit a float64) when its cost
  fits the budget;
- weighted: enumeration of the k-subsets when there are few of them;
- both: k = n is deterministic.
The Monte Carlo pass draws random permutations and reads every k from the prefixes of the same
permutation (a uniform permutation's first k elements are a uniform k-subset), keeping the
leader of the vote as samples arrive, so one pass of D x max(k) steps serves every k.

Inputs are flat: the samples of problem p are rows offsets[p]:offsets[p+1]; `codes` holds each
sample's answer as an index into that problem's answers (-1: no answer), `worth` the worth of
each (problem, answer) at worth_offsets[p] + code.
"""

import math

import numpy as np
from numba import njit, prange

@njit(cache=True)
def _log_comb(n, k):
    if k < 0 or k > n:
        return -np.inf
    return math.lgamma(n + 1.0) - math.lgamma(k + 1.0) - math.lgamma(n - k + 1.0)


@njit(cache=True)
def _comb(n, k):
    if k < 0 or k > n:
        return 0.0
    return math.exp(_log_comb(n, k))


@njit(cache=True)
def _majority_cost(counts, worth, k):
    """Multiply-adds of `_majority_exact` at k: for every answer worth something and vote count
    x, the answers that could reach x votes, times the (ties x draws) table, times the terms
    per answer."""
    cost = 0
    for i in range(counts.size):
        if worth[i] == 0.0:
            continue
        for x in range(1, min(counts[i], k) + 1):
            heavy = 0
            for j in range(counts.size):
                if j != i and counts[j] >= x:
                    heavy += 1
            ties = min(heavy, (k - x) // x)
            cost += heavy * (k - x + 1) * (ties + 1) * (x + 1)
    return cost


@njit(cache=True)
def _majority_exact(counts, worth, free, k):
    """Expected worth of the plurality of a random k-subset, summed over C(n, k) subsets by
    answer (i), its votes (x) and, among the other answers, how many tie it (t): ways[t, s]
    counts the draws of s samples from the answers that can reach x votes, each below x but t
    of them at exactly x. Answers with fewer than x samples pool with the unanswered samples."""
    n = counts.sum() + free
    log_total = _log_comb(n, k)
    value = 0.0
    for i in range(counts.size):
        if worth[i] == 0.0:
            continue
        for x in range(1, min(counts[i], k) + 1):
            pooled = free
            heavy = 0
            for j in range(counts.size):
                if j != i:
                    if counts[j] < x:
                        pooled += counts[j]
                    else:
                        heavy += 1
            rest = k - x
            ties = min(heavy, rest // x)
            ways = np.zeros((ties + 1, rest + 1))
            ways[0, 0] = 1.0
            coefficients = np.empty(x + 1)
            for j in range(counts.size):
                if j == i or counts[j] < x:
                    continue
                for v in range(x + 1):
                    coefficients[v] = _comb(counts[j], v)
                grown = np.zeros_like(ways)
                for t in range(ties + 1):
                    for s in range(rest + 1):
                        w = ways[t, s]
                        if w == 0.0:
                            continue
                        for v in range(min(x - 1, rest - s) + 1):  # below x votes
                            grown[t, s + v] += w * coefficients[v]
                        if t < ties and s + x <= rest:  # exactly x: a tie
                            grown[t + 1, s + x] += w * coefficients[x]
                ways = grown
            share = 0.0
            for t in range(ties + 1):
                for s in range(rest + 1):
                    if ways[t, s] != 0.0:
                        share += ways[t, s] / (t + 1) * math.exp(_log_comb(pooled, rest - s) - log_total)
            value += worth[i] * _comb(counts[i], x) * share
    return value


@njit(cache=True, inline="always")
def _splitmix64(state):
    """SplitMix64 (Steele et al. 2014; the seeder of xoshiro): the next state and a uniform
    float in [0, 1). Local state, so each problem's draws are reproducible under prange; numba's
    np.random costs ~20 ns a call here against ~2 ns for this."""
    state = state + np.uint64(0x9E3779B97F4A7C15)
    z = state
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return state, (z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True)
def _full_vote(codes, weights, worth, num_answers, use_weights):
    """The vote of all n samples (k = n): no randomness."""
    tally = np.zeros(num_answers)
    present = np.zeros(num_answers, dtype=np.bool_)
    for r in range(codes.size):
        if codes[r] >= 0:
            tally[codes[r]] += weights[r] if use_weights else 1.0
            present[codes[r]] = True
    return _leaders_worth(tally, present, worth)


@njit(cache=True)
def _leaders_worth(tally, present, worth):
    best = -np.inf
    for a in range(tally.size):
        if present[a] and tally[a] > best:
            best = tally[a]
    total, tied = 0.0, 0
    for a in range(tally.size):
        if present[a] and tally[a] == best:
            total += worth[a]
            tied += 1
    return total / tied if tied else 0.0


@njit(cache=True)
def _weighted_enumerated(codes, weights, worth, num_answers, k):
    """Mean over every k-subset (lexicographic enumeration) of the weighted vote's worth."""
    n = codes.size
    picked = np.arange(k)
    tally = np.zeros(num_answers)
    present = np.zeros(num_answers, dtype=np.bool_)
    total, subsets = 0.0, 0
    while True:
        tally[:] = 0.0
        present[:] = False
        for r in picked:
            if codes[r] >= 0:
                tally[codes[r]] += weights[r]
                present[codes[r]] = True
        total += _leaders_worth(tally, present, worth)
        subsets += 1
        i = k - 1
        while i >= 0 and picked[i] == n - k + i:
            i -= 1
        if i < 0:
            return total / subsets
        picked[i] += 1
        for j in range(i + 1, k):
            picked[j] = picked[j - 1] + 1


@njit(cache=True)
def _monte_carlo(codes, weights, worth, num_answers, ks, wanted, draws, seed, sums, squares):
    """Adds to sums/squares[method, j] each draw's outcome at ks[j] for the methods wanted
    (0: majority, 1: weighted): `draws` random permutations, read at every prefix length.
    Each vote keeps its leading tally, how many answers share it and the sum of their worth: a
    new sample lifts only its own answer, so the leaders change in O(1) (the answer passes the
    lead and leads alone, reaches it and joins the tie, or stays below)."""
    n = codes.size
    state = np.uint64(seed)
    order = np.arange(n)
    depth = 0
    for j in range(ks.size):
        if (wanted[0, j] or wanted[1, j]) and ks[j] > depth:
            depth = ks[j]
    votes = np.zeros(num_answers, dtype=np.int64)
    mass = np.zeros(num_answers)
    for _ in range(draws):
        best_votes, tied_votes, worth_votes = 0, 0, 0.0
        best_mass, tied_mass, worth_mass = -np.inf, 0, 0.0
        j = 0
        for pos in range(depth):
            state, uniform = _splitmix64(state)
            swap = pos + int(uniform * (n - pos))  # a Fisher-Yates step (bias below 2**-40)
            order[pos], order[swap] = order[swap], order[pos]
            a = codes[order[pos]]
            if a >= 0:
                was_present = votes[a] > 0
                votes[a] += 1
                if votes[a] > best_votes:
                    best_votes, tied_votes, worth_votes = votes[a], 1, worth[a]
                elif votes[a] == best_votes:
                    tied_votes += 1
                    worth_votes += worth[a]
                old = mass[a]
                mass[a] += weights[order[pos]]
                if was_present and old == best_mass:  # a leader: it leads alone unless w = 0
                    if mass[a] > best_mass:
                        best_mass, tied_mass, worth_mass = mass[a], 1, worth[a]
                elif mass[a] > best_mass:
                    best_mass, tied_mass, worth_mass = mass[a], 1, worth[a]
                elif mass[a] == best_mass:
                    tied_mass += 1
                    worth_mass += worth[a]
            while j < ks.size and ks[j] == pos + 1:
                if wanted[0, j]:
                    outcome = worth_votes / tied_votes if tied_votes else 0.0
                    sums[0, j] += outcome
                    squares[0, j] += outcome * outcome
                if wanted[1, j]:
                    outcome = worth_mass / tied_mass if tied_mass else 0.0
                    sums[1, j] += outcome
                    squares[1, j] += outcome * outcome
                j += 1
        for pos in range(depth):
            a = codes[order[pos]]
            if a >= 0:
                votes[a] = 0
                mass[a] = 0.0


@njit(cache=True)
def _exact_values(codes, weights, worth, ks, free, counts, exact_n, exact_budget, enumeration_budget, values, wanted):
    """Fills values[method, j] wherever the exact computation is cheap; marks the rest wanted."""
    n = codes.size
    hopeless = worth.size == 0 or worth.max() == 0.0  # no vote can elect a right answer
    for j in range(ks.size):
        k = ks[j]
        if k > n:
            continue
        if hopeless:
            values[0, j] = 0.0
            values[1, j] = 0.0
            continue
        if k == n:
            values[0, j] = _full_vote(codes, weights, worth, counts.size, False)
            values[1, j] = _full_vote(codes, weights, worth, counts.size, True)
            continue
        if n <= exact_n or (n <= 1000 and _majority_cost(counts, worth, k) <= exact_budget):
            values[0, j] = _majority_exact(counts, worth, free, k)
        else:
            wanted[0, j] = True
        if math.exp(_log_comb(n, k)) <= enumeration_budget:
            values[1, j] = _weighted_enumerated(codes, weights, worth, counts.size, k)
        else:
            wanted[1, j] = True


@njit(cache=True, parallel=True)
def votes_at_k(offsets, codes, weights, worth, worth_offsets, ks, draws, seeds, exact_n, exact_budget, enumeration_budget):
    """majority@k and weighted@k of every problem: values and standard errors, each shaped
    (2, problems, len(ks)) with method 0 = majority, 1 = weighted; NaN where n < k, standard
    error 0 where exact."""
    problems = offsets.size - 1
    values = np.full((2, problems, ks.size), np.nan)
    errors = np.full((2, problems, ks.size), np.nan)
    for p in prange(problems):  # problems are independent: each has its own seed
        pc, pw = codes[offsets[p] : offsets[p + 1]], weights[offsets[p] : offsets[p + 1]]
        pworth = worth[worth_offsets[p] : worth_offsets[p + 1]]
        counts = np.zeros(pworth.size, dtype=np.int64)
        for a in pc:
            if a >= 0:
                counts[a] += 1
        free = pc.size - counts.sum()
        exact = np.full((2, ks.size), np.nan)
        wanted = np.zeros((2, ks.size), dtype=np.bool_)
        _exact_values(pc, pw, pworth, ks, free, counts, exact_n, exact_budget, enumeration_budget, exact, wanted)
        for m in range(2):
            for j in range(ks.size):
                if not np.isnan(exact[m, j]):
                    values[m, p, j] = exact[m, j]
                    errors[m, p, j] = 0.0
        if wanted.any():
            sums = np.zeros((2, ks.size))
            squares = np.zeros((2, ks.size))
            _monte_carlo(pc, pw, pworth, pworth.size, ks, wanted, draws, seeds[p], sums, squares)
            for m in range(2):
                for j in range(ks.size):
                    if wanted[m, j]:
                        mean = sums[m, j] / draws
                        variance = max(squares[m, j] / draws - mean * mean, 0.0) * draws / max(draws - 1, 1)
                        values[m, p, j] = mean
                        errors[m, p, j] = math.sqrt(variance / draws)
    return values, errors


@njit(cache=True, parallel=True)
def best_of_k_at(offsets, scores, correct, ks):
    """best-of-k of every problem, shaped (problems, len(ks)); rows grouped by problem, NaN
    scores already replaced by -inf. The sample ranked r of n is the best of a random k-subset
    with chance w_r = C(n-r, k-1)/C(n, k): w_1 = k/n, w_{r+1} = w_r (n-r-k+1)/(n-r). A tie
    group (same score) shares its mean correctness."""
    problems = offsets.size - 1
    values = np.full((problems, ks.size), np.nan)
    for p in prange(problems):
        start, n = offsets[p], offsets[p + 1] - offsets[p]
        order = np.argsort(-scores[start : start + n], kind="mergesort")
        ranked = scores[start : start + n][order]
        shared = correct[start : start + n][order].copy()
        i = 0
        while i < n:  # tie groups
            j, total = i, 0.0
            while j < n and ranked[j] == ranked[i]:
                total += shared[j]
                j += 1
            shared[i:j] = total / (j - i)
            i = j
        for m in range(ks.size):
            k = ks[m]
            if k > n:
                continue
            weight, value = k / n, 0.0
            for r in range(1, n - k + 2):
                value += weight * shared[r - 1]
                if r < n:
                    weight *= (n - r - k + 1) / (n - r)
            values[p, m] = value
    return values
