"""The Bayesian arithmetic behind the adaptive policies, in plain floats (math.lgamma; no scipy).

Coverage. A problem's pass rate p has a Beta(alpha, beta) prior shared by the problem set and
fitted to round 1 by the method of moments of the beta-binomial (every problem then has the
same n = `first`, so the moments have a closed form; the maximum-likelihood fit would need an
optimizer and has the same degenerate cases). After n samples with c passes the posterior is
Beta(alpha + c, beta + n - c), and m more samples solve an unsolved problem with probability
E[1 - (1-p)^m] = 1 - B(alpha', beta' + m) / B(alpha', beta').

Degenerate round 1 results are read cautiously, never as certainty:
- the mean is kept half a sample away from 0 and 1 (nothing solved in n x P samples reads as
  "less than half a pass among them", not "impossible");
- the concentration alpha + beta is kept in [1, n x P]: never more diffuse than Jeffreys'
  Beta(1/2, 1/2) (an all-or-nothing round 1 would otherwise fit alpha, beta -> 0 and declare
  every unsolved problem hopeless), never weighing more than all of round 1's samples (zero or
  under-dispersed variance would otherwise fit an infinite concentration);
- with first = 1 the dispersion cannot be measured at all: concentration 1.

Confidence (adaptive consistency, Aggarwal et al. 2023, their Beta criterion): with v1 and v2
votes for the two leading answers, the leader's share of the two, under a uniform prior, is
Beta(v1 + 1, v2 + 1); the problem stops when P(share > 1/2) reaches the threshold. Whole
votes have the exact binomial form P = sum_{j <= v1} C(v1 + v2 + 1, j) / 2^(v1 + v2 + 1)
(summed in integers below EXACT_VOTES votes: the same bits on every platform);
weighted votes go through the regularized incomplete beta function (a continued fraction).
"""

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

# The concentration alpha + beta of a fitted prior never drops below Jeffreys' (see above).
MIN_CONCENTRATION = 1.0
# Whole votes up to this many are summed exactly (a few ms at most); beyond, the continued
# fraction (microseconds, within 1e-11) keeps a decision cheap at any sampling.n.
EXACT_VOTES = 4096


@dataclass(frozen=True)
class BetaPrior:
    alpha: float
    beta: float


def log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def fit_prior(first: int, passes: Sequence[int]) -> BetaPrior:
    """Beta prior of the pass rate from round 1: `passes[i]` of `first` samples of problem i
    passed (only indices < first count, so a resumed run fits the same prior)."""
    if first < 1 or not passes:
        raise ValueError(f"a prior needs round 1 results: first={first}, {len(passes)} problems")
    if any(c < 0 or c > first for c in passes):
        raise ValueError(f"round 1 pass counts must lie in [0, {first}]")
    samples = first * len(passes)
    mean = sum(passes) / samples
    half = 0.5 / samples
    mean = min(max(mean, half), 1.0 - half)
    concentration = _moment_concentration(first, passes, mean)
    concentration = min(max(concentration, MIN_CONCENTRATION), float(samples))
    return BetaPrior(mean * concentration, (1.0 - mean) * concentration)


def _moment_concentration(first: int, passes: Sequence[int], mean: float) -> float:
    """alpha + beta from Var(c) = n p (1-p) (1 + (n-1) rho), rho = 1 / (alpha + beta + 1)."""
    if first == 1:
        return MIN_CONCENTRATION  # Bernoulli outcomes carry no information on the dispersion
    average = sum(passes) / len(passes)
    variance = sum((c - average) ** 2 for c in passes) / len(passes)
    rho = (variance / (first * mean * (1.0 - mean)) - 1.0) / (first - 1)
    if rho <= 0:
        return math.inf  # no more spread than one shared p: clamped to n x P by the caller
    if rho >= 1:
        return 0.0  # all-or-nothing: clamped to MIN_CONCENTRATION by the caller
    return 1.0 / rho - 1.0


def miss_probability(a: float, b: float, m: int) -> float:
    """E[(1-p)^m] for p ~ Beta(a, b): the chance that m more samples all fail."""
    return math.exp(log_beta(a, b + m) - log_beta(a, b)) if m else 1.0


def coverage_gain(a: float, b: float, m: int) -> float:
    """E[1 - (1-p)^m] for p ~ Beta(a, b): the chance that m more samples solve the problem."""
    return -math.expm1(log_beta(a, b + m) - log_beta(a, b)) if m else 0.0


def count_votes(answers: Iterable[Hashable | None]) -> dict:
    """Votes per answer; None (no answer extracted) does not vote."""
    return dict(Counter(a for a in answers if a is not None))


def weighted_votes(answers: Sequence[Hashable | None], weights: Sequence[float]) -> dict:
    """Each answer's share of the weight, in votes: answer a gets m x W_a / W, m the number of
    voting samples and W their total weight. Scaling rewards changes nothing, and the evidence
    is never more than the samples drawn; all weights zero counts plain votes."""
    if len(answers) != len(weights):
        raise ValueError(f"{len(answers)} answers but {len(weights)} weights")
    if any(not w >= 0 for w in weights):  # `not >=` also refuses NaN
        raise ValueError("vote weights must be non-negative numbers")
    totals: dict = {}
    for answer, weight in zip(answers, weights):
        if answer is not None:
            totals[answer] = totals.get(answer, 0.0) + float(weight)
    weight = sum(totals.values())
    if weight == 0:
        return count_votes(answers)
    voters = sum(a is not None for a in answers)
    return {answer: voters * w / weight for answer, w in totals.items()}


def leader_confidence(votes: Mapping[Hashable, float]) -> float:
    """P(the leading answer beats the runner-up) under Beta(v1 + 1, v2 + 1); 0.5 on a tie,
    and with no votes at all."""
    top = sorted(votes.values(), reverse=True)[:2] + [0.0, 0.0]
    v1, v2 = float(top[0]), float(top[1])
    if v1 == v2:
        return 0.5
    if v1.is_integer() and v2.is_integer() and v1 + v2 < EXACT_VOTES:
        return _binomial_upper(int(v1), int(v2))
    return 1.0 - regularized_beta(0.5, v1 + 1.0, v2 + 1.0)


def _binomial_upper(v1: int, v2: int) -> float:
    """P(Beta(v1 + 1, v2 + 1) > 1/2) = 1 - sum_{i <= v2} C(N, i) / 2^N with N = v1 + v2 + 1,
    exactly in integers (the same bits on every platform), over the shorter tail."""
    total, term, tail = v1 + v2 + 1, 1, 0
    for i in range(v2 + 1):
        tail += term
        term = term * (total - i) // (i + 1)
    return (2**total - tail) / 2**total


def regularized_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b), the Beta(a, b) distribution function at x, by the continued fraction of
    Numerical Recipes (section 6.4), on the side of x where it converges fast."""
    if x <= 0.0 or x >= 1.0:
        return 0.0 if x <= 0.0 else 1.0
    front = math.exp(a * math.log(x) + b * math.log1p(-x) - log_beta(a, b))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_fraction(x, a, b) / a
    return 1.0 - front * _beta_fraction(1.0 - x, b, a) / b


def _beta_fraction(x: float, a: float, b: float, tiny: float = 1e-300, eps: float = 1e-15) -> float:
    """The continued fraction of I_x(a, b) by the modified Lentz method; about sqrt(max(a, b))
    terms."""

    def guard(value: float) -> float:
        return value if abs(value) > tiny else tiny

    c, d = 1.0, 1.0 / guard(1.0 - (a + b) * x / (a + 1.0))
    fraction = d
    for m in range(1, 100_000):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 / guard(1.0 + numerator * d)
            c = guard(1.0 + numerator / c)
            fraction *= d * c
        if abs(d * c - 1.0) < eps:
            return fraction
    raise ArithmeticError(f"the incomplete beta fraction did not converge for a={a}, b={b}, x={x}")
