"""Test doubles shared by several test modules (tests/ is on sys.path: `from doubles import ...`).

- `fake_counts`, `fake_metrics`: a metrics.json in the shape the metrics step writes, for the
  report and sweep comparison tests.
- `InlineExecutor`, `inline_cluster`: the executor's interface with one unit processor in this
  process, and a `jobs.cluster.pools.Cluster` that hands them out: use cases run without Ray.
"""

import math
import queue

import numpy as np

from jobs.cluster.executor import ExecutorResult
from jobs.cluster.pools import Cluster

KS = [1, 2, 4, 8, 16]


def pass_at(n: int, c: int, k: int) -> float:
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def fake_counts(temperature: float, problems: int = 120, n: int = 16) -> np.ndarray:
    """Pass counts of problems whose pass probabilities spread from hopeless to easy."""
    rng = np.random.default_rng(int(temperature * 100))
    p = rng.beta(0.4 + temperature, 1.2, size=problems) * (rng.random(problems) > 0.15)
    return rng.binomial(n, p)


def fake_metrics(c: np.ndarray, n: int, temperature: float) -> dict:
    """metrics.json in the shape the metrics step writes, from pass counts (other selection
    curves made up below coverage: the report only draws them)."""
    per_k = {k: np.array([pass_at(n, int(ci), k) for ci in c]) for k in KS}
    cov = {str(k): float(v.mean()) for k, v in per_k.items()}
    half = {str(k): 1.96 * float(v.std()) / math.sqrt(c.size) for k, v in per_k.items()}
    below = lambda share: {k: cov["1"] + share * (v - cov["1"]) for k, v in cov.items()}  # noqa: E731
    curves = {"pass_at_k": cov, "majority_at_k": below(0.3), "best_of_k": below(0.2), "weighted_at_k": below(0.4)}
    ci = {name: {k: [v - half[k], min(1.0, v + half[k])] for k, v in values.items()} for name, values in curves.items()}
    b, log_minus_a = np.polyfit(np.log(KS), np.log(-np.log(list(cov.values()))), 1)
    a = -math.exp(log_minus_a)
    forecast = {str(k): math.exp(a * k**b) for k in (32, 64, 160)}
    tokens = int(c.size * n * (30 + 20 * temperature))
    return {
        "verifier": "numeric-163ad047a0",
        "score": "mean_logprob",
        **curves,
        "ci": {**ci, "stderr": {"majority_at_k": {k: 0.0 for k in cov}}},
        "fit": {"a": a, "b": float(b), "rmse": 0.01, "points": len(KS), "forecast": forecast},
        "cost": {"tokens": tokens, "tokens_per_problem": tokens / c.size, "tokens_per_sample": tokens / (c.size * n),
                 "tokens_per_solved_problem": tokens / max(1, int((c > 0).sum())), "model_params": 1_200_000,
                 "flops_per_token": 2_400_000},
        "difficulty": fake_difficulty(c, n),
        "counts": {"problems": int(c.size), "samples": int(c.size * n), "passed": int(c.sum()),
                   "tokens": tokens, "problems_solved": int((c > 0).sum())},
    }


def fake_difficulty(c: np.ndarray, n: int) -> dict:
    edges = [0.0, 0.05, 0.2, 0.5, 0.8, 1.0]
    rate, bins = c / n, []
    for low, high in zip(edges, edges[1:]):
        chosen = c[(rate > low) & (rate <= high)]
        curve = {str(k): float(np.mean([pass_at(n, int(x), k) for x in chosen])) for k in KS} if chosen.size else {}
        label = f"({low}, {high}]"
        bins.append({"label": label, "low": low, "high": high, "problems": int(chosen.size), "pass_at_k": curve})
    return {"never_solved": float(np.mean(c == 0)), "always_solved": float(np.mean(c == n)), "bins": bins}


class InlineExecutor:
    """`UnitExecutor`'s interface around one processor in this process (no Ray, no retries)."""

    num_workers = 1

    def __init__(self, worker):
        self.worker = worker

    def run(self, tasks, on_done, progress=None) -> ExecutorResult:
        result = ExecutorResult()
        for task in tasks:
            stats = self.worker.run_unit(task)
            result.finished.append(stats)
            on_done(stats)
        return result

    def run_stream(self, source: queue.Queue, on_done, progress=None) -> ExecutorResult:
        return self.run(iter(source.get, None), on_done, progress)

    def shutdown(self) -> None:
        self.worker.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()


def inline_cluster(generation=None) -> Cluster:
    """A cluster whose verification runs in this process; `generation(config)` makes the
    generation executor where a test needs one."""
    from jobs.stages.verification import VerifyWorker

    return Cluster(connect=lambda *args: None, generation=generation,
                   verification=lambda config: InlineExecutor(VerifyWorker()))
