"""Test doubles shared by several test modules (tests/ is on sys.path: `from doubles import ...`).

- `POOL`, `write_pool`, `brute`: a small verified pool (n = 6 per problem, so every k-subset
  can be enumerated) written as Troop writes one, and the brute-force mean over k-subsets.

- `fake_counts`, `fake_metrics`: a metrics.json in the shape the metrics step writes, for the
  report and sweep comparison tests.
- `SessionPool`: a session-wide executor handed to a use case as if it had started it.
- `InlineExecutor`, `inline_cluster`: the executor's interface with one unit processor in this
  process, and a `jobs.cluster.pools.Cluster` that hands them out: use cases run without Ray.
"""

import math
import queue
from itertools import combinations

import numpy as np
import pyarrow as pa

from jobs.cluster.executor import ExecutorResult
from jobs.cluster.pools import Cluster
from jobs.store.root import RunStore
from verifiers import VERDICTS_SCHEMA, get_verifier
from workers.samples import SAMPLES_SCHEMA

# The session's reward-model engine (the one-label outcome model): small KV cache, like the
# generation engine's settings; a sliver of a CPU so that verification pools keep theirs.
SCORE_KEYS = ["score.dtype=float32", "score.max_model_len=256", "score.enforce_eager=true",
              f"score.kv_cache_memory_bytes={64 << 20}", "score.cpus_per_worker=0.1"]
KS = [1, 2, 4, 8, 16]
KEY = get_verifier("exact").key()
RIGHT = {"a": "4", "b": "7", "c": "1", "p0": "0", "p1": "0", "p2": "0"}
# problem -> [(answer, num_tokens, cumulative_logprob)]; n = 6 each, so every k-subset is enumerable
POOL = {
    "a": [("4", 10, -2.0), ("5", 10, -1.0), ("4", 20, -3.0), ("5", 5, -0.5), ("6", 8, -4.0), (None, 12, -6.0)],
    "b": [("7", 4, -0.4), ("7", 6, -0.6), ("7", 10, -5.0), ("2", 3, -0.1), ("2", 9, -0.9), ("3", 7, -1.4)],
    "c": [("9", 5, -1.0), ("8", 5, -1.0), ("9", 5, -2.0), ("8", 5, -0.5), ("9", 5, -0.2), ("0", 5, -3.0)],
}


def write_pool(store: RunStore, pool=POOL, key=KEY, extra=None, troop_units=False) -> None:
    """Two units (the halves of each problem's samples), or with `troop_units` two per problem
    named as troop names them (problem range, sample range)."""
    from jobs.problems.units import unit_id

    units = [("u0", list(pool), True), ("u1", list(pool), False)]
    if troop_units:
        units = [(unit_id(i, i + 1, 0 if first else len(pool[p]) // 2, len(pool[p]) // 2 if first else len(pool[p])), [p], first)
                 for i, p in enumerate(pool) for first in (True, False)]
    for unit, problems, first in units:
        rows = [(p, i, *s) for p in problems for i, s in enumerate(pool[p]) if (i < len(pool[p]) // 2) == first]
        samples = pa.table({
            "problem_id": [r[0] for r in rows], "sample_idx": [r[1] for r in rows], "text": ["x"] * len(rows),
            "num_tokens": [r[3] for r in rows], "cumulative_logprob": [r[4] for r in rows],
            "finish_reason": ["stop"] * len(rows), "seed": [0] * len(rows),
        })
        store.write_table(store.sample_unit(unit), samples, SAMPLES_SCHEMA)
        passed = [r[2] is not None and r[2] == RIGHT[r[0]] for r in rows]
        verdicts = pa.table({
            "problem_id": [r[0] for r in rows], "sample_idx": [r[1] for r in rows], "passed": passed,
            "status": ["pass" if ok else "fail" for ok in passed], "answer": [r[2] for r in rows],
            "detail": [""] * len(rows),
        }).cast(VERDICTS_SCHEMA)
        if extra:
            verdicts = verdicts.append_column(extra, pa.array([extra_score(r) for r in rows], pa.float64()))
        store.write_table(store.verdict_unit(key, unit), verdicts)


def extra_score(row) -> float:
    """A made-up reward: the sample index, so that later samples rank higher."""
    return float(row[1])


def brute(pool, k, pick):
    """Mean over problems of the mean over every k-subset of pick(problem, subset)."""
    return float(np.mean([np.mean([pick(p, [s[i] for i in sub]) for sub in combinations(range(len(s)), k)])
                          for p, s in pool.items()]))



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

    def run_stream(self, source: queue.Queue, on_done, progress=None, on_failed=None) -> ExecutorResult:
        return self.run(iter(source.get, None), on_done, progress)

    def ask_one(self, method: str, *args):
        return getattr(self.worker, method)(*args)

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


class FakeRewardEngine:
    """`workers.reward.RewardEngine`'s interface without a model: the reward of a completion is
    its length minus a tenth of the prompt's; a process model's steps score len/(len+1); a
    completion longer than `max_model_len` characters is not scored; characters read stand for
    tokens read. Records every call."""

    def __init__(self, spec):
        from workers.reward import Scored

        self.spec, self.calls, self._scored = spec, [], Scored
        self.reward_is_logit = spec.kind == "outcome"

    def score(self, prompts, completions, step_separator=None):
        from workers.reward import split_steps  # the real engine's steps: blank pieces are no step

        self.calls.append(list(zip(prompts, completions)))
        results = []
        for prompt, text in zip(prompts, completions):
            read = len(str(prompt)) + len(text)  # characters stand for tokens
            if len(text) > self.spec.max_model_len:
                results.append(self._scored(None, None, f"{len(text)} tokens, score.max_model_len is {self.spec.max_model_len}"))
            elif self.spec.kind == "process":
                steps = tuple(len(s) / (len(s) + 1) for s in split_steps(text, step_separator or self.spec.step_separator))
                results.append(self._scored(steps[-1], steps, num_tokens=read))
            else:
                results.append(self._scored(len(text) - len(str(prompt)) / 10, None, num_tokens=read))
        return results

    def close(self) -> None:
        pass


def fake_scoring_cluster(engines: list | None = None) -> Cluster:
    """`inline_cluster` whose scoring runs a `ScoreWorker` on a `FakeRewardEngine` in this
    process; each engine made is appended to `engines`."""
    from jobs.stages.scoring import ScoreWorker, reward_spec

    def engine(spec):
        made = FakeRewardEngine(spec)
        if engines is not None:
            engines.append(made)
        return made

    cluster = inline_cluster()
    return Cluster(connect=cluster.connect, generation=cluster.generation, verification=cluster.verification,
                   scoring=lambda config: InlineExecutor(ScoreWorker(reward_spec(config), engine_factory=engine)))


class SessionPool:
    """A session executor handed to a use case as if it had started it: shutdown leaves it up."""

    def __init__(self, pool):
        self.pool, self.started = pool, 0

    def start(self, config):
        self.started += 1
        return self

    def __getattr__(self, name):
        return getattr(self.pool, name)

    def shutdown(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass
