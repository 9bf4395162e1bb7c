"""Adaptive sample allocation: how many samples each problem gets, decided from the verdicts
that have landed (uniform, until_solved, coverage, confidence). Pure decisions over counts;
the driver places the work. See `jobs.allocate.policies` for the rounds, the determinism rule
and the budget split, and `jobs.allocate.posterior` for the Bayesian arithmetic."""

from jobs.allocate.policies import (
    POLICIES,
    AllocationSettings,
    ProblemState,
    Progress,
    RoundPlan,
    SampleResults,
    allocation_summary,
    check_settings,
    even_split,
    grant,
    ladder_step,
    plan_round,
    replay,
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

__all__ = [
    "POLICIES", "AllocationSettings", "BetaPrior", "ProblemState", "Progress", "RoundPlan", "SampleResults",
    "allocation_summary", "check_settings", "count_votes", "coverage_gain", "even_split", "fit_prior", "grant",
    "ladder_step", "leader_confidence", "plan_round", "replay", "state_at", "wants_more", "weighted_votes",
]
