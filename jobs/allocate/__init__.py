"""Adaptive sample allocation: how many samples each problem gets, decided from the verdicts
that have landed (uniform, until_solved, coverage, confidence). `policies`: the decisions, pure
functions of counts; `posterior`: the Bayesian arithmetic; `schedule`: an adaptive run's rounds
and work units as verdicts land; `summary`: metrics.json `allocation`."""

from jobs.allocate.policies import (
    POLICIES,
    AllocationSettings,
    PlanInput,
    ProblemState,
    SampleResults,
    check_settings,
    decide,
    even_split,
    ladder_step,
    plan_allowances,
    state_at,
    wants_more,
)
from jobs.allocate.posterior import (
    BetaPrior,
    count_votes,
    coverage_gain,
    fit_prior,
    leader_confidence,
    weighted_votes,
)
from jobs.allocate.schedule import Grant, Schedule, Verdict
from jobs.allocate.summary import allocation_summary, prefix_steps

__all__ = [
    "POLICIES", "AllocationSettings", "BetaPrior", "Grant", "PlanInput", "ProblemState", "SampleResults", "Schedule",
    "Verdict", "allocation_summary", "check_settings", "count_votes", "coverage_gain", "decide", "even_split",
    "fit_prior", "ladder_step", "leader_confidence", "plan_allowances", "prefix_steps", "state_at", "wants_more",
    "weighted_votes",
]
