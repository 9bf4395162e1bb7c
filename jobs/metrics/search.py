"""Step-level search against independent sampling at matched compute: pure functions over
arrays, no I/O and no config (`jobs.usecases.search_metrics` reads the root and calls them).

A search run (`strategy.kind=beam|dvts`) ends with N trajectories per problem, sample 0 its
best-scored one. Its accuracy is read four ways: `top` (sample 0 passes), `weighted_vote` (the
answer with the largest sum of rewards over the N wins), `majority` (the plurality of the N) and
`pass_at_n` (any of the N passes); ties between answers are broken uniformly, as majority@k and
weighted@k break them (`jobs.metrics.estimators.votes_by_problem` at k = N, which is exact).

Compute per problem, prefill of the policy left out as everywhere in metrics.json:
- policy tokens: a search's every generated token (each node's step, pruned and duplicate nodes
  too, and its lookahead rollout); a sample run's samples' tokens, k/n of them at k;
- PRM tokens: what the process reward model read (a search's tree `prm_tokens`; a sample run's
  scores `num_tokens`, k/n of them at k); None where the root does not record it;
- FLOPs: 2 x parameters x tokens for each model (a forward pass costs ~2 FLOPs per parameter
  per token); None where a model's size or a token count is unknown.

A search is compared with a sample run at the same cost by `at_cost`: the k whose cost equals
the search's (costs are proportional to k), and the sample run's curve there, linear in log2(k)
between its measured ks; a cost beyond its largest k is not extrapolated.
"""

from dataclasses import dataclass

import numpy as np

from jobs.metrics.estimators import votes_by_problem


def flops(policy_params: int | None, policy_tokens: float | None, prm_params: int | None,
          prm_tokens: float | None) -> float | None:
    """2 x params x tokens of the policy plus the same of the PRM; None if any factor is unknown."""
    if None in (policy_params, policy_tokens, prm_params, prm_tokens):
        return None
    return 2.0 * policy_params * policy_tokens + 2.0 * prm_params * prm_tokens


def search_accuracy(problem, sample_idx, passed, answer, weights) -> dict[str, np.ndarray]:
    """Per problem (indices 0..P-1 in `problem`): `top`, `weighted_vote`, `majority` and
    `pass_at_n` over all of its samples. `answer`: integer answer ids (-1: none); `weights`: the
    non-negative vote weights (a null reward weighs 0)."""
    problem = np.asarray(problem, dtype=np.int64)
    passed = np.asarray(passed, dtype=bool)
    sample_idx = np.asarray(sample_idx, dtype=np.int64)
    num_problems = int(problem.max()) + 1 if problem.size else 0
    n = np.bincount(problem, minlength=num_problems)
    top = np.full(num_problems, np.nan)
    first = sample_idx == 0
    top[problem[first]] = passed[first]
    # The vote at k = n of each problem: one call with every distinct n (mostly just N), each
    # problem's value read at its own n. k = n is exact: no Monte Carlo draw is read.
    sizes = sorted(set(n[n > 0].tolist()))
    votes = votes_by_problem(problem, answer, passed, weights, sizes, draws=1)
    pick = {name: np.array([votes[name][0][int(size)][p] if size else np.nan for p, size in enumerate(n)])
            for name in ("majority_at_k", "weighted_at_k")}
    any_pass = np.bincount(problem, weights=passed, minlength=num_problems) > 0
    return {"top": top, "weighted_vote": pick["weighted_at_k"], "majority": pick["majority_at_k"],
            "pass_at_n": np.where(n > 0, any_pass, np.nan)}


def mean_or_none(values: np.ndarray) -> float | None:
    values = np.asarray(values, dtype=np.float64)
    return None if values.size == 0 or np.isnan(values).all() else float(np.nanmean(values))


def per_problem(total: float | None, problems: int) -> float | None:
    return None if total is None or not problems else total / problems


def cost_at_k(ks: list[int], n: np.ndarray, per_problem_cost: np.ndarray | None) -> dict[str, float] | None:
    """A sample run's cost per problem at each k: the mean over problems of k/n of what its n
    samples cost (k x the cost of a sample); None where the cost is unknown."""
    if per_problem_cost is None:
        return None
    per_sample = float(np.mean(np.asarray(per_problem_cost, dtype=np.float64) / np.asarray(n, dtype=np.float64)))
    return {str(k): k * per_sample for k in ks}


def flops_at_k(ks: list[int], policy: dict | None, policy_params: int | None, prm: dict | None,
               prm_params: int | None) -> dict[str, float] | None:
    if policy is None or prm is None or policy_params is None or prm_params is None:
        return None
    return {str(k): flops(policy_params, policy[str(k)], prm_params, prm[str(k)]) for k in ks}


@dataclass(frozen=True)
class AtCost:
    """A sample run's curve at the cost a search spent."""

    k: float | None  # the samples per problem that cost as much; None: a cost is unknown
    value: float | None  # the curve there; None: no curve, or k off the measured ks
    beyond: bool = False  # k beyond the largest measured k (the sample run's n)
    below: bool = False  # k below the smallest measured k (less than one sample)


def at_cost(ks, costs, values, cost: float | None) -> AtCost:
    """The k at which a sample run's cost (`costs`, at `ks`, proportional to k) equals `cost`,
    and `values` (None: no such curve) there, linear in log2(k) between the measured ks."""
    ks = np.asarray(ks, dtype=np.float64)
    costs = None if costs is None else np.asarray(costs, dtype=np.float64)
    if cost is None or costs is None or not ks.size or costs[-1] <= 0:
        return AtCost(None, None)
    k = float(cost * ks[-1] / costs[-1])
    if k > ks[-1] * (1 + 1e-9):
        return AtCost(k, None, beyond=True)
    if k < ks[0] * (1 - 1e-9):
        return AtCost(k, None, below=True)
    if values is None or any(v is None for v in values):
        return AtCost(k, None)
    value = float(np.interp(np.log2(np.clip(k, ks[0], ks[-1])), np.log2(ks), np.asarray(values, dtype=np.float64)))
    return AtCost(k, value)
