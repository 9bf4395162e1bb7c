"""An adaptive run against uniform sampling: its problems solved against samples spent beside a
uniform curve, and how many samples uniform sampling needs to solve as many problems.

The uniform curve is the run's own metrics.json `allocation.uniform_expected` (what uniform
sampling is expected to solve, estimated from the run's round 1) or, with `troop report
--against ROOT`, a uniform run's measured pass@k. Everything here reads metrics.json only;
its `allocation` section is written by `jobs.usecases.allocation.allocation_metrics`.
"""

from dataclasses import dataclass

import numpy as np

from jobs.errors import ConfigError, StoreError
from jobs.report.runs import Run, curve, load_metrics
from jobs.store.root import RunStore

EXPECTED_LABEL = "uniform, expected from round 1"


@dataclass
class SolvedCurve:
    """Share of the problems solved against samples spent over all of them, by increasing samples."""

    label: str
    samples: np.ndarray
    solved: np.ndarray


@dataclass
class EqualCoverage:
    """The samples uniform sampling needs to solve the share of problems an adaptive run solved."""

    run: str  # the adaptive run's label
    policy: str
    solved: float  # the adaptive run's final share of problems solved
    adaptive_samples: int  # what the adaptive run spent in all
    uniform: str  # the uniform curve's label
    uniform_samples: float | None  # None: the uniform curve never solves that share

    @property
    def ratio(self) -> float | None:
        """Uniform samples over adaptive samples (above 1: the adaptive run saved samples)."""
        if self.uniform_samples is None or not self.adaptive_samples:
            return None
        return self.uniform_samples / self.adaptive_samples


@dataclass
class AdaptiveRun:
    """An adaptive run of the report, with the uniform curve it is compared with."""

    run: Run
    curve: SolvedCurve
    uniform: SolvedCurve
    equal: EqualCoverage


def is_adaptive(metrics: dict) -> bool:
    return (metrics.get("allocation") or {}).get("policy", "uniform") != "uniform"


def _share(solved, problems: int) -> np.ndarray:
    return np.asarray(solved, dtype=np.float64) / max(problems, 1)


def adaptive_curve(label: str, allocation: dict) -> SolvedCurve:
    """The run's rounds: samples spent and problems solved after each."""
    points = allocation.get("solved_vs_samples") or []
    samples = np.array([p["samples_spent"] for p in points], dtype=np.float64)
    return SolvedCurve(label, samples, _share([p["problems_solved"] for p in points], allocation["problems"]))


def expected_uniform(allocation: dict) -> SolvedCurve:
    points = allocation.get("uniform_expected") or []
    samples = np.array([p["samples_spent"] for p in points], dtype=np.float64)
    return SolvedCurve(EXPECTED_LABEL, samples, _share([p["problems_solved"] for p in points], allocation["problems"]))


def measured_uniform(store: RunStore) -> SolvedCurve:
    """A uniform run's pass@k as problems solved against samples spent (k x its problems)."""
    metrics = load_metrics(store)
    problems = (metrics.get("counts") or {}).get("problems")
    ks, values = curve(metrics, "pass_at_k")
    if not ks.size or not problems:
        raise StoreError(f"{store.root} has no pass_at_k in metrics.json: run troop metrics {store.root} first")
    if is_adaptive(metrics):
        raise ConfigError(f"{store.root} is an adaptive run (allocate.policy={metrics['allocation']['policy']}): "
                          "--against needs the root of a run with allocate.policy=uniform")
    return SolvedCurve(f"uniform run: {store.root}", ks * float(problems), values)


def samples_to_reach(uniform: SolvedCurve, share: float) -> float | None:
    """The fewest samples at which `uniform` solves `share` of the problems, linear between its
    points; None if it never does. The curve starts at (0, 0): one sample for a random part of
    the problems solves that part of what one sample each solves, so that segment is a line too."""
    if share <= 0:
        return 0.0
    xs = np.concatenate(([0.0], uniform.samples))
    ys = np.concatenate(([0.0], uniform.solved))
    for x0, y0, x1, y1 in zip(xs, ys, xs[1:], ys[1:]):
        if y1 >= share:
            return float(x0) if y0 >= share else float(x0 + (share - y0) / (y1 - y0) * (x1 - x0))
    return None


def equal_coverage(label: str, allocation: dict, uniform: SolvedCurve) -> EqualCoverage:
    share = float(_share(allocation["problems_solved"], allocation["problems"]))
    return EqualCoverage(label, allocation["policy"], share, int(allocation["samples_spent"]), uniform.label,
                         samples_to_reach(uniform, share))


def adaptive_runs(runs: list[Run], against: SolvedCurve | None = None) -> list[AdaptiveRun]:
    """The runs whose allocation was adaptive, each against `against` or its own expected
    uniform curve."""
    adaptive = []
    for run in runs:
        if is_adaptive(run.metrics):
            allocation = run.metrics["allocation"]
            uniform = against or expected_uniform(allocation)
            adaptive.append(AdaptiveRun(run, adaptive_curve(run.label, allocation), uniform,
                                        equal_coverage(run.label, allocation, uniform)))
    return adaptive
