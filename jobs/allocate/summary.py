"""metrics.json `allocation`: what an allocation spent and what it solved, from final counts."""

import statistics
from collections.abc import Sequence


def allocation_summary(steps: Sequence[Sequence[int]], first_pass: Sequence[int | None],
                       tokens: int | None = None) -> dict:
    """Samples spent, problems solved, samples per problem, and the solved-versus-spent curve.

    `steps[j][i]`: problem i's samples after step j of the run, in the order the run spent them
    (an adaptive run's rounds; a uniform run's prefixes 1, 2, 4, ..., n), the last being the
    final counts. `first_pass[i]`: the index of problem i's first passing sample (None: none).
    The curve has one point per step: (samples spent so far, problems with a pass among them).
    """
    if not steps:
        raise ValueError("an allocation has at least one step")
    drawn = list(steps[-1])
    if any(len(step) != len(first_pass) for step in steps):
        raise ValueError("every step needs one entry per problem")
    for n, f in zip(drawn, first_pass):
        if f is not None and not 0 <= f < n:
            raise ValueError(f"inconsistent counts: {n} drawn, first pass at {f}")
    curve = [{"samples_spent": int(sum(step)),
              "problems_solved": sum(f is not None and f < n for n, f in zip(step, first_pass))} for step in steps]
    return {
        "samples_spent": int(sum(drawn)),
        "tokens_spent": tokens,
        "problems": len(drawn),
        "problems_solved": sum(f is not None for f in first_pass),
        "samples_per_problem": {"min": min(drawn), "median": float(statistics.median(drawn)), "max": max(drawn)}
        if drawn else None,
        "solved_vs_samples": curve,
    }


def prefix_steps(drawn: Sequence[int]) -> list[list[int]]:
    """A uniform run's steps: every problem stopped at 1, 2, 4, ... samples, then all of them."""
    most = max(drawn, default=0)
    limits = [1 << j for j in range(most.bit_length()) if 1 << j < most] + ([most] if most else [])
    return [[min(n, limit) for n in drawn] for limit in limits]
