"""How many samples each problem gets: pure decisions over verdict counts (no Ray, no store).

Policies (`allocate.policy`):
- `uniform`: today's behaviour, sampling.n samples per problem in one go; no rounds, no budget.
- `until_solved`: a problem stops at its first passing sample.
- `coverage`: spend where the expected number of newly solved problems per sample is highest,
  under a Beta prior of pass rates fitted to round 1 (see `jobs.allocate.posterior`); solved
  problems stop, and so do hopeless ones (next block's gain per sample below `min_gain`).
- `confidence`: adaptive consistency; a problem stops once its leading answer beats the
  runner-up with probability `confidence`, with plain or reward-weighted votes.

How a run unfolds. Round 1 draws `first` samples of every problem (sample indices are always a
prefix 0..n-1). Every later round starts at a barrier, when all samples asked for so far have
their verdicts: `plan_round` looks at every problem and reserves each one a number of samples
from the budget left. Inside the round each problem moves on its own: whenever all its drawn
samples have verdicts, `grant` says how many more to draw now (0: it is done for this round).
The round ends when every problem is done; the next barrier plans again with what is left of
the budget (reserves of problems that stopped early flow back). The run ends when a plan
reserves nothing. Nothing ever exceeds sampling.n per problem or the budget in all: reserves
sum to at most the budget left, and grants stay within a problem's reserve.

Determinism. A decision depends on the settings, on quantities fixed at the last barrier (the
reserves, and the prior fitted to round 1 only), and on the problem's own verdicts for exactly
its samples 0..n-1; never on another problem's in-round verdicts, the clock, or which unit
finished first. (A budget drawn from freely by problems as their verdicts land would go to
whichever problem asked first; reserving it at a barrier makes the split a function of stored
verdicts.) So the order in which verdicts arrive cannot change any decision, and the same
command gives the same sample pool; `replay` recomputes every decision from the stored
verdicts (which is also how a resumed driver finds where it stands). The prior uses round 1
only because later rounds are adaptive: problems that were solved early drew fewer samples,
which would bias a refit.

The budget split at a barrier (ties broken by problem-set order, so it is a pure function):
- `until_solved`, `confidence`: an even split among the problems that want more, each want
  capped at sampling.n - n_i (water-filling: the largest equal share, the remainder one
  sample each to the first problems in order). With the default budget (sampling.n x
  problems) every problem gets all it wants and one round after round 1 suffices.
- `coverage`: a greedy water-filling over blocks. Each unsolved problem's next blocks along
  the ladder (below) are valued by their expected coverage gain per sample under its
  posterior, 1 - B(a, b + m)/B(a, b) differences; the gain is concave in m, so a problem's
  blocks come in decreasing value and the greedy order is the optimal one. Blocks are taken
  best first until the budget runs out (the last one cut to fit). The value of a reserve counts
  the chance that earlier blocks already solve the problem (the reserve is an upper bound on
  what it spends, and the budget must hold for the worst case); samples it does not spend come
  back at the next barrier. Hopelessness is judged as the problem itself would on reaching a
  block unsolved: that block's gain per sample under its posterior then, against `min_gain`.

The ladder. Grants come in blocks that keep work units regular: with `step` unset a problem
doubles (first, 2 first, 4 first, ... then sampling.n), with `step` set it moves in blocks of
`step` (first, first + step, ...). A grant ends at the next rung, or earlier where the reserve
ends; the one after realigns to the ladder. Every problem granted in the same stretch of the
ladder asks for the same sample range, so the planner can batch them into units.
"""

import heapq
import math
import statistics
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

from jobs.allocate.posterior import (
    BetaPrior,
    count_votes,
    coverage_gain,
    fit_prior,
    leader_confidence,
    miss_probability,
    weighted_votes,
)

POLICIES = ("uniform", "until_solved", "coverage", "confidence")
DEFAULT_FIRST = 8
DEFAULT_CONFIDENCE = 0.95
# Stop a problem when its next block is expected to solve fewer than one problem per 10,000
# samples: past that, sampling it further buys almost no coverage.
DEFAULT_MIN_GAIN = 1e-4


@dataclass(frozen=True)
class AllocationSettings:
    policy: str
    cap: int  # sampling.n: most samples any problem gets
    problems: int
    budget: int | None = None  # samples over all problems; None: cap x problems
    first: int | None = None  # round 1 samples per problem; None: min(DEFAULT_FIRST, cap)
    confidence: float = DEFAULT_CONFIDENCE
    step: int | None = None  # block size of a grant; None: double
    min_gain: float = DEFAULT_MIN_GAIN

    def __post_init__(self):
        _check_values(self.policy, self.budget, self.first, self.cap, self.problems, self.confidence, self.step,
                      self.min_gain)

    @property
    def adaptive(self) -> bool:
        """False for `uniform`: one round of cap samples per problem, no decisions to take."""
        return self.policy != "uniform"

    @property
    def first_samples(self) -> int:
        """Samples per problem in round 1 (all of them for `uniform`)."""
        if not self.adaptive:
            return self.cap
        return self.first if self.first is not None else min(DEFAULT_FIRST, self.cap)

    @property
    def total_budget(self) -> int:
        """Samples over all problems (never more than cap x problems can use)."""
        most = self.cap * self.problems
        return most if self.budget is None or not self.adaptive else min(self.budget, most)


@dataclass(frozen=True)
class ProblemState:
    drawn: int  # n: samples 0..n-1, all with verdicts
    passed: int = 0  # c: how many of them passed
    votes: Mapping[Hashable, float] | None = None  # answer -> votes (counts or weighted), for `confidence`


@dataclass(frozen=True)
class RoundPlan:
    start: tuple[int, ...]  # samples drawn per problem at the barrier
    reserve: tuple[int, ...]  # samples each problem may draw in this round
    prior: BetaPrior | None = None  # `coverage`: fitted to round 1
    level: float | None = None  # `coverage`: gain per sample of the last block reserved

    @property
    def granted(self) -> int:
        return sum(self.reserve)


# --- settings -------------------------------------------------------------------------------

def check_settings(policy: str, budget: int | None, first: int | None, cap: int, problems: int,
                   has_verifier: bool, has_answers: bool, *, confidence: float = DEFAULT_CONFIDENCE,
                   step: int | None = None, min_gain: float = DEFAULT_MIN_GAIN) -> None:
    """One-line ValueErrors naming the setting and the fix (the driver makes them ConfigErrors)."""
    _check_values(policy, budget, first, cap, problems, confidence, step, min_gain)
    if policy in ("until_solved", "coverage") and not has_verifier:
        raise ValueError(f"config key 'allocate.policy' is {policy!r}: it stops on passing samples, so it needs "
                         "a verifier; set verify.verifier or use allocate.policy=uniform")
    if policy == "confidence" and not has_answers:
        raise ValueError("config key 'allocate.policy' is 'confidence': it votes over extracted answers; set "
                         "verify.verifier to an answer checker (numeric, exact, math) or pick another policy")


def _check_values(policy, budget, first, cap, problems, confidence, step, min_gain) -> None:
    if policy not in POLICIES:
        raise ValueError(f"config key 'allocate.policy' is {policy!r}: use one of {', '.join(POLICIES)}")
    if cap < 1:
        raise ValueError(f"config key 'sampling.n' is {cap}: it must be at least 1")
    if policy == "uniform":
        if budget is not None and budget != cap * problems:
            raise ValueError(f"config key 'allocate.budget' is {budget}: allocate.policy=uniform draws sampling.n="
                             f"{cap} per problem ({cap * problems} in all); drop allocate.budget or pick an "
                             "adaptive policy")
        return
    if first is not None and not 1 <= first <= cap:
        raise ValueError(f"config key 'allocate.first' is {first}: it must lie in [1, sampling.n={cap}]; lower it "
                         "or raise sampling.n")
    first = first if first is not None else min(DEFAULT_FIRST, cap)
    if budget is not None and budget < first * problems:
        raise ValueError(f"config key 'allocate.budget' is {budget}: round 1 alone needs allocate.first x problems "
                         f"= {first} x {problems} = {first * problems}; raise it or lower allocate.first")
    if not 0.5 < confidence < 1:
        raise ValueError(f"config key 'allocate.confidence' is {confidence}: it must lie in (0.5, 1), e.g. 0.95")
    if step is not None and step < 1:
        raise ValueError(f"config key 'allocate.step' is {step}: it must be at least 1 (unset: double)")
    if not min_gain >= 0:
        raise ValueError(f"config key 'allocate.min_gain' is {min_gain}: it must be >= 0")


# --- decisions ------------------------------------------------------------------------------

def ladder_step(settings: AllocationSettings, drawn: int) -> int:
    """Samples from `drawn` to the next rung of the ladder (0 at the cap)."""
    first = settings.first_samples
    if drawn < first:
        rung = first
    elif settings.step is None:
        rung = first << max(0, (drawn // first).bit_length())  # the first first x 2^j above drawn
    else:
        rung = first + settings.step * ((drawn - first) // settings.step + 1)
    return max(0, min(rung, settings.cap) - drawn)


def wants_more(settings: AllocationSettings, state: ProblemState, prior: BetaPrior | None = None) -> bool:
    """The policy's own stopping rule on one problem (budget aside)."""
    if not settings.adaptive or state.drawn >= settings.cap:
        return False
    if settings.policy == "until_solved":
        return state.passed == 0
    if settings.policy == "confidence":
        return leader_confidence(state.votes or {}) < settings.confidence
    if prior is None:
        raise ValueError("allocate.policy=coverage decides with the prior fitted to round 1: pass `prior`")
    return state.passed == 0 and _block_value(settings, prior, state.drawn) >= settings.min_gain


def _block_value(settings: AllocationSettings, prior: BetaPrior, drawn: int) -> float:
    """Gain per sample of the next ladder block for a problem still unsolved after `drawn`."""
    size = ladder_step(settings, drawn)
    return coverage_gain(prior.alpha, prior.beta + drawn, size) / size


def grant(settings: AllocationSettings, plan: RoundPlan, index: int, state: ProblemState) -> int:
    """Samples to draw now for problem `index`, all of whose `state.drawn` samples have
    verdicts; 0: it is done for this round."""
    left = plan.start[index] + plan.reserve[index] - state.drawn
    if state.drawn < plan.start[index]:
        raise ValueError(f"problem {index} has {state.drawn} samples, fewer than the {plan.start[index]} it "
                         "had when the round was planned")
    if left <= 0 or not wants_more(settings, state, plan.prior):
        return 0
    return min(ladder_step(settings, state.drawn), left)


def plan_round(settings: AllocationSettings, states: Sequence[ProblemState],
               prior: BetaPrior | None = None) -> RoundPlan:
    """Reserves of the next round from every problem's state at the barrier."""
    if len(states) != settings.problems:
        raise ValueError(f"{len(states)} problem states for {settings.problems} problems")
    start = tuple(s.drawn for s in states)
    left = max(0, settings.total_budget - sum(start))
    if settings.policy == "coverage":
        if prior is None:
            raise ValueError("allocate.policy=coverage plans with the prior fitted to round 1: pass `prior`")
        reserve, level = _fill_by_gain(settings, states, prior, left)
        return RoundPlan(start, tuple(reserve), prior, level)
    wants = [settings.cap - s.drawn if wants_more(settings, s) else 0 for s in states]
    return RoundPlan(start, tuple(even_split(wants, left)))


def even_split(wants: Sequence[int], total: int) -> list[int]:
    """At most `total` samples over problems wanting `wants`: everyone min(want, level) for the
    largest level that fits, then one more each, in order, while samples remain."""
    if sum(wants) <= total:
        return list(wants)
    low, high = 0, max(wants)  # sum(min(w, low)) <= total < sum(min(w, high))
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if sum(min(w, middle) for w in wants) <= total else (low, middle)
    shares = [min(w, low) for w in wants]
    spare = total - sum(shares)
    for i, want in enumerate(wants):
        if spare and want > low:
            shares[i] += 1
            spare -= 1
    return shares


def _fill_by_gain(settings: AllocationSettings, states: Sequence[ProblemState], prior: BetaPrior,
                  left: int) -> tuple[list[int], float | None]:
    """Blocks best first (ties: problem order) until `left` runs out. A heap holds each problem's
    next block: its blocks come in decreasing value, so this takes them in the order of a sort
    of all blocks, at the cost of the blocks taken only."""
    heap = [_block(settings, prior, s.drawn, s.drawn, math.inf, i)
            for i, s in enumerate(states) if wants_more(settings, s, prior)]
    heapq.heapify(heap)
    reserve, level = [0] * len(states), None
    while heap and left:
        negative_value, i, drawn, size = heapq.heappop(heap)
        take = min(size, left)
        reserve[i] += take
        left -= take
        level = -negative_value
        after = drawn + size
        if after < settings.cap and _block_value(settings, prior, after) >= settings.min_gain:
            heapq.heappush(heap, _block(settings, prior, states[i].drawn, after, level, i))
    return reserve, level


def _block(settings: AllocationSettings, prior: BetaPrior, start: int, drawn: int, ceiling: float,
           index: int) -> tuple[float, int, int, int]:
    """(-value, problem, drawn, size) of the ladder block at `drawn` of a problem unsolved at
    `start` (the barrier): its expected gain per sample seen from the barrier, so counting the
    chance that the blocks before it solve the problem first."""
    size = ladder_step(settings, drawn)
    a, b = prior.alpha, prior.beta + start
    gain = miss_probability(a, b, drawn - start) - miss_probability(a, b, drawn - start + size)
    return -min(ceiling, gain / size), index, drawn, size  # concave exactly; keep rounding from reordering


# --- replay ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class SampleResults:
    """One problem's verdicts for its samples 0..len-1 (a contiguous prefix)."""
    passed: Sequence[bool]
    answers: Sequence[Hashable | None] | None = None  # for `confidence`
    weights: Sequence[float] | None = None  # reward weights for a weighted `confidence` vote


@dataclass(frozen=True)
class Progress:
    target: tuple[int, ...]  # samples asked for per problem so far: draw up to these
    finished: bool  # every decision is taken and every asked sample has its verdict
    rounds: int  # rounds started, round 1 included
    plan: RoundPlan | None = None  # the current round's plan (None in round 1)


def state_at(settings: AllocationSettings, results: SampleResults, drawn: int) -> ProblemState:
    """A problem's state after its first `drawn` samples."""
    if len(results.passed) < drawn:
        raise ValueError(f"{len(results.passed)} verdicts, fewer than the {drawn} samples asked")
    votes = None
    if settings.policy == "confidence" and results.answers is not None:
        answers = results.answers[:drawn]
        votes = count_votes(answers) if results.weights is None else weighted_votes(answers, results.weights[:drawn])
    return ProblemState(drawn, sum(bool(p) for p in results.passed[:drawn]), votes)


def replay(settings: AllocationSettings, results: Sequence[SampleResults]) -> Progress:
    """Every decision again from the verdicts known so far: what to draw next, or finished.

    The same verdicts give the same answer whatever order they arrived in; more verdicts than
    asked for are ignored. (It recomputes from scratch, O(samples); a driver may instead keep
    the current plan and call `grant` as verdicts land.)
    """
    if len(results) != settings.problems:
        raise ValueError(f"results of {len(results)} problems for {settings.problems} problems")
    first = settings.first_samples
    target = [first] * settings.problems
    if not settings.adaptive or any(len(r.passed) < first for r in results):
        return Progress(tuple(target), all(len(r.passed) >= first for r in results), 1)
    prior = fit_prior(first, [sum(bool(p) for p in r.passed[:first]) for r in results]) \
        if settings.policy == "coverage" else None
    rounds = 1
    while True:
        plan = plan_round(settings, [state_at(settings, r, t) for r, t in zip(results, target)], prior)
        if plan.granted == 0:
            return Progress(tuple(target), True, rounds)
        rounds += 1
        waiting = False
        for i, r in enumerate(results):
            while more := grant(settings, plan, i, state_at(settings, r, target[i])):
                target[i] += more
                if len(r.passed) < target[i]:
                    waiting = True
                    break
        if waiting:
            return Progress(tuple(target), False, rounds, plan)


# --- summary --------------------------------------------------------------------------------

def allocation_summary(drawn: Sequence[int], passed: Sequence[int], first_pass: Sequence[int | None],
                       tokens: Sequence[int] | None = None) -> dict:
    """metrics.json `allocation` from the final counts: samples and tokens spent, problems
    solved, samples per problem, and solved versus samples spent had every problem stopped at
    L = 1, 2, 4, ..., max samples: points (L, sum_i min(n_i, L), #{first pass < L}).
    `first_pass[i]` is the index of problem i's first passing sample (None: unsolved)."""
    if not len(drawn) == len(passed) == len(first_pass):
        raise ValueError("drawn, passed and first_pass need one entry per problem")
    for n, c, f in zip(drawn, passed, first_pass):
        if not 0 <= c <= n or (f is None) != (c == 0) or (f is not None and not 0 <= f < n):
            raise ValueError(f"inconsistent counts: {n} drawn, {c} passed, first pass at {f}")
    most = max(drawn, default=0)
    limits = [1 << j for j in range(most.bit_length()) if 1 << j < most] + ([most] if most else [])
    curve = [{"limit": limit, "samples_spent": sum(min(n, limit) for n in drawn),
              "problems_solved": sum(f is not None and f < limit for f in first_pass)} for limit in limits]
    spread = {"min": min(drawn), "median": float(statistics.median(drawn)), "max": most} if drawn else None
    return {
        "samples_spent": sum(drawn),
        "tokens_spent": None if tokens is None else int(sum(tokens)),
        "problems": len(drawn),
        "problems_solved": sum(c > 0 for c in passed),
        "samples_per_problem": spread,
        "solved_vs_samples": curve,
    }
