"""An adaptive run's rounds as its verdicts land: which work units to generate next.

`Schedule` holds what the policies (`jobs.allocate.policies`) decide from: every problem's
verdicts so far, the samples asked for in each round, each round's plan and decisions. The
driver tells it each unit whose verdicts landed (`landed`); `advance` then takes every plan
and decision that has become possible, in a fixed order, and returns the work units they
release. No clock, no arrival order: the same stored verdicts give the same units, which is
also how a resumed driver finds where it stands (it feeds the stored verdicts first).

Units. Problems are cut into fixed blocks of consecutive problems; a unit is the samples
[start, end) of the problems of one block that draw that range in one round. A block's round
r + 1 is released once every problem of the block has its round r decision, so later blocks of
a round still generate while the first are verified and decided. Blocks hold
samples_per_unit // step problems, and at most 1/MIN_BLOCKS of the problem set so that a
round has several units to keep engines busy. Unit ids name the round, the block and the
range: `r002-p000000-000025-s000008-000016`.
"""

from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from jobs.allocate.policies import (
    AllocationSettings,
    PlanInput,
    ProblemState,
    SampleResults,
    decide,
    plan_allowances,
    state_at,
    wants_more,
)
from jobs.allocate.posterior import BetaPrior, fit_prior

# A round is cut into at least this many units where the problem set allows: while the last
# blocks of a round generate, the first are verified and their next round is decided.
MIN_BLOCKS = 8


@dataclass(frozen=True)
class Grant:
    """One work unit of an adaptive run."""

    unit_id: str
    round: int
    block_start: int  # the block's first problem index
    problems: tuple[int, ...]  # indices into the problem set
    start: int  # sample indices [start, end) of each of them
    end: int

    @property
    def samples(self) -> int:
        return len(self.problems) * (self.end - self.start)


@dataclass(frozen=True)
class Verdict:
    """What a decision reads of one sample."""

    problem: int  # index into the problem set
    sample_idx: int
    passed: bool
    answer: Hashable | None = None
    weight: float | None = None  # the reward as a vote weight (confidence with a reward model)


def grant_unit_id(round_: int, block_start: int, block_end: int, start: int, end: int) -> str:
    return f"r{round_:03d}-p{block_start:06d}-{block_end:06d}-s{start:06d}-{end:06d}"


def block_size(settings: AllocationSettings, samples_per_unit: int) -> int:
    widest = max(settings.first_samples, settings.block)
    return max(1, min(samples_per_unit // widest, -(-settings.problems // MIN_BLOCKS)))


class Schedule:
    """The rounds of one adaptive run (see the module's docstring)."""

    def __init__(self, settings: AllocationSettings, samples_per_unit: int, weighted: bool = False):
        if not settings.adaptive:
            raise ValueError("allocate.policy=uniform has no rounds: plan its units with jobs.problems.units")
        self.settings = settings
        self.samples_per_unit = samples_per_unit
        self.weighted = weighted  # confidence votes weighed by reward: a sample counts once its weight is in
        self.block = block_size(settings, samples_per_unit)
        count = settings.problems
        self._passed: list[list[bool | None]] = [[] for _ in range(count)]
        self._answers: list[list] = [[] for _ in range(count)]
        self._weights: list[list] = [[] for _ in range(count)]
        self._known = [0] * count  # each problem's verdicts: samples 0.._known[i]-1
        self.refused: set[int] = set()  # problems the engine refused: no samples, never drawn again
        self.asked: list[list[int]] = [[settings.first_samples] * count]  # asked[k][i]: samples through round k+1
        self.plans: list[tuple[int, ...]] = []  # plans[k]: allowances for round k+2
        self.decisions: list[list[int | None]] = [[None] * count]  # decisions[k][i]: drawn in round k+2
        self.prior: BetaPrior | None = None
        self.grants: dict[str, Grant] = {}  # every unit released so far
        self._released: set[tuple[int, int]] = set()  # (round, block) whose units are out
        self._landed: set[str] = set()
        self._new: list[Grant] = []
        self._release(1, range(0, count, self.block))

    # Input.
    def landed(self, unit_id: str, verdicts: Iterable[Verdict]) -> None:
        """A unit's verdicts (with weights, if weighted); its problems without any were refused."""
        grant = self.grants[unit_id]
        if unit_id in self._landed:
            return
        self._landed.add(unit_id)
        seen = set()
        for v in verdicts:
            self._record(v)
            seen.add(v.problem)
        # The engine refuses a prompt in every unit (it is too long): a problem with no rows has no samples at all.
        self.refused.update(p for p in grant.problems if p not in seen and not self._known[p])

    def _record(self, v: Verdict) -> None:
        rows = self._passed[v.problem]
        if v.sample_idx >= len(rows):
            grow = v.sample_idx + 1 - len(rows)
            for column in (rows, self._answers[v.problem], self._weights[v.problem]):
                column.extend([None] * grow)
        rows[v.sample_idx] = bool(v.passed)
        self._answers[v.problem][v.sample_idx] = v.answer
        self._weights[v.problem][v.sample_idx] = v.weight
        known = self._known[v.problem]
        while known < len(rows) and rows[known] is not None and (not self.weighted or self._weights[v.problem][known] is not None):
            known += 1
        self._known[v.problem] = known

    # Decisions.
    def advance(self) -> list[Grant]:
        """Every plan and decision now possible, in round order; the units they release."""
        while self._step():
            pass
        new, self._new = self._new, []
        return new

    @property
    def finished(self) -> bool:
        """No unit will be released any more: the last plan gave no problem an allowance."""
        return bool(self.plans) and len(self.plans) == len(self.decisions) and not any(self.plans[-1])

    def open_problems(self) -> int:
        """Problems that may still draw samples: not refused, and either waiting for their
        decision, drawing, or wanting more where the budget paused them."""
        if self.finished:
            return 0
        k = len(self.decisions) - 1
        count = 0
        for i, decision in enumerate(self.decisions[k]):
            if i in self.refused:
                continue
            if decision is None or decision > 0 or (self._ready(i, self.asked[k][i]) and wants_more(
                    self.settings, self.state(i, self.asked[k][i]), self.prior or BetaPrior(0.5, 0.5))):
                count += 1
        return count

    def _step(self) -> bool:
        """One plan or one round's worth of decisions; False when nothing more can be taken."""
        k = len(self.decisions) - 1  # the round being decided: round k + 1
        if len(self.plans) == k:  # its plan is not made yet
            return self._plan(k)
        if self.finished:
            return False
        for i, decision in enumerate(self.decisions[k]):
            if decision is None and self._ready(i, self.asked[k][i]):
                self.decisions[k][i] = 0 if i in self.refused else decide(
                    self.settings, self.plans[k][i], self.state(i, self.asked[k][i]), self.prior)
        self._release_blocks(k)
        if any(d is None for d in self.decisions[k]):
            return False  # the next plan needs every decision of this round
        self.asked.append([a + d for a, d in zip(self.asked[k], self.decisions[k])])
        self.decisions.append([None] * self.settings.problems)
        return True

    def _plan(self, k: int) -> bool:
        """The plan of round k + 1, once every problem's round k is decided (round 1: at once,
        or for `coverage` once round 1's verdicts give the prior)."""
        if self.settings.policy == "coverage" and self.prior is None:
            first = self.settings.first_samples
            if not all(self._ready(i, first) for i in range(self.settings.problems)):
                return False
            passes = [self.state(i, first).passed for i in range(self.settings.problems) if i not in self.refused]
            self.prior = fit_prior(first, passes) if passes else BetaPrior(0.5, 0.5)
        known = self.asked[k - 1] if k else [0] * self.settings.problems
        inputs = [PlanInput(0 if i in self.refused else self.asked[k][i], self.state(i, known[i]))
                  for i in range(self.settings.problems)]
        closed = [i in self.refused for i in range(self.settings.problems)]
        self.plans.append(plan_allowances(self.settings, inputs, self.prior, closed))
        return True

    def _ready(self, i: int, through: int) -> bool:
        return i in self.refused or self._known[i] >= through

    def state(self, i: int, drawn: int) -> ProblemState:
        """Problem i after its first `drawn` samples (all with verdicts)."""
        if i in self.refused:
            return ProblemState(0)
        weights = self._weights[i] if self.weighted else None
        return state_at(self.settings, SampleResults(self._passed[i], self._answers[i], weights), drawn)

    # Units.
    def _release_blocks(self, k: int) -> None:
        """Round k + 2's units of every block whose round k + 1 decisions are all taken."""
        for b in range(0, self.settings.problems, self.block):
            members = range(b, min(b + self.block, self.settings.problems))
            if (k + 2, b) not in self._released and all(self.decisions[k][i] is not None for i in members):
                self._release(k + 2, [b], {i: (self.asked[k][i], self.asked[k][i] + self.decisions[k][i]) for i in members})

    def _release(self, round_: int, blocks: Iterable[int], ranges: dict | None = None) -> None:
        for b in blocks:
            self._released.add((round_, b))
            end_block = min(b + self.block, self.settings.problems)
            members = range(b, end_block)
            spans = ranges or {i: (0, self.settings.first_samples) for i in members}
            by_range: dict[tuple[int, int], list[int]] = {}
            for i in members:
                if spans[i][1] > spans[i][0]:
                    by_range.setdefault(spans[i], []).append(i)
            for (start, end), problems in sorted(by_range.items()):
                width = max(1, self.samples_per_unit // len(problems))
                for s in range(start, end, width):
                    e = min(s + width, end)
                    grant = Grant(grant_unit_id(round_, b, end_block, s, e), round_, b, tuple(problems), s, e)
                    self.grants[grant.unit_id] = grant
                    self._new.append(grant)
