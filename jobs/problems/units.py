"""Work units and seeds: a pure, deterministic function of the problem set and the config.

A unit is a block of consecutive problems x a range of sample indices [start, end). Its id
names both ranges, so a unit's id always means the same samples, whatever the unit size.

Seeds do not depend on how units are cut: problem p gets a base seed from (run.seed, p), and
sample i of p has seed base + i. A unit asks the engine for `SamplingParams(n=end-start,
seed=base+start)`, which vLLM expands to seeds base+start, ..., base+end-1: the seed column of
each sample reproduces it as a lone request. Distinct sample indices of a problem can never
share a seed, and raising `sampling.n` only adds new indices.
"""

import hashlib
from dataclasses import dataclass
from typing import Sequence

# Seeds stay below 2**62 so that base + sample_idx fits an int64 column and torch's generator.
SEED_BITS = 62


@dataclass(frozen=True)
class WorkUnit:
    unit_id: str
    problem_start: int  # index into the problem set
    problem_ids: tuple[str, ...]
    sample_start: int
    sample_end: int

    @property
    def samples_per_problem(self) -> int:
        return self.sample_end - self.sample_start

    @property
    def num_samples(self) -> int:
        return len(self.problem_ids) * self.samples_per_problem


def problem_seed(run_seed: int, problem_id: str) -> int:
    """The seed of sample 0 of a problem; sample i has this plus i."""
    digest = hashlib.blake2b(f"{run_seed}\x00{problem_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> (64 - SEED_BITS)


def sample_seed(run_seed: int, problem_id: str, sample_idx: int) -> int:
    return problem_seed(run_seed, problem_id) + sample_idx


def unit_id(problem_start: int, problem_end: int, sample_start: int, sample_end: int) -> str:
    return f"p{problem_start:06d}-{problem_end:06d}-s{sample_start:06d}-{sample_end:06d}"


def plan_units(
    problem_ids: Sequence[str], n: int, samples_per_unit: int, segments: Sequence[tuple[int, int]] | None = None
) -> list[WorkUnit]:
    """Units covering every (problem, sample index < n) exactly once.

    Each unit takes min(n, samples_per_unit) sample indices of as many problems as keep it
    within samples_per_unit samples; n larger than that splits a problem's samples over units.
    `segments` ([start, end) ranges that tile 0..n, by default one) are planned one after the
    other: a run whose sampling.n was raised keeps the units of its first n and adds units for
    the new indices only.
    """
    if n < 1 or samples_per_unit < 1:
        raise ValueError(f"n={n} and samples_per_unit={samples_per_unit} must be at least 1")
    segments = list(segments or [(0, n)])
    if segments[0][0] != 0 or segments[-1][1] != n or any(a[1] != b[0] for a, b in zip(segments, segments[1:])):
        raise ValueError(f"segments {segments} do not tile 0..{n}")
    return [unit for start, end in segments for unit in _plan_segment(problem_ids, start, end, samples_per_unit)]


def _plan_segment(problem_ids: Sequence[str], first: int, n: int, samples_per_unit: int) -> list[WorkUnit]:
    width = min(n - first, samples_per_unit)
    block = max(1, samples_per_unit // width)
    units = []
    for p_start in range(0, len(problem_ids), block):
        p_end = min(p_start + block, len(problem_ids))
        for s_start in range(first, n, width):
            s_end = min(s_start + width, n)
            units.append(
                WorkUnit(
                    unit_id=unit_id(p_start, p_end, s_start, s_end),
                    problem_start=p_start,
                    problem_ids=tuple(problem_ids[p_start:p_end]),
                    sample_start=s_start,
                    sample_end=s_end,
                )
            )
    return units
