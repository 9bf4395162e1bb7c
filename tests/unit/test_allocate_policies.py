"""jobs.allocate: the allocation policies as pure decisions. Hand-computed posterior gains, priors
and adaptive-consistency stops; the ladder of blocks; each policy's plan of allowances under a
binding budget and its per-problem decision; uniform is today's n per problem; the settings'
one-line errors; the allocation summary. The schedule that runs these as verdicts land is
tested in test_allocate_schedule.py."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobs.allocate import (
    AllocationSettings,
    BetaPrior,
    PlanInput,
    ProblemState,
    SampleResults,
    Schedule,
    allocation_summary,
    check_settings,
    coverage_gain,
    decide,
    even_split,
    fit_prior,
    ladder_step,
    leader_confidence,
    plan_allowances,
    prefix_steps,
    state_at,
    wants_more,
    weighted_votes,
)
from jobs.allocate.policies import _seen_value
from jobs.allocate.posterior import _binomial_upper, regularized_beta


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


# --- the even split ------------------------------------------------------------------------

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


# --- the ladder -----------------------------------------------------------------------------

def test_the_ladder_is_the_rest_of_round_one_then_blocks_of_step_up_to_the_cap():
    stepping = AllocationSettings("until_solved", cap=30, problems=1, first=4, step=10)
    # drawn 0, 2: the rest of round 1 (to 4); then blocks of 10 (4 -> 14, 9 -> 19, 14 -> 24); 24 -> 30 and
    # 29 -> 30 cut at the cap; none at or past the cap.
    assert [ladder_step(stepping, n) for n in (0, 2, 4, 9, 14, 24, 29, 30, 31)] == [4, 2, 10, 10, 10, 6, 1, 0, 0]
    default = AllocationSettings("until_solved", cap=100, problems=1)  # first 8, step unset: blocks of 8
    assert default.first_samples == 8 and default.block == 8
    assert [ladder_step(default, n) for n in (0, 3, 8, 13, 96, 99, 100)] == [8, 5, 8, 8, 4, 1, 0]
    small = AllocationSettings("confidence", cap=5, problems=1)  # first min(8, 5) = 5: round 1 is everything
    assert small.first_samples == 5 and [ladder_step(small, n) for n in (0, 5)] == [5, 0]
    assert AllocationSettings("coverage", cap=30, problems=1, first=6).block == 6
    assert AllocationSettings("coverage", cap=30, problems=1, first=6, step=2).block == 2


# --- uniform --------------------------------------------------------------------------------

def test_uniform_is_todays_n_per_problem_with_no_rounds():
    uniform = AllocationSettings("uniform", cap=5, problems=3)
    assert not uniform.adaptive and uniform.first_samples == 5 and uniform.total_budget == 15
    assert AllocationSettings("uniform", cap=5, problems=3, budget=15).total_budget == 15
    assert all(AllocationSettings(p, cap=5, problems=3).adaptive for p in ("until_solved", "coverage", "confidence"))
    assert not wants_more(uniform, ProblemState(0))
    assert decide(uniform, 5, ProblemState(0)) == 0
    assert plan_allowances(uniform, [PlanInput(5, ProblemState(5))] * 3) == (0, 0, 0)
    with pytest.raises(ValueError, match="uniform"):
        Schedule(uniform, 64)


def test_the_budget_is_capped_by_what_the_cap_can_use():
    assert AllocationSettings("until_solved", cap=10, problems=3, budget=1000).total_budget == 30
    assert AllocationSettings("until_solved", cap=10, problems=3, budget=25).total_budget == 25
    assert AllocationSettings("until_solved", cap=10, problems=3).total_budget == 30


# --- plans: the allowances of a round, by hand ----------------------------------------------

def test_until_solved_splits_a_binding_budget_evenly_among_unsolved_problems():
    # cap 32, first 4, step 4. Asked 8 + 4 + 4 + 32 = 48 of a budget of 53: 5 left.
    # A: asked 8, unsolved at its last decision -> wants one block, 4.
    # B: solved at its last decision -> 0.  C: asked 4, unsolved -> 4.  D: at the cap -> 0.
    # even_split([4, 0, 4, 0], 5): level 2 (4 <= 5; level 3 needs 6), the spare sample to A first.
    policy = AllocationSettings("until_solved", cap=32, problems=4, first=4, budget=53)
    problems = [PlanInput(8, ProblemState(4)), PlanInput(4, ProblemState(4, 1)), PlanInput(4, ProblemState(4)),
                PlanInput(32, ProblemState(28))]
    assert plan_allowances(policy, problems) == (3, 0, 2, 0)
    # The default budget (128, 80 left) covers every wanting block.
    unbound = AllocationSettings("until_solved", cap=32, problems=4, first=4)
    assert plan_allowances(unbound, problems) == (4, 0, 4, 0)
    # Nothing left: nothing allowed (and spending past the budget gives no negative allowance).
    assert plan_allowances(AllocationSettings("until_solved", cap=32, problems=4, first=4, budget=48),
                           problems) == (0, 0, 0, 0)


def test_the_first_plan_sees_no_verdicts_and_gives_everyone_a_block():
    # Round 1's plan (made before any verdict): known states of 0 samples; 3 x 4 asked, 14 - 12 = 2 left
    # for three blocks of 4: level 0, one spare sample each to the first two.
    policy = AllocationSettings("until_solved", cap=16, problems=3, first=4, budget=14)
    assert plan_allowances(policy, [PlanInput(4, ProblemState(0))] * 3) == (1, 1, 0)


def test_confidence_splits_a_binding_budget_among_problems_short_of_the_threshold():
    # cap 20, first 4, step 2, threshold 0.95. Asked 6 + 4 + 6 = 16 of 19: 3 left.
    # A: 3 votes to 0 -> 1 - 1/16 = 0.9375 < 0.95: wants 2.  B: 4 to 0 -> 1 - 1/32 = 0.96875: done.
    # C: 1 to 1 -> 0.5: wants 2.  even_split([2, 0, 2], 3): level 1, the spare to A.
    policy = AllocationSettings("confidence", cap=20, problems=3, first=4, step=2, budget=19)
    problems = [PlanInput(6, ProblemState(4, 0, {"A": 3})), PlanInput(4, ProblemState(4, 0, {"A": 4})),
                PlanInput(6, ProblemState(4, 0, {"x": 1, "y": 1}))]
    assert plan_allowances(policy, problems) == (2, 0, 1)
    assert plan_allowances(AllocationSettings("confidence", cap=20, problems=3, first=4, step=2),
                           problems) == (2, 0, 2)


def test_coverage_spends_whole_blocks_best_seen_value_first():
    # Prior Beta(1, 1): B(1, x) = 1/x, so miss(1, 1 + n, m) = (1 + n)/(1 + n + m), and a problem with n
    # samples known (none passed) and `asked` asked sees its next block of `size` worth
    #   (miss(1, 1+n, asked-n) - miss(1, 1+n, asked-n+size)) / size = (1+n) / ((1+asked)(1+asked+size)).
    # cap 32, first 4, step 4 (size 4), min_gain 1/20: hopeless once 1/(1+asked+4) < 1/20, i.e. asked >= 16.
    #   P0: asked 8,  known 8:  9/(9*13)  = 1/13   ~ 0.0769
    #   P1: asked 8,  known 4:  5/(9*13)  = 5/117  ~ 0.0427 (its pending 4 may solve it first)
    #   P2: asked 4,  known 4:  5/(5*9)   = 1/9    ~ 0.1111
    #   P3: solved at its last decision: 0
    #   P4: asked 16, known 16: next block gains 1/21 < 1/20 per sample: hopeless, 0
    #   P5: asked 8,  known 8:  1/13, the same tier as P0
    # Asked 8+8+4+12+16+8 = 56 of 65: 9 left. P2's block (4), then the 1/13 tier {P0, P5} shares the
    # remaining 5: even_split([4, 4], 5) = [3, 2]; nothing for P1.
    policy = AllocationSettings("coverage", cap=32, problems=6, first=4, budget=65, min_gain=1 / 20)
    prior = BetaPrior(1.0, 1.0)
    problems = [PlanInput(8, ProblemState(8)), PlanInput(8, ProblemState(4)), PlanInput(4, ProblemState(4)),
                PlanInput(12, ProblemState(8, 1)), PlanInput(16, ProblemState(16)), PlanInput(8, ProblemState(8))]
    values = [_seen_value(policy, prior, p) for p in problems]
    assert [values[i] for i in (0, 1, 2, 5)] == pytest.approx([1 / 13, 5 / 117, 1 / 9, 1 / 13], rel=1e-12)
    assert plan_allowances(policy, problems, prior) == (3, 0, 4, 0, 0, 2)
    # 13 left: P2, P0 and P5 whole (12), the last sample to P1.
    assert plan_allowances(AllocationSettings("coverage", cap=32, problems=6, first=4, budget=69, min_gain=1 / 20),
                           problems, prior) == (4, 1, 4, 0, 0, 4)
    # The default budget: every wanting block; the solved and the hopeless still get none.
    unbound = AllocationSettings("coverage", cap=32, problems=6, first=4, min_gain=1 / 20)
    assert plan_allowances(unbound, problems, prior) == (4, 4, 4, 0, 0, 4)


def test_coverage_stops_solved_and_hopeless_problems():
    # Prior Beta(1, 1), blocks of 8: after n failures the next block gains 1 - (1+n)/(9+n) = 8/(9+n),
    # 1/(9+n) per sample; min_gain 1/40 goes on at n = 8 (1/17), 16 (1/25), 30 (1/39), stops at 32 (1/41).
    policy = AllocationSettings("coverage", cap=1000, problems=1, min_gain=1 / 40)
    prior = BetaPrior(1.0, 1.0)
    assert [wants_more(policy, ProblemState(n), prior) for n in (8, 16, 30, 32)] == [True, True, True, False]
    assert not wants_more(policy, ProblemState(8, 1), prior)
    with pytest.raises(ValueError, match="prior"):
        wants_more(policy, ProblemState(8))
    with pytest.raises(ValueError, match="prior"):
        plan_allowances(policy, [PlanInput(8, ProblemState(8))])


def test_a_plan_needs_one_input_per_problem():
    with pytest.raises(ValueError, match="1 problem states for 2 problems"):
        plan_allowances(AllocationSettings("until_solved", cap=8, problems=2), [PlanInput(8, ProblemState(8))])


# --- decisions ------------------------------------------------------------------------------

def test_decide_gives_the_allowance_while_the_policy_wants_more():
    until = AllocationSettings("until_solved", cap=16, problems=1, first=4)
    assert decide(until, 3, ProblemState(8)) == 3
    assert decide(until, 3, ProblemState(8, 1)) == 0  # solved meanwhile: the allowance goes back
    assert decide(until, 0, ProblemState(8)) == 0
    assert decide(until, 3, ProblemState(16)) == 0  # at the cap
    confidence = AllocationSettings("confidence", cap=16, problems=1, first=4)
    assert decide(confidence, 4, ProblemState(4, 0, {"A": 3, "B": 1})) == 4  # 1 - (1 + 5)/32 = 0.8125
    assert decide(confidence, 4, ProblemState(5, 0, {"A": 5})) == 0  # 1 - 1/64
    assert decide(confidence, 4, ProblemState(4, 0, None)) == 4  # no answers: 0.5
    coverage = AllocationSettings("coverage", cap=1000, problems=1, min_gain=1 / 40)
    prior = BetaPrior(1.0, 1.0)
    assert decide(coverage, 8, ProblemState(16), prior) == 8
    assert decide(coverage, 8, ProblemState(32), prior) == 0  # hopeless: 1/41 per sample
    assert decide(coverage, 8, ProblemState(16, 2), prior) == 0


def test_confidence_stops_at_a_known_count():
    # P(Beta(v1+1, v2+1) > 1/2): AAA 1 - 1/16 = 0.9375 goes on, AAAA 1 - 1/32 stops; ABAAAAA: 5 vs 1 is
    # 1 - 8/128 = 0.9375, 6 vs 1 is 1 - 9/256 = 247/256 ~ 0.965: stops at 7.
    policy = AllocationSettings("confidence", cap=20, problems=1, first=2, step=1)

    def stops_at(results: SampleResults) -> int:
        return next(n for n in range(policy.first_samples, policy.cap + 1)
                    if not wants_more(policy, state_at(policy, results, n)))

    assert stops_at(SampleResults([False] * 20, ["A"] * 20)) == 4
    assert stops_at(SampleResults([False] * 20, ["A", "B"] + ["A"] * 18)) == 7
    # Weighted: B weighs 0 against A's 1: 4 vs 0 votes after AB AA, 1 - 1/32.
    assert stops_at(SampleResults([False] * 20, ["A", "B"] + ["A"] * 18, [1.0, 0.0] + [1.0] * 18)) == 4


def test_state_at_reads_a_prefix():
    confidence = AllocationSettings("confidence", cap=8, problems=1, first=2)
    results = SampleResults([False, True, True, False], ["A", None, "B", "A"], [1.0, 5.0, 1.0, 3.0])
    assert state_at(confidence, results, 3) == ProblemState(3, 2, {"A": 1.0, "B": 1.0})  # 2 voters, 1 + 1 weight
    assert state_at(confidence, results, 4) == ProblemState(4, 2, {"A": 3 * 4 / 5, "B": 3 * 1 / 5})
    unweighted = SampleResults([False, True, True, False], ["A", None, "B", "A"])
    assert state_at(confidence, unweighted, 4) == ProblemState(4, 2, {"A": 2, "B": 1})
    until = AllocationSettings("until_solved", cap=8, problems=1, first=2)
    assert state_at(until, results, 2) == ProblemState(2, 1, None)
    with pytest.raises(ValueError, match="fewer"):
        state_at(until, results, 5)


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
    (dict(step=0), r"allocate\.step.*\(unset: allocate\.first\)"),
    (dict(cap=0), r"sampling\.n"),
    (dict(min_gain=-1.0), r"allocate\.min_gain"),
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



# --- summary --------------------------------------------------------------------------------

def test_allocation_summary_by_hand():
    # An until_solved run, first 4, step 4: first passes at 5, never, 0. Rounds: (4, 4, 4), (8, 8, 4),
    # (8, 12, 4), (8, 16, 4). Solved among the samples drawn so far: 1 (the third), 2, 2, 2.
    steps = [[4, 4, 4], [8, 8, 4], [8, 12, 4], [8, 16, 4]]
    summary = allocation_summary(steps, [5, None, 0], tokens=1234)
    assert summary == {
        "samples_spent": 28, "tokens_spent": 1234, "problems": 3, "problems_solved": 2,
        "samples_per_problem": {"min": 4, "median": 8.0, "max": 16},
        "solved_vs_samples": [{"samples_spent": 12, "problems_solved": 1}, {"samples_spent": 20, "problems_solved": 2},
                              {"samples_spent": 24, "problems_solved": 2}, {"samples_spent": 28, "problems_solved": 2}],
    }
    assert allocation_summary([[2, 6]], [None, None])["samples_per_problem"] == {"min": 2, "median": 4.0, "max": 6}
    assert allocation_summary([[3]], [None])["tokens_spent"] is None


def test_allocation_summary_refuses_inconsistent_counts():
    with pytest.raises(ValueError, match="at least one step"):
        allocation_summary([], [])
    with pytest.raises(ValueError, match="one entry per problem"):
        allocation_summary([[4, 4], [8]], [None, None])
    with pytest.raises(ValueError, match="inconsistent"):
        allocation_summary([[4]], [4])  # a first pass at index 4 of 4 samples
    with pytest.raises(ValueError, match="inconsistent"):
        allocation_summary([[4]], [-1])


def test_prefix_steps_of_a_uniform_run():
    # Limits 1, 2, 4, 8, 16, then the largest count, 32.
    assert prefix_steps([8, 32, 5]) == [[1, 1, 1], [2, 2, 2], [4, 4, 4], [8, 8, 5], [8, 16, 5], [8, 32, 5]]
    assert prefix_steps([3, 3]) == [[1, 1], [2, 2], [3, 3]]
    assert prefix_steps([4]) == [[1], [2], [4]]
    assert prefix_steps([1, 1]) == [[1, 1]]
    assert prefix_steps([]) == [] and prefix_steps([0, 0]) == []
    # The summary of a uniform run over those steps: first passes at 3, never, 0.
    curve = allocation_summary(prefix_steps([8, 32, 5]), [3, None, 0])["solved_vs_samples"]
    assert [(p["samples_spent"], p["problems_solved"]) for p in curve] == [
        (3, 1), (6, 1), (12, 2), (21, 2), (29, 2), (45, 2)]
