"""Metrics of a stored run: read verdicts and samples, compute with `jobs.metrics`, write
`metrics.json` and the per-problem numbers under `metrics/`. The I/O lives here so that
`jobs.metrics` stays pure."""

import json
import logging
import posixpath
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jobs.config import MetricsConfig
from jobs.errors import ConfigError, StoreError
from jobs.metrics import (
    best_of_k_curves, bootstrap_cis, default_draws, default_ks, difficulty_bins, difficulty_of, fit_scaling, pass_at_k_by_k,
    scaling_curve, votes_by_problem,
)
from jobs.store import RunStore

log = logging.getLogger("troop")

DEFAULT_SCORE = "mean_logprob"  # cumulative_logprob / num_tokens
CURVES = ("pass_at_k", "majority_at_k", "best_of_k", "weighted_at_k")

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


@dataclass
class Pool:
    """One row per verified sample; problems numbered 0..P-1 in problem_id order."""

    problem_ids: list[str]
    problem: np.ndarray  # each row's problem number
    passed: np.ndarray
    answer: np.ndarray | None  # integer answer ids, -1: no answer; None: the verifier gives none
    tokens: np.ndarray
    score: np.ndarray  # NaN where unknown (ranks last, weighs 0)


def _read_folder(store: RunStore, folder: str, columns: list[str], fix: str) -> pa.Table:
    ids = sorted(store.unit_ids(folder))
    if not ids:
        raise StoreError(f"{store.root} has no {folder}/unit-*.parquet: {fix}")
    return pa.concat_tables(store.read_table(store.path(folder, f"unit-{u}.parquet"), columns) for u in ids)


def _schema(store: RunStore, folder: str) -> pa.Schema:
    first = min(store.unit_ids(folder), default=None)
    if first is None:
        return pa.schema([])
    with store.fs.open(store.path(folder, f"unit-{first}.parquet"), "rb") as f:
        return pq.read_schema(f)


def _score_source(store: RunStore, verdicts: str, score: str) -> str:
    """The folder whose files hold the numeric column `score`."""
    numeric = {}
    for folder in ("samples", verdicts):
        for f in _schema(store, folder):
            if pa.types.is_integer(f.type) or pa.types.is_floating(f.type):
                numeric.setdefault(f.name, folder)
    if score not in numeric:
        choices = ", ".join(sorted(numeric)) or "none"
        raise ConfigError(f"metrics.score={score}: {store.root} has no numeric column '{score}' in its samples or verdicts (numeric columns: {choices})")
    return numeric[score]


def load_pool(store: RunStore, verifier_key: str, score: str | None) -> Pool:
    """The verified samples joined with their samples rows on (problem_id, sample_idx)."""
    verdicts = f"verdicts/{verifier_key}"
    keys = ["problem_id", "sample_idx"]
    names = _schema(store, verdicts).names
    verdict_columns = keys + ["passed"] + [c for c in ("answer",) if c in names]
    sample_columns = keys + ["num_tokens", "cumulative_logprob"]
    if score is not None:
        (sample_columns if _score_source(store, verdicts, score) == "samples" else verdict_columns).append(score)
    table = _read_folder(store, verdicts, list(dict.fromkeys(verdict_columns)), "run troop verify first")
    samples = _read_folder(store, "samples", list(dict.fromkeys(sample_columns)), "run troop generate first")
    table = table.join(samples.drop_columns([c for c in samples.column_names if c in table.column_names and c not in keys]), keys)
    problem_ids, problem = _problem_numbers(table["problem_id"])
    # Rows in (problem, sample_idx) order: the join's order is not deterministic, the seeded
    # Monte Carlo draws must be.
    table = table.take(np.lexsort((table["sample_idx"].to_numpy(), problem)))
    problem = np.sort(problem)
    tokens = pc.fill_null(table["num_tokens"], 0).to_numpy().astype(np.int64)
    return Pool(
        problem_ids=problem_ids,
        problem=problem,
        passed=pc.fill_null(table["passed"], False).to_numpy(zero_copy_only=False).astype(bool),
        answer=_answer_ids(table["answer"]) if "answer" in table.column_names else None,
        tokens=tokens,
        score=_scores(table, score, tokens),
    )


def _problem_numbers(ids: pa.ChunkedArray) -> tuple[list[str], np.ndarray]:
    """Sorted distinct problem ids and each row's index among them (hashing, not a string sort
    of every row)."""
    encoded = pc.dictionary_encode(ids).combine_chunks()
    names = encoded.dictionary.to_pylist()
    order = np.argsort(np.array(names, dtype=object))
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(len(names))
    return [names[i] for i in order], rank[encoded.indices.to_numpy()]


def _answer_ids(answers: pa.ChunkedArray) -> np.ndarray | None:
    if answers.null_count == len(answers):
        return None
    encoded = pc.dictionary_encode(answers).combine_chunks()
    return pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _scores(table: pa.Table, score: str | None, tokens: np.ndarray) -> np.ndarray:
    if score is not None:
        return pc.cast(table[score], pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
    logprob = pc.cast(table["cumulative_logprob"], pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tokens > 0, logprob / np.maximum(tokens, 1), np.nan)


def per_problem_curves(pool: Pool, ks: list[int], settings: MetricsConfig, weighted: bool) -> dict:
    """{curve: ({k: values over problems}, {k: standard errors} or None)} for the four curves
    (majority and weighted left out when the verifier gives no answers, weighted also when the
    score cannot weigh)."""
    n = np.bincount(pool.problem, minlength=len(pool.problem_ids))
    c = np.bincount(pool.problem, weights=pool.passed, minlength=n.size).astype(np.int64)
    curves = {
        "pass_at_k": (pass_at_k_by_k(n, c, ks), None),
        "best_of_k": (best_of_k_curves(pool.problem, pool.score, pool.passed, ks), None),
    }
    if pool.answer is not None:
        weights = _vote_weights(pool.score, settings.score) if weighted else np.ones(pool.score.size)
        votes = votes_by_problem(pool.problem, pool.answer, pool.passed, weights, ks, settings.draws, settings.seed)
        curves["majority_at_k"] = votes["majority_at_k"]
        if weighted:
            curves["weighted_at_k"] = votes["weighted_at_k"]
    return curves


def _vote_weights(score: np.ndarray, column: str | None) -> np.ndarray:
    """A sample's weight in the weighted vote: exp(mean log-prob), its geometric-mean token
    probability, for the default score; a named score column as it is (unknown: 0)."""
    return np.nan_to_num(np.exp(score) if column is None else score, nan=0.0)


def can_weigh(score: np.ndarray, column: str | None) -> bool:
    if column is None or not np.any(np.nan_to_num(score) < 0):
        return True
    log.warning("metrics.score=%s has negative values: weighted vote@k needs weights >= 0 and is left out", column)
    return False


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


def cost_summary(pool: Pool, n: np.ndarray, c: np.ndarray, model_params: int | None) -> dict:
    tokens = int(pool.tokens.sum())
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


def measure_run(store: RunStore, verifier_key: str, settings: MetricsConfig, model_params: int | None = None):
    """The run's metrics as written to metrics.json, and the per-problem tables.
    `model_params` (for FLOPs) is used where metrics.model_params is not set."""
    pool = load_pool(store, verifier_key, settings.score)
    n = np.bincount(pool.problem, minlength=len(pool.problem_ids))
    c = np.bincount(pool.problem, weights=pool.passed, minlength=n.size).astype(np.int64)
    ks = choose_ks(n, settings.ks)
    weighted = pool.answer is not None and can_weigh(pool.score, settings.score)
    per_problem = per_problem_curves(pool, ks, settings, weighted)
    labels = difficulty_of(n, c)
    metrics = {
        "verifier": verifier_key,
        "score": settings.score or DEFAULT_SCORE,
        "ks": ks,
        **summarize(per_problem, ks, settings.seed),
        "draws": settings.draws or default_draws(n.size),
        "cost": cost_summary(pool, n, c, settings.model_params or model_params),
        "difficulty": difficulty_summary(n, c, labels, per_problem["pass_at_k"][0]),
        "counts": {
            "problems": int(n.size),
            "samples": int(n.sum()),
            "passed": int(c.sum()),
            "tokens": int(pool.tokens.sum()),
            "problems_solved": int((c > 0).sum()),
        },
    }
    metrics["fit"] = coverage_fit({int(k): v for k, v in metrics["pass_at_k"].items()})
    tokens = np.bincount(pool.problem, weights=pool.tokens, minlength=n.size).astype(np.int64)
    problems = pa.table({"problem_id": pool.problem_ids, "n": n, "passed": c, "pass_rate": c / n,
                         "tokens": tokens, "difficulty": labels}, schema=PROBLEMS_SCHEMA)
    return metrics, problems, curves_table(pool.problem_ids, per_problem)


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
