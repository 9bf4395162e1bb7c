"""Metrics of a stored run: per-problem numbers batch by batch (`jobs.store.verified`), computed with
`jobs.metrics.estimators`, then their means, intervals and fit; written to `metrics.json` and `metrics/`.
The I/O lives here and in `jobs.store.verified` so that `jobs.metrics.estimators` stays pure. Memory holds one
batch of samples plus a few numbers per problem, whatever the pool's size."""

import json
import logging
import posixpath
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from jobs.config import MetricsConfig
from jobs.errors import ConfigError
from jobs.store.verified import BATCH_ROWS, Pool, VerifiedReader
from jobs.metrics.estimators import (
    best_of_k_curves, bootstrap_cis, default_draws, default_ks, difficulty_bins, difficulty_of, fit_scaling, pass_at_k,
    scaling_curve, votes_by_problem,
)
from jobs.store.root import RunStore

log = logging.getLogger("troop")

DEFAULT_SCORE = "mean_logprob"  # cumulative_logprob / num_tokens
CURVES = ("pass_at_k", "majority_at_k", "best_of_k", "weighted_at_k",
          # The selection comparison, where a reward model scored the pool.
          "best_of_k_logprob", "best_of_k_reward", "weighted_at_k_reward")

PROBLEMS_SCHEMA = pa.schema([
    pa.field("problem_id", pa.string(), nullable=False),
    pa.field("n", pa.int64(), nullable=False),
    pa.field("passed", pa.int64(), nullable=False),
    pa.field("pass_rate", pa.float64(), nullable=False),
    pa.field("tokens", pa.int64(), nullable=False),
    pa.field("difficulty", pa.string(), nullable=False),
])
CURVES_SCHEMA = pa.schema([
    pa.field("problem_id", pa.string(), nullable=False),
    pa.field("metric", pa.string(), nullable=False),
    pa.field("k", pa.int64(), nullable=False),
    pa.field("value", pa.float64()),
    pa.field("stderr", pa.float64()),  # Monte Carlo standard error; 0 where exact
])


def batch_curves(pool: Pool, ks: list[int], settings: MetricsConfig, draws: int, seeds: np.ndarray, weighted: bool,
                 reward_is_logit: bool = False) -> dict:
    """{curve: ({k: values over the batch's problems}, {k: standard errors} or None)}; the vote
    curves only where the verdicts have answers, weighted only where the score can weigh; with
    rewards, the selection comparison (best-of-k by log-probability and by reward, the vote
    weighted by reward)."""
    n = np.bincount(pool.problem, minlength=len(pool.problem_ids))
    c = np.bincount(pool.problem, weights=pool.passed, minlength=n.size).astype(np.int64)
    curves = {
        "pass_at_k": ({k: pass_at_k(n, c, k) for k in ks}, None),
        "best_of_k": (best_of_k_curves(pool.problem, pool.score, pool.passed, ks), None),
    }
    if pool.answer is not None:
        weights = _vote_weights(pool.score, settings.score, reward_is_logit) if weighted else np.ones(pool.score.size)
        votes = votes_by_problem(pool.problem, pool.answer, pool.passed, weights, ks, draws, seeds)
        curves["majority_at_k"] = votes["majority_at_k"]
        if weighted:
            curves["weighted_at_k"] = votes["weighted_at_k"]
    if pool.reward is not None:
        curves.update(reward_curves(pool, ks, draws, seeds, reward_is_logit))
    return curves


def reward_curves(pool: Pool, ks: list[int], draws: int, seeds: np.ndarray, reward_is_logit: bool) -> dict:
    """best-of-k by log-probability and by reward, and the vote weighted by reward: a sample
    weighs its reward where rewards are probabilities (a process model's, a classifier's label),
    and sigmoid(reward), the model's own probability, where the reward is a raw logit."""
    log_prob = pool.score if pool.log_prob is None else pool.log_prob
    curves = {
        "best_of_k_logprob": (best_of_k_curves(pool.problem, log_prob, pool.passed, ks), None),
        "best_of_k_reward": (best_of_k_curves(pool.problem, pool.reward, pool.passed, ks), None),
    }
    if pool.answer is not None:
        weights = reward_vote_weights(pool.reward, reward_is_logit)
        votes = votes_by_problem(pool.problem, pool.answer, pool.passed, weights, ks, draws, seeds)
        curves["weighted_at_k_reward"] = votes["weighted_at_k"]
    return curves


def reward_vote_weights(reward: np.ndarray, reward_is_logit: bool) -> np.ndarray:
    """A sample's weight in the vote by reward (the probability; a null reward does not vote)."""
    return np.clip(_vote_weights(reward, "reward", reward_is_logit), 0.0, None)


def _vote_weights(score: np.ndarray, column: str | None, reward_is_logit: bool = False) -> np.ndarray:
    """A sample's weight in the weighted vote: exp(mean log-prob), its geometric-mean token
    probability, for the default score; the reward as a probability (sigmoid of a raw logit)
    for `reward`; another named score column as it is (unknown: 0)."""
    if column is None:
        return np.nan_to_num(np.exp(score), nan=0.0)
    if column == "reward" and reward_is_logit:
        return np.nan_to_num(1.0 / (1.0 + np.exp(-score)), nan=0.0)
    return np.nan_to_num(score, nan=0.0)


def can_weigh(score: np.ndarray, column: str | None) -> bool:
    return column is None or column == "reward" or not np.any(np.nan_to_num(score) < 0)


@dataclass
class PerProblem:
    """Every problem's numbers, in problem_id order, gathered from the batches."""

    n: np.ndarray
    c: np.ndarray
    tokens: np.ndarray
    curves: dict  # curve -> ({k: values}, {k: stderr} or None)


def per_problem(reader: VerifiedReader, ks: list[int], settings: MetricsConfig, draws: int, ids: list[str]) -> PerProblem:
    """Runs the batches; problem p (in `ids` order) seeds its Monte Carlo draws with seed + p,
    so the numbers do not depend on how the pool is cut into batches."""
    index = {pid: i for i, pid in enumerate(ids)}
    reward_is_logit = reader.scores is not None and reader.reward_is_logit
    found = PerProblem(*(np.zeros(len(ids), dtype=np.int64) for _ in range(3)), curves={})
    weighted, answers = True, False
    for pool in reader.batches():
        rows = np.array([index[p] for p in pool.problem_ids], dtype=np.int64)
        weighted = weighted and can_weigh(pool.score, settings.score)
        answers = answers or (pool.answer is not None and bool(np.any(pool.answer >= 0)))
        found.n[rows] = np.bincount(pool.problem, minlength=rows.size)
        found.c[rows] = np.bincount(pool.problem, weights=pool.passed, minlength=rows.size)
        found.tokens[rows] = np.bincount(pool.problem, weights=pool.tokens, minlength=rows.size)
        curves = batch_curves(pool, ks, settings, draws, settings.seed + rows, weighted, reward_is_logit)
        for name, curve in curves.items():
            _place(found.curves, name, curve, rows, len(ids))
    if not weighted:
        log.warning("metrics.score=%s has negative values: weighted vote@k needs weights >= 0 and is left out", settings.score)
        found.curves.pop("weighted_at_k", None)
    if not answers:  # the verifier gives no answers: there is nothing to vote on
        for name in ("majority_at_k", "weighted_at_k", "weighted_at_k_reward"):
            found.curves.pop(name, None)
    return found


def _place(curves: dict, name: str, batch: tuple, rows: np.ndarray, size: int) -> None:
    """A batch's (values, errors) of one curve into the arrays over every problem."""
    values, errors = batch
    if name not in curves:
        curves[name] = ({k: np.full(size, np.nan) for k in values}, None if errors is None else {k: np.zeros(size) for k in values})
    for k in values:
        curves[name][0][k][rows] = values[k]
        if errors is not None:
            curves[name][1][k][rows] = errors[k]


def choose_ks(n: np.ndarray, asked: list[int] | None) -> list[int]:
    """metrics.ks, less any k no problem has samples for; by default 1, 2, 4, ... up to the
    smallest n, so that every k averages over every problem."""
    if asked is None:
        return default_ks(int(n.min()))
    ks = sorted({int(k) for k in asked if k <= n.max()})
    dropped = sorted(set(asked) - set(ks))
    if dropped:
        log.warning("metrics.ks %s left out: no problem has that many samples (largest n is %d)", dropped, n.max())
    if not ks:
        raise ConfigError(f"metrics.ks={list(asked)}: no problem has that many samples (largest n is {n.max()}); give smaller k")
    return ks


def summarize(per_problem: dict, ks: list[int], seed: int) -> dict:
    """Means over problems of every curve, their joint bootstrap intervals, and the Monte
    Carlo standard errors of the means (0 where every problem's value is exact)."""
    names = [name for name in CURVES if name in per_problem]
    columns = [(name, k) for name in names for k in ks]
    matrix = np.column_stack([per_problem[name][0][k] for name, k in columns])
    low, high = bootstrap_cis(matrix, seed=seed)
    out = {name: {} for name in names}
    ci = {name: {} for name in names}
    stderr = {}
    for j, (name, k) in enumerate(columns):
        values = matrix[:, j]
        out[name][str(k)] = float(np.nanmean(values))
        ci[name][str(k)] = [float(low[j]), float(high[j])]
        errors = per_problem[name][1]
        if errors is not None:
            present = ~np.isnan(values)
            stderr.setdefault(name, {})[str(k)] = float(np.sqrt(np.sum(errors[k][present] ** 2)) / present.sum())
    ci["stderr"] = stderr
    return {**out, "ci": ci}


def difficulty_summary(n: np.ndarray, c: np.ndarray, labels: np.ndarray, pass_curves: dict) -> dict:
    bins = []
    for label, low, high in difficulty_bins():
        members = labels == label
        curve = {str(k): float(np.nanmean(v[members])) for k, v in pass_curves.items()} if members.any() else {}
        bins.append({"label": label, "low": low, "high": high, "problems": int(members.sum()), "pass_at_k": curve})
    return {"never_solved": float(np.mean(c == 0)), "always_solved": float(np.mean(c == n)), "bins": bins}


def cost_summary(tokens: int, n: np.ndarray, c: np.ndarray, model_params: int | None) -> dict:
    solved = int((c > 0).sum())
    return {
        "tokens": tokens,
        "tokens_per_problem": tokens / n.size,
        "tokens_per_sample": tokens / int(n.sum()),
        "tokens_per_solved_problem": tokens / solved if solved else None,
        "model_params": model_params,
        # A forward pass costs ~2 FLOPs per parameter per token; prefill (shared across the n
        # samples of a prompt) is left out.
        "flops_per_token": 2 * model_params if model_params else None,
    }


def measure_run(store: RunStore, verifier_key: str, settings: MetricsConfig, model_params: int | None = None,
                batch_rows: int = BATCH_ROWS, scorer_key: str | None = None):
    """The run's metrics as written to metrics.json, and the per-problem tables.
    `model_params` (for FLOPs) is used where metrics.model_params is not set; `batch_rows`
    bounds the samples read at once; `scorer_key`: the reward model's scores to select by."""
    reader = VerifiedReader(store, verifier_key, settings.score, batch_rows, scorer_key)
    ids, sizes = reader.problem_sizes()
    ks = choose_ks(sizes, settings.ks)
    draws = settings.draws or default_draws(len(ids))
    found = per_problem(reader, ks, settings, draws, ids)
    n, c = found.n, found.c
    labels = difficulty_of(n, c)
    metrics = {
        "verifier": verifier_key,
        "score": settings.score or DEFAULT_SCORE,
        "ks": ks,
        **summarize(found.curves, ks, settings.seed),
        "draws": draws,
        "cost": cost_summary(int(found.tokens.sum()), n, c, settings.model_params or model_params),
        "difficulty": difficulty_summary(n, c, labels, found.curves["pass_at_k"][0]),
        "counts": {
            "problems": int(n.size),
            "samples": int(n.sum()),
            "passed": int(c.sum()),
            "tokens": int(found.tokens.sum()),
            "problems_solved": int((c > 0).sum()),
            # Problems whose prompt the engine refused have no samples and are not in the means.
            "problems_refused": refused_problems(store),
        },
    }
    metrics["fit"] = coverage_fit({int(k): v for k, v in metrics["pass_at_k"].items()})
    if scorer_key is not None:
        metrics["reward"] = {"scorer": scorer_key, "vote_weight": "sigmoid(reward)" if reader.reward_is_logit else "reward"}
    problems = pa.table({"problem_id": ids, "n": n, "passed": c, "pass_rate": c / n, "tokens": found.tokens,
                         "difficulty": labels}, schema=PROBLEMS_SCHEMA)
    return metrics, problems, curves_table(ids, found.curves)


def refused_problems(store: RunStore) -> int:
    from jobs.store.failures import read_failures

    ids = read_failures(store)["problem_id"].drop_null()
    return len(set(ids.to_pylist()))


def curves_table(problem_ids: list[str], per_problem: dict) -> pa.Table:
    """Per-problem values of every curve, long: (problem_id, metric, k, value, stderr)."""
    parts = []
    for name, (values, errors) in per_problem.items():
        for k, column in values.items():
            parts.append(pa.table({
                "problem_id": problem_ids,
                "metric": [name] * len(problem_ids),
                "k": np.full(len(problem_ids), k, dtype=np.int64),
                "value": column,
                "stderr": errors[k] if errors is not None else np.zeros(len(problem_ids)),
            }, schema=CURVES_SCHEMA))
    return pa.concat_tables(parts)


def coverage_fit(curve: dict[int, float]) -> dict:
    """The exponentiated power law fitted to the coverage curve, with a forecast (labelled as
    such) at 2x, 4x and 10x the largest k sampled."""
    ks = sorted(curve)
    fit = fit_scaling(ks, [curve[k] for k in ks])
    if fit["a"] is not None:
        horizon = [2 * ks[-1], 4 * ks[-1], 10 * ks[-1]]
        fit["forecast"] = {str(k): float(v) for k, v in zip(horizon, scaling_curve(fit["a"], fit["b"], horizon))}
    return fit


def write_metrics(store: RunStore, metrics: dict, problems: pa.Table, curves: pa.Table) -> None:
    """The per-problem files first, metrics.json last: its presence says the rest is there."""
    store.write_table(store.path("metrics", "problems.parquet"), problems, PROBLEMS_SCHEMA)
    store.write_table(store.path("metrics", "curves.parquet"), curves, CURVES_SCHEMA)
    store.write_text(store.metrics_json, json.dumps(metrics, indent=2) + "\n")


def model_parameters(path: str | None) -> int | None:
    """Parameters of a model folder, summed from its safetensors headers (an 8-byte length and a
    JSON table of tensor shapes: read without loading a weight); None when not readable."""
    import fsspec

    if not path:
        return None
    try:
        fs, base = fsspec.core.url_to_fs(path)
        total = 0
        for name in fs.glob(posixpath.join(base, "*.safetensors")):
            with fs.open(name, "rb") as f:
                header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
            total += sum(int(np.prod(t["shape"])) for key, t in header.items() if key != "__metadata__")
        return total or None
    except (OSError, ValueError, KeyError):
        return None
