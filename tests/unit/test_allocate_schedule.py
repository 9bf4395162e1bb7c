"""jobs.allocate.Schedule: an adaptive run's rounds and work units as verdicts land, against a
simulated driver that lands the released units in an order a random generator picks. Hand-computed
runs (samples per problem and unit ids); the budget and the cap never exceeded; every problem's
samples a prefix drawn once; the same units whatever the arrival order, and for a resumed driver
that feeds the stored verdicts; refused problems; weighted votes waiting for their weights."""

import random
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.allocate import (
    AllocationSettings,
    Grant,
    Schedule,
    Verdict,
    leader_confidence,
    wants_more,
)
from jobs.allocate.schedule import MIN_BLOCKS, block_size, grant_unit_id


@dataclass(frozen=True)
class Outcomes:
    """A problem's pre-drawn verdicts for samples 0..cap-1."""

    passed: list
    answers: list
    weights: list


def outcomes(passed, answers=None, weights=None) -> Outcomes:
    cap = len(passed)
    return Outcomes(list(passed), list(answers) if answers is not None else [None] * cap,
                    list(weights) if weights is not None else [1.0] * cap)


def never(cap: int) -> Outcomes:
    return outcomes([False] * cap)


def first_pass_at(index: int, cap: int) -> Outcomes:
    return outcomes([i == index for i in range(cap)])


def verdicts(grant: Grant, runs: list[Outcomes]) -> list[Verdict]:
    return [Verdict(p, i, runs[p].passed[i], runs[p].answers[i], runs[p].weights[i])
            for p in grant.problems for i in range(grant.start, grant.end)]


@dataclass
class Run:
    schedule: Schedule
    released: list  # every grant, in release order
    counts: list  # samples per problem: the largest end over its grants

    @property
    def unit_ids(self) -> set:
        return {g.unit_id for g in self.released}


def counts_of(grants, problems: int) -> list[int]:
    counts = [0] * problems
    for g in grants:
        for p in g.problems:
            counts[p] = max(counts[p], g.end)
    return counts


def drive(policy: AllocationSettings, runs: list[Outcomes], rng: random.Random, samples_per_unit: int = 64,
          weighted: bool = False) -> Run:
    """The driver: land one pending unit chosen by `rng`, queue what the schedule releases."""
    schedule = Schedule(policy, samples_per_unit, weighted)
    pending = schedule.advance()
    released = list(pending)
    while pending:
        grant = pending.pop(rng.randrange(len(pending)))
        schedule.landed(grant.unit_id, verdicts(grant, runs))
        new = schedule.advance()
        pending += new
        released += new
    return Run(schedule, released, counts_of(released, policy.problems))


def resume(policy: AllocationSettings, runs: list[Outcomes], samples_per_unit: int, weighted: bool) -> Run:
    """A resumed driver: feeds every stored unit the schedule releases, round after round."""
    schedule = Schedule(policy, samples_per_unit, weighted)
    released, waiting = [], schedule.advance()
    while waiting:
        released += waiting
        for grant in waiting:
            schedule.landed(grant.unit_id, verdicts(grant, runs))
        waiting = schedule.advance()
    return Run(schedule, released, counts_of(released, policy.problems))


# --- units ----------------------------------------------------------------------------------

def test_unit_ids_and_block_sizes():
    assert grant_unit_id(2, 0, 25, 8, 16) == "r002-p000000-000025-s000008-000016"
    assert MIN_BLOCKS == 8
    # min(samples_per_unit // max(first, step), ceil(problems / 8)), at least 1
    assert block_size(AllocationSettings("until_solved", cap=32, problems=3, first=4), 64) == 1  # ceil(3/8)
    assert block_size(AllocationSettings("until_solved", cap=32, problems=100, first=4), 64) == 13  # ceil(100/8)
    assert block_size(AllocationSettings("until_solved", cap=32, problems=100, first=4), 16) == 4  # 16 // 4
    assert block_size(AllocationSettings("until_solved", cap=32, problems=100, first=4, step=8), 16) == 2  # 16 // 8
    assert block_size(AllocationSettings("until_solved", cap=32, problems=100, first=4), 3) == 1  # 0 -> 1
    assert Schedule(AllocationSettings("until_solved", cap=32, problems=20, first=4), 16).block == 3


def test_round_one_is_released_at_once_in_blocks():
    # 20 problems, first 4, 16 samples per unit: blocks of min(16 // 4, ceil(20 / 8)) = 3 problems.
    schedule = Schedule(AllocationSettings("until_solved", cap=32, problems=20, first=4), 16)
    grants = schedule.advance()
    assert [(g.block_start, g.problems, g.start, g.end) for g in grants] == [
        (b, tuple(range(b, min(b + 3, 20))), 0, 4) for b in range(0, 20, 3)]
    assert grants[-1].unit_id == "r001-p000018-000020-s000000-000004"
    assert all(g.round == 1 and g.samples <= 16 for g in grants)
    assert schedule.advance() == [] and not schedule.finished


# --- by hand --------------------------------------------------------------------------------

def test_until_solved_by_hand():
    # cap 32, first 4, step 4, one problem per block (ceil(3/8) = 1). Problem 0 first passes at 5: its
    # round 2 [4, 8) finds it, so it stops at 8. Problem 1 never passes: rounds 1..8 up to the cap. Problem 2
    # passes at 0: round 1 alone.
    policy = AllocationSettings("until_solved", cap=32, problems=3, first=4)
    runs = [first_pass_at(5, 32), never(32), first_pass_at(0, 32)]
    run = drive(policy, runs, random.Random(0))
    assert run.counts == [8, 32, 4]
    assert run.unit_ids == {
        "r001-p000000-000001-s000000-000004", "r001-p000001-000002-s000000-000004",
        "r001-p000002-000003-s000000-000004", "r002-p000000-000001-s000004-000008",
    } | {f"r{r:03d}-p000001-000002-s{4 * r - 4:06d}-{4 * r:06d}" for r in range(2, 9)}
    assert run.schedule.finished and run.schedule.asked[-1] == [8, 32, 4]
    # 2 samples per unit: block_size 1 and each range cut into units of 2.
    small = drive(policy, runs, random.Random(1), samples_per_unit=2)
    assert small.counts == [8, 32, 4]
    assert {g.unit_id for g in small.released if g.problems == (0,)} == {
        "r001-p000000-000001-s000000-000002", "r001-p000000-000001-s000002-000004",
        "r002-p000000-000001-s000004-000006", "r002-p000000-000001-s000006-000008"}
    assert all(g.samples == 2 for g in small.released)


def test_until_solved_with_a_binding_budget_by_hand():
    # 3 problems that never pass, cap 32, first 4, budget 22: round 1 takes 12; the plan splits the 10 left
    # over three blocks of 4: level 3, the spare to problem 0 -> [4, 3, 3]. Then nothing is left.
    policy = AllocationSettings("until_solved", cap=32, problems=3, first=4, budget=22)
    run = drive(policy, [never(32)] * 3, random.Random(0))
    assert run.counts == [8, 7, 7] and sum(run.counts) == 22
    assert run.unit_ids == {f"r001-p{i:06d}-{i + 1:06d}-s000000-000004" for i in range(3)} | {
        "r002-p000000-000001-s000004-000008", "r002-p000001-000002-s000004-000007",
        "r002-p000002-000003-s000004-000007"}
    assert run.schedule.plans == [(4, 3, 3), (0, 0, 0)] and run.schedule.finished


def test_allowances_a_solved_problem_does_not_use_come_back():
    # Budget 18, first 4: the first plan splits 6 over three blocks: [2, 2, 2]. Problem 0 passed at 0, so
    # it draws none of its 2; the next plan gives the 2 left to problems 1 and 2: [0, 1, 1].
    policy = AllocationSettings("until_solved", cap=32, problems=3, first=4, budget=18)
    run = drive(policy, [first_pass_at(0, 32), never(32), never(32)], random.Random(0))
    assert run.schedule.plans == [(2, 2, 2), (0, 1, 1), (0, 0, 0)]
    assert run.counts == [4, 7, 7] and sum(run.counts) == 18


def test_confidence_by_hand():
    # first 2, step 1, threshold 0.95: AAAA stops at 4 (1 - 1/32; 1 - 1/16 at 3); ABAAAAA at 7 (247/256;
    # 1 - 8/128 = 0.9375 at 6).
    policy = AllocationSettings("confidence", cap=20, problems=2, first=2, step=1)
    runs = [outcomes([False] * 20, ["A"] * 20), outcomes([False] * 20, ["A", "B"] + ["A"] * 18)]
    assert drive(policy, runs, random.Random(3)).counts == [4, 7]


def test_weighted_confidence_by_hand():
    # first 4, step 1, answers A B A A ...: plain votes stop at 7. B weighing 0 against A's 1 gives 4 votes
    # to 0 after 4 samples: 1 - 1/32, stop at 4.
    policy = AllocationSettings("confidence", cap=20, problems=1, first=4, step=1)
    run = [outcomes([False] * 20, ["A", "B"] + ["A"] * 18, [1.0, 0.0] + [1.0] * 18)]
    assert drive(policy, run, random.Random(0)).counts == [7]
    assert drive(policy, run, random.Random(0), weighted=True).counts == [4]


def test_coverage_waits_for_round_one_then_fits_its_prior():
    # Round 1 (first 2): passes 0, 2, 0, 2 -> prior Beta(1/2, 1/2) (all or nothing: Jeffreys'). Blocks of 2:
    # after n failures, miss(1/2, 1/2 + n, 2) = (n + 1/2)(n + 3/2) / ((n + 1)(n + 2)), so the next block
    # gains (1 - that)/2 per sample: 0.135 at n = 2, ..., 0.0514 at n = 8 (80.75/90), 0.0426 at n = 10
    # (120.75/132). min_gain 0.05: problem 0 (never passing) stops at 10. Problem 2 first passes at 2:
    # round 2 [2, 4) solves it. Problems 1 and 3 are solved in round 1.
    policy = AllocationSettings("coverage", cap=16, problems=4, first=2, min_gain=0.05)
    runs = [never(16), outcomes([True] * 16), first_pass_at(2, 16), outcomes([True] * 16)]
    schedule = Schedule(policy, 64)
    first = schedule.advance()
    assert len(first) == 4 and schedule.plans == []
    for grant in first[:3]:
        schedule.landed(grant.unit_id, verdicts(grant, runs))
        assert schedule.advance() == [] and schedule.prior is None  # the prior needs all of round 1
    schedule.landed(first[3].unit_id, verdicts(first[3], runs))
    assert {g.unit_id for g in schedule.advance()} == {"r002-p000000-000001-s000002-000004",
                                                       "r002-p000002-000003-s000002-000004"}
    assert (schedule.prior.alpha, schedule.prior.beta) == pytest.approx((0.5, 0.5), rel=1e-12)
    run = drive(policy, runs, random.Random(0))
    assert run.counts == [10, 2, 4, 2] and run.schedule.finished


# --- refused problems and missing weights ---------------------------------------------------

def test_a_refused_problem_gets_no_more_units_and_spends_nothing():
    # Problem 1's round 1 unit lands without rows: refused. Problem 0 (never passing) goes on to the cap,
    # 16, the whole budget: it would stop at 12 if problem 1's 4 round-1 samples counted.
    policy = AllocationSettings("until_solved", cap=16, problems=2, first=4, budget=16)
    schedule = Schedule(policy, 64)
    grants = schedule.advance()
    assert [g.problems for g in grants] == [(0,), (1,)]
    schedule.landed(grants[1].unit_id, [])
    assert schedule.refused == {1}
    pending = [grants[0]] + schedule.advance()
    released = list(pending)
    while pending:
        grant = pending.pop(0)
        schedule.landed(grant.unit_id, verdicts(grant, [never(16), never(16)]))
        new = schedule.advance()
        pending += new
        released += new
    assert not any(1 in g.problems for g in released)
    assert counts_of(released, 2) == [16, 0] and schedule.finished
    assert all(plan[1] == 0 for plan in schedule.plans[1:])


@pytest.mark.parametrize("policy, cap, budget", [
    # Were the refused problem to take part in the split, until_solved would give it half of what is left
    # (even_split([4, 4], 4) = [2, 2]) and problem 1 would end at 15; coverage would give it the block
    # worth the most (seen from 0 samples) and problem 1 would end at 6.
    ("until_solved", 16, 16),
    ("coverage", 8, 10),
])
def test_a_refused_problem_takes_no_share_of_a_binding_budget(policy, cap, budget):
    # Problem 0 refused in round 1; problem 1 never passes and could spend the whole budget (to the cap).
    settings_ = AllocationSettings(policy, cap=cap, problems=2, first=4, budget=budget)
    schedule = Schedule(settings_, 64)
    grants = schedule.advance()
    schedule.landed(grants[0].unit_id, [])
    pending, released = grants[1:] + schedule.advance(), []
    while pending:
        grant = pending.pop(0)
        released.append(grant)
        schedule.landed(grant.unit_id, verdicts(grant, [never(cap), never(cap)]))
        pending += schedule.advance()
    assert counts_of(released, 2) == [0, min(cap, budget)]


def test_weighted_votes_wait_for_their_weights():
    # Weighted confidence: problem 0's round 1 lands without weights, so none of its samples counts and its
    # decision waits; problem 1's (with weights) is decided and released at once.
    policy = AllocationSettings("confidence", cap=8, problems=2, first=2, step=2)
    runs = [outcomes([False] * 8, ["A", "B"] * 4), outcomes([False] * 8, ["A", "B"] * 4)]
    schedule = Schedule(policy, 64, weighted=True)
    first = schedule.advance()
    schedule.landed(first[0].unit_id, [Verdict(0, i, False, runs[0].answers[i], None) for i in range(2)])
    schedule.landed(first[1].unit_id, verdicts(first[1], runs))
    assert [g.unit_id for g in schedule.advance()] == ["r002-p000001-000002-s000002-000004"]
    assert schedule.decisions[0] == [None, 2]
    assert schedule.advance() == [] and not schedule.finished
    # The same verdicts unweighted decide both problems.
    plain = Schedule(policy, 64)
    first = plain.advance()
    plain.landed(first[0].unit_id, [Verdict(0, i, False, runs[0].answers[i], None) for i in range(2)])
    plain.landed(first[1].unit_id, verdicts(first[1], runs))
    assert len(plain.advance()) == 2 and plain.decisions[0] == [2, 2]


def test_a_unit_landing_twice_counts_once():
    policy = AllocationSettings("until_solved", cap=8, problems=1, first=4)
    schedule = Schedule(policy, 64)
    (grant,) = schedule.advance()
    schedule.landed(grant.unit_id, verdicts(grant, [never(8)]))
    schedule.landed(grant.unit_id, [])  # a repeat (e.g. a resumed driver's stored unit): ignored, not refused
    assert schedule.refused == set()
    assert [g.unit_id for g in schedule.advance()] == ["r002-p000000-000001-s000004-000008"]


# --- any problems, any arrival order --------------------------------------------------------

@dataclass(frozen=True)
class Case:
    policy: AllocationSettings
    runs: list
    samples_per_unit: int
    weighted: bool


@st.composite
def cases(draw, budget: bool = True) -> Case:
    policy = draw(st.sampled_from(["until_solved", "coverage", "confidence"]))
    cap = draw(st.integers(1, 40))
    problems = draw(st.integers(1, 12))
    first = draw(st.one_of(st.none(), st.integers(1, cap)))
    first_samples = first if first is not None else min(8, cap)
    step = draw(st.one_of(st.none(), st.integers(1, 8)))
    spend = draw(st.one_of(st.none(), st.integers(first_samples * problems, cap * problems + 10))) if budget else None
    weighted = policy == "confidence" and draw(st.booleans())
    samples_per_unit = draw(st.integers(1, 200))
    runs = []
    for _ in range(problems):
        rate = draw(st.sampled_from([0.0, 0.02, 0.2, 0.7, 1.0]))
        rng = random.Random(draw(st.integers(0, 2**32)))
        answers = draw(st.sampled_from([("A",), ("A", "B"), ("A", "B", "C", None), (None,)]))
        runs.append(Outcomes([rng.random() < rate for _ in range(cap)], [rng.choice(answers) for _ in range(cap)],
                             [rng.choice([0.0, rng.random()]) for _ in range(cap)]))
    return Case(AllocationSettings(policy, cap, problems, spend, first, step=step), runs, samples_per_unit, weighted)


def run_case(case: Case, seed: int) -> Run:
    return drive(case.policy, case.runs, random.Random(seed), case.samples_per_unit, case.weighted)


@given(cases(), st.integers(0, 2**32), st.integers(0, 2**32))
@settings(max_examples=150, deadline=None)
def test_any_arrival_order_gives_the_same_units_within_budget_and_cap(case, seed_a, seed_b):
    policy = case.policy
    run = run_case(case, seed_a)
    other = run_case(case, seed_b)
    assert run.unit_ids == other.unit_ids and run.counts == other.counts
    assert run.schedule.grants == other.schedule.grants
    # Every problem's samples: the prefix 0..n-1, each drawn by exactly one unit.
    for p, n in enumerate(run.counts):
        drawn = sorted(i for g in run.released if p in g.problems for i in range(g.start, g.end))
        assert drawn == list(range(n))
        assert n <= policy.cap
    assert sum(run.counts) <= policy.total_budget
    assert sum(g.samples for g in run.released) == sum(run.counts)
    assert run.schedule.finished and run.schedule.asked[-1] == run.counts
    assert len(run.unit_ids) == len(run.released)
    assert all(g.samples <= case.samples_per_unit or (len(g.problems) == 1 and g.end - g.start == 1)
               for g in run.released)
    # Nothing left unspent while a problem still wants more.
    wanting = [wants_more(policy, run.schedule.state(i, n), run.schedule.prior) for i, n in enumerate(run.counts)]
    assert not any(wanting) or sum(run.counts) == policy.total_budget
    if policy.policy == "until_solved":  # no round after one where the problem passed
        for g in run.released:
            for p in g.problems:
                round_start = run.schedule.asked[g.round - 2][p] if g.round > 1 else 0  # a round may span units
                assert not any(case.runs[p].passed[:round_start])


@given(cases(), st.integers(0, 2**32))
@settings(max_examples=100, deadline=None)
def test_a_resumed_driver_releases_the_same_units(case, seed):
    run = run_case(case, seed)
    # Unit by unit, in the order the run released them.
    schedule = Schedule(case.policy, case.samples_per_unit, case.weighted)
    schedule.advance()
    for grant in run.released:
        schedule.landed(grant.unit_id, verdicts(grant, case.runs))
        schedule.advance()
    assert schedule.grants == run.schedule.grants and schedule.asked == run.schedule.asked and schedule.finished
    # Round after round, as a resumed driver feeds its stored units.
    resumed = resume(case.policy, case.runs, case.samples_per_unit, case.weighted)
    assert resumed.schedule.grants == run.schedule.grants and resumed.counts == run.counts


@given(cases(budget=False), st.integers(0, 2**32))
@settings(max_examples=150, deadline=None)
def test_with_the_default_budget_every_problem_ends_by_its_rule_or_the_cap(case, seed):
    policy = case.policy
    run = run_case(case, seed)
    for i, n in enumerate(run.counts):
        state = run.schedule.state(i, n)
        if policy.policy == "until_solved":
            assert state.passed or n == policy.cap
        elif policy.policy == "confidence":
            assert leader_confidence(state.votes) >= policy.confidence or n == policy.cap
        else:
            assert state.passed or n == policy.cap or not wants_more(policy, state, run.schedule.prior)
