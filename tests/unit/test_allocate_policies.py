"""jobs.allocate: the allocation policies as pure decisions. Hand-computed posterior gains, priors
and adaptive-consistency stops; the budget and sampling.n never exceeded and decisions
independent of the order verdicts arrive in (hypothesis, against a simulated driver); uniform
is today's n per problem; the settings' one-line errors; the allocation summary."""

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.allocate import (
    AllocationSettings,
    BetaPrior,
    ProblemState,
    SampleResults,
    allocation_summary,
    check_settings,
    coverage_gain,
    even_split,
    fit_prior,
    grant,
    ladder_step,
    leader_confidence,
    plan_round,
    replay,
    state_at,
    wants_more,
    weighted_votes,
)
from jobs.allocate.posterior import _binomial_upper, miss_probability, regularized_beta


def beta_integral(f, a: float, b: float, low: float = 0.0) -> float:
    """E[f(p); p > low] for p ~ Beta(a, b) by the trapezoid rule on a fine grid (a, b >= 1 here)."""
    x = np.linspace(low, 1.0, 200_001)
    density = np.exp((a - 1) * np.log(np.maximum(x, 1e-300)) + (b - 1) * np.log(np.maximum(1 - x, 1e-300))
                     - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)))
    return float(np.trapezoid(f(x) * density, x))


# --- the posterior arithmetic, by hand ------------------------------------------------------

def test_coverage_gain_by_hand():
    # Beta(1, 1): E[(1-p)^m] = 1/(m+1); Beta(2, 3): E[(1-p)^2] = E[q^2], q ~ Beta(3, 2) = 3*4/(5*6).
    for m in (1, 2, 7, 100):
        assert coverage_gain(1, 1, m) == pytest.approx(m / (m + 1), rel=1e-12)
    assert coverage_gain(2, 3, 2) == pytest.approx(1 - 0.4, rel=1e-12)
    assert coverage_gain(0.5, 8.5, 0) == 0.0
    assert coverage_gain(1.5, 2.5, 5) == pytest.approx(beta_integral(lambda p: 1 - (1 - p) ** 5, 1.5, 2.5), abs=1e-6)


def test_the_prior_by_the_method_of_moments():
    # first=3, passes 0,3,1,2: mean 1/2, Var(c) = 1.25 = 3/4 (1 + 2 rho): rho = 1/3, alpha+beta = 2.
    prior = fit_prior(3, [0, 3, 1, 2])
    assert (prior.alpha, prior.beta) == pytest.approx((1.0, 1.0), rel=1e-12)


@pytest.mark.parametrize("first, passes, expected", [
    (4, [0] * 10, (0.5, 39.5)),  # none solved: mean half a pass in 40 samples, concentration 40
    (4, [4] * 10, (39.5, 0.5)),  # all solved every time
    (2, [1, 1, 1, 1], (4.0, 4.0)),  # zero variance: concentration n x P = 8
    (2, [0, 2, 0, 2], (0.5, 0.5)),  # all or nothing: no more diffuse than Jeffreys'
    (1, [0, 1, 1], (2 / 3, 1 / 3)),  # first=1 cannot measure the dispersion: concentration 1
])
def test_degenerate_round_ones_keep_a_proper_prior(first, passes, expected):
    prior = fit_prior(first, passes)
    assert (prior.alpha, prior.beta) == pytest.approx(expected, rel=1e-12)


def test_leader_confidence_by_hand():
    # P(Beta(v1+1, v2+1) > 1/2) = sum_{j <= v1} C(v1+v2+1, j) / 2^(v1+v2+1)
    assert leader_confidence({"A": 3}) == 1 - 1 / 16
    assert leader_confidence({"A": 4}) == 1 - 1 / 32
    assert leader_confidence({"A": 6, "B": 1, "C": 1}) == 247 / 256
    assert leader_confidence({"A": 2, "B": 2}) == 0.5
    assert leader_confidence({}) == 0.5
    assert leader_confidence({"A": 5000, "B": 4900}) == pytest.approx(_binomial_upper(5000, 4900), abs=1e-10)
    weighted = leader_confidence({"A": 6.5, "B": 1.25})
    assert weighted == pytest.approx(beta_integral(np.ones_like, 7.5, 2.25, low=0.5), abs=1e-9)


@given(st.integers(0, 300), st.integers(0, 300))
def test_the_incomplete_beta_agrees_with_the_exact_binomial_sum(v1, v2):
    total = v1 + v2 + 1
    exact = sum(math.comb(total, j) for j in range(v1 + 1)) / 2**total
    assert 1 - regularized_beta(0.5, v1 + 1.0, v2 + 1.0) == pytest.approx(exact, abs=1e-12)


def test_weighted_votes_share_the_voting_samples():
    votes = weighted_votes(["A", "A", "B", None], [0.9, 0.9, 0.2, 5.0])
    assert votes == pytest.approx({"A": 3 * 1.8 / 2.0, "B": 3 * 0.2 / 2.0})
    assert weighted_votes(["A", "B", "A"], [0.0, 0.0, 0.0]) == {"A": 2, "B": 1}
    with pytest.raises(ValueError, match="non-negative"):
        weighted_votes(["A"], [float("nan")])


# --- ladder and budget split ----------------------------------------------------------------

def test_the_ladder_doubles_or_steps_up_to_the_cap():
    doubling = AllocationSettings("until_solved", cap=100, problems=1)
    assert [ladder_step(doubling, n) for n in (8, 13, 16, 64, 99, 100)] == [8, 3, 16, 36, 1, 0]
    stepping = AllocationSettings("until_solved", cap=30, problems=1, first=4, step=10)
    assert [ladder_step(stepping, n) for n in (4, 9, 14, 24, 29)] == [10, 5, 10, 6, 1]


def test_even_split_by_hand():
    assert even_split([10, 10, 10], 100) == [10, 10, 10]
    assert even_split([10, 2, 10, 10], 21) == [7, 2, 6, 6]  # level 6, the spare sample to the first in order
    assert even_split([0, 5], 3) == [0, 3]


@given(st.lists(st.integers(0, 50), min_size=1, max_size=8), st.integers(0, 400))
def test_even_split_is_fair_and_within_wants_and_total(wants, total):
    shares = even_split(wants, total)
    assert sum(shares) == min(total, sum(wants))
    assert all(0 <= s <= w for s, w in zip(shares, wants))
    short = [s for s, w in zip(shares, wants) if s < w]
    assert not short or max(shares) - min(short) <= 1


# --- the policies, by hand ------------------------------------------------------------------

def results(passes: list[bool], answers=None, weights=None) -> SampleResults:
    return SampleResults(passes, answers, weights)


def test_uniform_is_todays_n_per_problem_with_no_rounds():
    uniform = AllocationSettings("uniform", cap=5, problems=3)
    assert not uniform.adaptive and uniform.first_samples == 5 and uniform.total_budget == 15
    states = [ProblemState(5, c) for c in (0, 1, 5)]
    assert plan_round(uniform, states).granted == 0
    done = replay(uniform, [results([False] * 5)] * 3)
    assert done.target == (5, 5, 5) and done.finished and done.rounds == 1
    assert not replay(uniform, [results([False] * 5), results([False] * 2)]
                      + [results([True] * 5)]).finished


def test_until_solved_doubles_until_the_first_pass():
    policy = AllocationSettings("until_solved", cap=64, problems=3)  # first 8: rungs 8, 16, 32, 64
    late = [False] * 20 + [True] + [False] * 43  # first pass at 20, within [16, 32)
    never = [False] * 64
    early = [True] + [False] * 63
    done = replay(policy, [results(late), results(never), results(early)])
    assert done.target == (32, 64, 8) and done.finished


def test_until_solved_splits_a_tight_budget_evenly_in_problem_order():
    policy = AllocationSettings("until_solved", cap=64, problems=3, budget=24 + 21)
    plan = plan_round(policy, [ProblemState(8), ProblemState(8, 1), ProblemState(8)])
    assert plan.reserve == (11, 0, 10)
    assert grant(policy, plan, 0, ProblemState(8)) == 8  # the next rung, 16
    assert grant(policy, plan, 0, ProblemState(16)) == 3  # the rest of its reserve
    assert grant(policy, plan, 0, ProblemState(19)) == 0
    assert grant(policy, plan, 2, ProblemState(16, 2)) == 0  # solved: stops inside its reserve


def test_coverage_fills_the_best_blocks_first():
    # Prior Beta(1, 1). A (4 failures) posterior Beta(1, 5): E[(1-p)^m] = 5/(5+m); blocks 4->8, 8->16,
    # 16->32 gain 1/9, 5/153, 5/561 per sample. B (16 failures) Beta(1, 17): block 16->32 gains 1/33.
    # 22 samples left: A's 4, A's 8, then B's 16 cut to the 10 that remain.
    policy = AllocationSettings("coverage", cap=32, problems=2, first=4, budget=20 + 22)
    plan = plan_round(policy, [ProblemState(4), ProblemState(16)], BetaPrior(1.0, 1.0))
    assert plan.reserve == (12, 10)
    assert plan.level == pytest.approx(1 / 33, rel=1e-9)
    assert [grant(policy, plan, 0, ProblemState(n)) for n in (4, 8, 16)] == [4, 8, 0]
    assert [grant(policy, plan, 1, ProblemState(n)) for n in (16, 26)] == [10, 0]
    assert plan_round(policy, [ProblemState(4), ProblemState(16)], BetaPrior(1.0, 1.0)) == plan


@given(st.floats(0.05, 5), st.floats(0.05, 50), st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=1,
       max_size=8), st.integers(0, 600), st.sampled_from([None, 3]))
@settings(max_examples=200, deadline=None)
def test_coverage_leaves_out_only_blocks_below_its_water_level(alpha, beta, problems, spare, step):
    # A block a problem would still take but did not get: the budget ran out, and it is worth no more
    # per sample (seen from the barrier) than the last block reserved.
    prior = BetaPrior(alpha, beta)
    states = [ProblemState(4 + 3 * rung if step else 4 << rung, int(solved)) for rung, solved in problems]
    policy = AllocationSettings("coverage", cap=200, problems=len(problems), first=4, step=step, min_gain=1e-3,
                                budget=sum(s.drawn for s in states) + spare)
    plan = plan_round(policy, states, prior)
    assert plan.granted <= spare
    for state, reserve in zip(states, plan.reserve):
        end = state.drawn
        while end < state.drawn + reserve:
            end += ladder_step(policy, end)
        if end != state.drawn + reserve or not wants_more(policy, ProblemState(end, state.passed), prior):
            continue  # ends inside a block (the one cut to fit), or wants nothing more
        size = ladder_step(policy, end)
        a, b, offset = prior.alpha, prior.beta + state.drawn, end - state.drawn
        value = (miss_probability(a, b, offset) - miss_probability(a, b, offset + size)) / size
        assert plan.granted == spare
        assert plan.level is None or value <= plan.level * (1 + 1e-9)


def test_coverage_stops_solved_and_hopeless_problems():
    # Prior Beta(1, 1): a block of n after n failures gains n/(2n+1), 1/(2n+1) per sample;
    # min_gain 1/40 goes on at n = 8 (1/17) and 16 (1/33), stops at 32 (1/65).
    policy = AllocationSettings("coverage", cap=1000, problems=1, min_gain=1 / 40)
    prior = BetaPrior(1.0, 1.0)
    assert [wants_more(policy, ProblemState(n), prior) for n in (8, 16, 32)] == [True, True, False]
    assert not wants_more(policy, ProblemState(8, 1), prior)


def test_coverage_replays_with_the_prior_of_round_one():
    # Round 1 (first 2): passes 0, 2, 0, 2 -> prior Beta(1/2, 1/2). A problem unsolved after n samples
    # gains 1 - B(1/2, 1/2 + 2n)/B(1/2, 1/2 + n) over its next n: 0.135, 0.070, 0.036 per sample at
    # n = 2, 4, 8; min_gain 0.05 stops it at 8.
    policy = AllocationSettings("coverage", cap=16, problems=4, first=2, min_gain=0.05)
    prior = fit_prior(2, [0, 2, 0, 2])
    value = {n: coverage_gain(prior.alpha, prior.beta + n, n) / n for n in (2, 4, 8)}
    assert value[2] > 0.05 and value[4] > 0.05 and value[8] < 0.05
    never = [False] * 16
    at_two = [False] * 2 + [True] + [False] * 13  # solved within [2, 4)
    done = replay(policy, [results(never), results([True] * 16), results(at_two), results([True] * 16)])
    assert done.target == (8, 2, 4, 2) and done.finished and done.rounds == 2


def test_confidence_stops_at_a_known_count():
    # first 2, step 1: AAAA... reaches 1 - 1/32 >= 0.95 at 4 samples; ABAAAAA... reaches 247/256 at 7
    # (6 vs 1), after 0.9375 at 6 (5 vs 1).
    policy = AllocationSettings("confidence", cap=20, problems=2, first=2, step=1)
    same = results([False] * 20, ["A"] * 20)
    split = results([False] * 20, ["A", "B"] + ["A"] * 18)
    assert replay(policy, [same, split]).target == (4, 7)


def test_confidence_weighs_votes_by_reward():
    # A, B, A, A, ...: plain votes stop at 7 (6 vs 1: 247/256, after 0.9375 at 6). B weighs 0 against
    # A's 1: 4 vs 0 votes at 4 samples, 1 - 1/32 -> stop at 4.
    policy = AllocationSettings("confidence", cap=20, problems=1, first=4, step=1)
    answers = ["A", "B"] + ["A"] * 18
    assert replay(policy, [results([False] * 20, answers)]).target == (7,)
    weighted = replay(policy, [results([False] * 20, answers, [1.0, 0.0] + [1.0] * 18)])
    assert weighted.target == (4,) and weighted.finished


def test_replay_says_what_to_draw_next_and_ignores_extra_verdicts():
    policy = AllocationSettings("until_solved", cap=64, problems=2)
    assert replay(policy, [results([False] * 3), results([False] * 8)]).target == (8, 8)  # round 1 unfinished
    waiting = replay(policy, [results([False] * 8), results([True] * 8)])
    assert waiting.target == (16, 8) and not waiting.finished and waiting.rounds == 2
    extra = replay(policy, [results([False] * 9 + [True] + [False] * 54), results([True] * 64)])
    assert extra.target == (16, 8) and extra.finished


# --- settings -------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    (dict(policy="greedy"), r"allocate\.policy.*uniform, until_solved, coverage, confidence"),
    (dict(budget=100, first=8, problems=50), r"allocate\.budget.* 8 x 50 = 400"),
    (dict(first=16, cap=8), r"allocate\.first.*sampling\.n=8"),
    (dict(policy="until_solved", has_verifier=False), r"verify\.verifier"),
    (dict(policy="coverage", has_verifier=False), r"verify\.verifier"),
    (dict(policy="confidence", has_answers=False), r"answer checker"),
    (dict(policy="uniform", budget=7), r"allocate\.budget.*uniform"),
    (dict(confidence=1.0), r"allocate\.confidence"),
    (dict(step=0), r"allocate\.step"),
])
def test_settings_errors_are_one_line_and_name_the_key(kwargs, match):
    arguments = dict(policy="coverage", budget=None, first=None, cap=64, problems=10, has_verifier=True,
                     has_answers=True) | kwargs
    with pytest.raises(ValueError, match=match) as error:
        check_settings(**arguments)
    assert "\n" not in str(error.value)


def test_default_settings_pass():
    check_settings("uniform", None, None, 1, 10, has_verifier=False, has_answers=False)  # today's sampling.n=1
    check_settings("uniform", 10, None, 1, 10, has_verifier=False, has_answers=False)
    check_settings("confidence", 80, None, 100, 10, has_verifier=False, has_answers=True)
    assert AllocationSettings("coverage", cap=4, problems=2).first_samples == 4


# --- any problems, any arrival order --------------------------------------------------------

@st.composite
def allocation_cases(draw):
    policy = draw(st.sampled_from(["until_solved", "coverage", "confidence"]))
    cap = draw(st.integers(1, 40))
    problems = draw(st.integers(1, 6))
    first = draw(st.one_of(st.none(), st.integers(1, cap)))
    first_samples = first if first is not None else min(8, cap)
    budget = draw(st.one_of(st.none(), st.integers(first_samples * problems, cap * problems + 10)))
    step = draw(st.one_of(st.none(), st.integers(1, 8)))
    weighted = draw(st.booleans())
    runs = []
    for _ in range(problems):
        rate = draw(st.sampled_from([0.0, 0.02, 0.2, 0.7, 1.0]))
        coins = draw(st.lists(st.floats(0, 1, exclude_max=True), min_size=cap, max_size=cap))
        answers = draw(st.lists(st.sampled_from(["A", "B", "C", None]), min_size=cap, max_size=cap))
        weights = draw(st.lists(st.floats(0, 1), min_size=cap, max_size=cap)) if weighted else None
        runs.append(SampleResults([coin < rate for coin in coins], answers, weights))
    return AllocationSettings(policy, cap, problems, budget, first, step=step), runs


def simulate(policy: AllocationSettings, runs: list[SampleResults], rng: random.Random) -> list[int]:
    """A driver: round 1, then per round a plan and grants as blocks land in the order `rng`
    picks; checks the budget and the cap after every decision."""
    first = policy.first_samples
    drawn = [first] * policy.problems
    prior = fit_prior(first, [sum(r.passed[:first]) for r in runs]) if policy.policy == "coverage" else None
    while (plan := plan_round(policy, [state_at(policy, r, n) for r, n in zip(runs, drawn)], prior)).granted:
        assert sum(drawn) + plan.granted <= policy.total_budget
        asked = {}
        for i in rng.sample(range(policy.problems), policy.problems):
            if more := grant(policy, plan, i, state_at(policy, runs[i], drawn[i])):
                asked[i] = drawn[i] + more
        while asked:
            i = rng.choice(sorted(asked))
            drawn[i] = asked.pop(i)
            if more := grant(policy, plan, i, state_at(policy, runs[i], drawn[i])):
                asked[i] = drawn[i] + more
            assert all(asked.get(j, n) <= policy.cap for j, n in enumerate(drawn))
            assert sum(asked.get(j, n) for j, n in enumerate(drawn)) <= policy.total_budget
    return drawn


@given(allocation_cases(), st.integers(0, 2**32), st.integers(0, 2**32))
@settings(max_examples=300, deadline=None)
def test_decisions_keep_budget_and_cap_and_ignore_arrival_order(case, seed_a, seed_b):
    policy, runs = case
    drawn = simulate(policy, runs, random.Random(seed_a))
    assert drawn == simulate(policy, runs, random.Random(seed_b))
    done = replay(policy, runs)
    assert done.finished and list(done.target) == drawn
    assert sum(drawn) <= policy.total_budget and max(drawn) <= policy.cap
    # Nothing left unspent while a problem still wants more.
    prior = fit_prior(policy.first_samples, [sum(r.passed[:policy.first_samples]) for r in runs])
    wanting = [wants_more(policy, state_at(policy, r, n), prior) for r, n in zip(runs, drawn)]
    assert not any(wanting) or sum(drawn) == policy.total_budget


@given(allocation_cases())
@settings(max_examples=200, deadline=None)
def test_with_the_default_budget_every_problem_ends_by_its_rule_or_the_cap(case):
    policy, runs = case
    policy = AllocationSettings(policy.policy, policy.cap, policy.problems, None, policy.first, step=policy.step)
    for r, n in zip(runs, replay(policy, runs).target):
        state = state_at(policy, r, n)
        if policy.policy == "until_solved":
            assert state.passed or n == policy.cap
        elif policy.policy == "confidence":
            assert leader_confidence(state.votes) >= policy.confidence or n == policy.cap
        else:
            assert state.passed or n == policy.cap or not wants_more(policy, state, fit_prior(
                policy.first_samples, [sum(x.passed[:policy.first_samples]) for x in runs]))


# --- summary --------------------------------------------------------------------------------

def test_allocation_summary_by_hand():
    summary = allocation_summary([8, 32, 5], [1, 0, 2], [3, None, 0], tokens=[100, 400, 50])
    assert summary["samples_spent"] == 45 and summary["tokens_spent"] == 550
    assert summary["problems"] == 3 and summary["problems_solved"] == 2
    assert summary["samples_per_problem"] == {"min": 5, "median": 8.0, "max": 32}
    assert summary["solved_vs_samples"] == [
        {"limit": 1, "samples_spent": 3, "problems_solved": 1},
        {"limit": 2, "samples_spent": 6, "problems_solved": 1},
        {"limit": 4, "samples_spent": 12, "problems_solved": 2},
        {"limit": 8, "samples_spent": 21, "problems_solved": 2},
        {"limit": 16, "samples_spent": 29, "problems_solved": 2},
        {"limit": 32, "samples_spent": 45, "problems_solved": 2},
    ]
    with pytest.raises(ValueError, match="inconsistent"):
        allocation_summary([4], [0], [2])
