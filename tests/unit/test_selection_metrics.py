"""Selection metrics (best-of-k by a score, majority vote@k) against brute force: the average
over every k-subset, enumerated."""

from itertools import combinations

import numpy as np
import pytest

from jobs.metrics.estimators import (
    best_of_k, best_of_k_by_problem, bootstrap_ci, fit_scaling, majority_at_k, scaling_curve, weighted_at_k,
)


def brute_best_of_k(scores, correct, k):
    values = []
    for subset in combinations(range(len(scores)), k):
        top = max(scores[i] for i in subset)
        tied = [correct[i] for i in subset if scores[i] == top]
        values.append(sum(tied) / len(tied))
    return float(np.mean(values))


def brute_weighted(answers, weights, correct_by_answer, k):
    values = []
    for subset in combinations(range(len(answers)), k):
        sums = {}
        for i in subset:
            if answers[i] is not None:
                sums[answers[i]] = sums.get(answers[i], 0.0) + weights[i]
        if not sums:
            values.append(0.0)
            continue
        top = max(sums.values())
        winners = [a for a, s in sums.items() if s == top]
        values.append(sum(correct_by_answer[a] for a in winners) / len(winners))
    return float(np.mean(values))


def brute_majority(answers, correct_by_answer, k):
    return brute_weighted(answers, [1.0] * len(answers), correct_by_answer, k)


def random_case(rng, n):
    scores = rng.integers(0, 4, size=n).astype(float)  # few values: many ties
    correct = rng.random(n) < 0.4
    pool = ["a", "b", "c", "d", None]
    answers = [pool[i] for i in rng.integers(0, len(pool), size=n)]
    return scores, correct, answers


@pytest.mark.parametrize("seed", range(40))
def test_best_of_k_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 13))
    scores, correct, _ = random_case(rng, n)
    for k in range(1, n + 1):
        assert best_of_k(scores, correct, k) == pytest.approx(brute_best_of_k(scores, correct, k), abs=1e-12)


@pytest.mark.parametrize("seed", range(40))
def test_majority_at_k_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 13))
    _, _, answers = random_case(rng, n)
    right = {"a": 1.0, "b": 0.0, "c": 1.0, "d": 0.0}
    correct = [right.get(a, 0.0) for a in answers]
    for k in range(1, n + 1):
        value, error = majority_at_k(answers, correct, k)
        assert error == 0.0
        assert value == pytest.approx(brute_majority(answers, right, k), abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_majority_monte_carlo_is_within_its_stated_error(seed):
    rng = np.random.default_rng(100 + seed)
    n = 12
    _, _, answers = random_case(rng, n)
    right = {"a": 1.0, "b": 0.0, "c": 1.0, "d": 0.0}
    correct = [right.get(a, 0.0) for a in answers]
    for k in (3, 6, 9):
        value, error = majority_at_k(answers, correct, k, exact_budget=0, draws=4000, seed=seed, exact_n=0)
        assert error > 0
        assert abs(value - brute_majority(answers, right, k)) < 4 * error + 1e-9


@pytest.mark.parametrize("n, k", [(1, 1), (5, 2), (12, 12), (50, 7)])
def test_the_only_correct_sample_wins_with_the_closed_form_chance_of_its_rank(n, k):
    from math import comb

    scores = -np.arange(n, dtype=float)  # rank r has score 1 - r
    for r in range(1, n + 1):
        only_r = np.arange(1, n + 1) == r
        assert best_of_k(scores, only_r, k) == pytest.approx(comb(n - r, k - 1) / comb(n, k), abs=1e-12)


def test_rank_weights_sum_to_one_at_large_n():
    assert best_of_k(-np.arange(100_000, dtype=float), np.ones(100_000), 1000) == pytest.approx(1.0, abs=1e-9)


def test_fewer_samples_than_k_has_no_value():
    assert np.isnan(best_of_k([1.0], [True], 2))
    assert np.isnan(majority_at_k(["a"], [1.0], 2)[0])


@pytest.mark.parametrize("seed", range(30))
def test_weighted_at_k_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 11))
    _, _, answers = random_case(rng, n)
    weights = rng.integers(1, 4, size=n).astype(float)  # small integers: ties happen
    right = {"a": 1.0, "b": 0.0, "c": 1.0, "d": 0.0}
    correct = [right.get(a, 0.0) for a in answers]
    for k in range(1, n + 1):
        value, error = weighted_at_k(answers, weights, correct, k)
        assert error == 0.0
        assert value == pytest.approx(brute_weighted(answers, weights, right, k), abs=1e-12)
        mc, mc_error = weighted_at_k(answers, weights, correct, k, exact_budget=0, draws=3000, seed=seed)
        assert abs(mc - value) <= 4 * mc_error + 1e-9


def test_fit_recovers_known_parameters():
    ks = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256])
    fit = fit_scaling(ks, scaling_curve(-1.7, -0.35, ks))
    assert fit["a"] == pytest.approx(-1.7, rel=1e-9) and fit["b"] == pytest.approx(-0.35, rel=1e-9)
    assert fit["rmse"] < 1e-12 and fit["points"] == 9


def test_fit_needs_two_usable_points():
    assert fit_scaling([1, 2], [1.0, 1.0])["a"] is None


def test_bootstrap_interval_brackets_the_mean():
    values = np.random.default_rng(0).random(500)
    low, high = bootstrap_ci(values, seed=1)
    assert low < values.mean() < high and high - low < 0.1
    assert bootstrap_ci(values, seed=1) == (low, high)  # seeded
    assert bootstrap_ci(np.array([0.5, np.nan]), resamples=50) == (0.5, 0.5)


@pytest.mark.parametrize("k", [1, 2, 5, 12])
def test_best_of_k_by_problem_equals_the_per_problem_value(k):
    rng = np.random.default_rng(k)
    sizes = rng.integers(1, 30, size=25)
    problem = np.repeat(np.arange(sizes.size), sizes)
    scores = rng.integers(0, 5, size=problem.size).astype(float)
    correct = rng.random(problem.size) < 0.3
    shuffle = rng.permutation(problem.size)  # rows need not come grouped
    together = best_of_k_by_problem(problem[shuffle], scores[shuffle], correct[shuffle], k)
    for i in range(sizes.size):
        alone = best_of_k(scores[problem == i], correct[problem == i], k)
        assert (np.isnan(alone) and np.isnan(together[i])) or together[i] == pytest.approx(alone, abs=1e-12)


def test_the_majority_program_agrees_with_monte_carlo_beyond_enumeration():
    rng = np.random.default_rng(7)
    answers = [str(a) for a in rng.choice(5, size=60, p=[0.3, 0.25, 0.2, 0.15, 0.1])]
    correct = [a == "1" for a in answers]
    for k in (5, 11, 30):
        exact, error = majority_at_k(answers, correct, k, exact_budget=10**9)
        assert error == 0.0
        estimate, stderr = majority_at_k(answers, correct, k, exact_budget=0, draws=40_000, seed=1, exact_n=0)
        assert abs(estimate - exact) < 4 * stderr


def test_majority_is_exact_up_to_twenty_samples_whatever_the_answers():
    answers = [f"a{i}" for i in range(18)] + [None, "a0"]
    for k in range(1, 21):
        value, error = majority_at_k(answers, [a == "a0" for a in answers], k, exact_budget=0)
        assert error == 0.0 and 0.0 <= value <= 1.0


def test_votes_of_all_problems_at_once_equal_each_problem_alone():
    from jobs.metrics.estimators import votes_by_problem

    rng = np.random.default_rng(3)
    problem = np.repeat(np.arange(4), [5, 9, 12, 30])
    answer = rng.integers(-1, 4, size=problem.size)
    correct = (answer == 2).astype(float)
    weights = rng.random(problem.size)
    shuffle = rng.permutation(problem.size)
    votes = votes_by_problem(problem[shuffle], answer[shuffle], correct[shuffle], weights[shuffle], [1, 3, 5])
    for p in range(4):
        rows = problem == p
        labels = [None if a < 0 else int(a) for a in answer[rows]]
        for k in (1, 3, 5):
            alone = majority_at_k(labels, correct[rows], k)
            assert votes["majority_at_k"][0][k][p] == pytest.approx(alone[0], abs=1e-12)
            weighted, stderr = weighted_at_k(labels, weights[rows], correct[rows], k)
            together, together_stderr = votes["weighted_at_k"][0][k][p], votes["weighted_at_k"][1][k][p]
            assert (stderr == 0.0) == (together_stderr == 0.0)  # exact alike; else estimates agree
            assert abs(together - weighted) <= 4 * np.hypot(stderr, together_stderr) + 1e-12


def test_monte_carlo_is_reproducible_from_its_seed():
    answers = list("abcabcaabbd" * 4)
    correct = [a == "a" for a in answers]
    first = majority_at_k(answers, correct, 9, exact_budget=0, draws=500, seed=5, exact_n=0)
    assert majority_at_k(answers, correct, 9, exact_budget=0, draws=500, seed=5, exact_n=0) == first
    assert majority_at_k(answers, correct, 9, exact_budget=0, draws=500, seed=6, exact_n=0) != first
