"""How many samples each problem gets: pure decisions over verdict counts (no Ray, no store).

Policies (`allocate.policy`):
- `uniform`: today's behaviour, sampling.n samples per problem in one go; no rounds, no budget.
- `until_solved`: a problem stops once one of its samples passes.
- `coverage`: spend where the expected number of newly solved problems per sample is highest,
  under a Beta prior of pass rates fitted to round 1 (see `jobs.allocate.posterior`); solved
  problems stop, and so do hopeless ones (next block's gain per sample below `min_gain`).
- `confidence`: adaptive consistency; a problem stops once its leading answer beats the
  runner-up with probability `confidence`, with plain or reward-weighted votes.

Rounds. Round 1 draws `first` samples of every problem; every later round draws at most one
block of `step` samples (default: `first`) of each problem, always the next sample indices,
so a problem's samples are a prefix 0..n-1. Which problems draw in round r + 1 is decided in
two steps (`jobs.allocate.schedule` runs them as verdicts land):
- the plan of round r (`plan_allowances`), once every problem's round r - 1 has been decided:
  from each problem's state at that decision and the samples asked for so far, how many of the
  budget left each problem may draw in round r + 1 (its allowance; none for a problem that no
  longer wants samples);
- each problem's decision (`decide`), once its own round r verdicts are in: its allowance if
  the policy still wants samples of it, else none.
A problem's round r + 1 starts as soon as its own decision is taken: it waits for its own
verdicts and for the plan, which needs verdicts one round older, never for a global barrier
(except `coverage`'s prior, which needs all of round 1).

Determinism. A plan depends on stored verdicts of the rounds before (and the prior on round 1
alone), a decision on the plan and the problem's own verdicts; never on the order in which
verdicts arrived, the clock, or which unit finished first. The same verdicts give the same
pool, and a resumed driver recomputes every decision from the stored verdicts.

The budget. Allowances sum to at most the budget left (budget minus samples asked for so far)
and each stays within sampling.n, so no run exceeds either. Allowances a decision does not use
(the problem got solved meanwhile) come back at the next plan. Split of a budget that does
not cover every wanting problem's block (ties broken by problem-set order, so pure):
- `until_solved`, `confidence`: an even split (the largest equal share, the remainder one
  sample each to the first problems in order);
- `coverage`: blocks in order of their expected coverage gain per sample seen from the plan
  (a problem whose last verdicts are older counts the chance that its pending samples solve it
  first: 1 - B(a, b + m)/B(a, b) differences), an even split among blocks of equal value where
  the budget runs out. A problem is hopeless once its next block's gain per sample, were it to
  reach that block unsolved, drops below `min_gain`.
"""

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

from jobs.allocate.posterior import (
    BetaPrior,
    count_votes,
    coverage_gain,
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
    step: int | None = None  # samples per problem per later round; None: first
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
    def block(self) -> int:
        """Samples per problem per round after the first."""
        return self.step if self.step is not None else self.first_samples

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
class PlanInput:
    """One problem as a plan sees it: the samples asked for so far, and its state at its last
    decision (verdicts of its samples before that decision)."""

    asked: int
    known: ProblemState


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
        raise ValueError(f"config key 'allocate.step' is {step}: it must be at least 1 (unset: allocate.first)")
    if not min_gain >= 0:
        raise ValueError(f"config key 'allocate.min_gain' is {min_gain}: it must be >= 0")


# --- decisions ------------------------------------------------------------------------------

def ladder_step(settings: AllocationSettings, drawn: int) -> int:
    """Samples of the next block after `drawn` (0 at the cap): the rest of round 1, else `step`."""
    first = settings.first_samples
    end = first if drawn < first else drawn + settings.block
    return max(0, min(end, settings.cap) - drawn)


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
    """Gain per sample of the next block for a problem still unsolved after `drawn`."""
    size = ladder_step(settings, drawn)
    return coverage_gain(prior.alpha, prior.beta + drawn, size) / size


def decide(settings: AllocationSettings, allowance: int, state: ProblemState, prior: BetaPrior | None = None) -> int:
    """Samples a problem draws next round: its allowance if the policy still wants samples of
    it after all `state.drawn` of its samples (all with verdicts), else none."""
    return allowance if allowance and wants_more(settings, state, prior) else 0


def plan_allowances(settings: AllocationSettings, problems: Sequence[PlanInput],
                    prior: BetaPrior | None = None, closed: Sequence[bool] | None = None) -> tuple[int, ...]:
    """Each problem's allowance for the next round (see the module's docstring); `closed`
    problems (the engine refused their prompt) want nothing."""
    if len(problems) != settings.problems:
        raise ValueError(f"{len(problems)} problem states for {settings.problems} problems")
    if settings.policy == "coverage" and prior is None:
        raise ValueError("allocate.policy=coverage plans with the prior fitted to round 1: pass `prior`")
    left = max(0, settings.total_budget - sum(p.asked for p in problems))
    closed = closed or [False] * len(problems)
    wants = [ladder_step(settings, p.asked) if not shut and p.asked < settings.cap and _still_wants(settings, p, prior)
             else 0 for p, shut in zip(problems, closed)]
    if settings.policy != "coverage":
        return tuple(even_split(wants, left))
    return tuple(_fill_by_value(wants, [_seen_value(settings, prior, p) if w else 0.0 for p, w in zip(problems, wants)],
                                left))


def _still_wants(settings: AllocationSettings, problem: PlanInput, prior: BetaPrior | None) -> bool:
    """The policy's rule at the problem's last decision; `coverage` judges hopelessness at the
    block the problem would draw next, as the problem will when it reaches it unsolved."""
    if settings.policy != "coverage":
        return wants_more(settings, problem.known, prior)
    return problem.known.passed == 0 and _block_value(settings, prior, problem.asked) >= settings.min_gain


def _seen_value(settings: AllocationSettings, prior: BetaPrior, problem: PlanInput) -> float:
    """Expected coverage gain per sample of the problem's next block, seen from its known state:
    its pending samples may solve it first."""
    size = ladder_step(settings, problem.asked)
    a, b = prior.alpha, prior.beta + problem.known.drawn
    offset = problem.asked - problem.known.drawn
    return (miss_probability(a, b, offset) - miss_probability(a, b, offset + size)) / size


def _fill_by_value(wants: Sequence[int], values: Sequence[float], left: int) -> list[int]:
    """Whole blocks best value first (ties: problem order); where the budget runs out, an even
    split among the blocks of that value."""
    shares = [0] * len(wants)
    order = sorted((i for i, w in enumerate(wants) if w), key=lambda i: (-values[i], i))
    while order and left:
        tier = [i for i in order if values[i] == values[order[0]]]
        order = order[len(tier):]
        for i, share in zip(tier, even_split([wants[i] for i in tier], left)):
            shares[i] = share
            left -= share
    return shares


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


@dataclass(frozen=True)
class SampleResults:
    """One problem's verdicts for its samples 0..len-1 (a contiguous prefix)."""
    passed: Sequence[bool]
    answers: Sequence[Hashable | None] | None = None  # for `confidence`
    weights: Sequence[float] | None = None  # reward weights for a weighted `confidence` vote


def state_at(settings: AllocationSettings, results: SampleResults, drawn: int) -> ProblemState:
    """A problem's state after its first `drawn` samples."""
    if len(results.passed) < drawn:
        raise ValueError(f"{len(results.passed)} verdicts, fewer than the {drawn} samples asked")
    votes = None
    if settings.policy == "confidence" and results.answers is not None:
        answers = results.answers[:drawn]
        votes = count_votes(answers) if results.weights is None else weighted_votes(answers, results.weights[:drawn])
    return ProblemState(drawn, sum(bool(p) for p in results.passed[:drawn]), votes)
