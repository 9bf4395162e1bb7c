"""Scoring one sample unit with a reward model: the unit processor of the scoring stage.

A `ScoreWorker` owns one reward-model engine (`workers.reward`); for a unit it reads the unit's
samples and their problems' prompts, scores each distinct (problem, completion) once, and
writes `scores/<scorer-key>/unit-<id>.parquet` with the scores contract: `problem_id`,
`sample_idx`, `reward` (null where the text was too long, with the reason in `detail`),
`step_rewards` (a process reward model's per-step probabilities; null for an outcome model),
and `num_tokens` (what the model read, for the compute accounting).
A plain class: a test calls it directly; `jobs.cluster` runs copies of it as Ray actors.
"""

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass

import pyarrow as pa

from jobs.config import ScoreConfig
from jobs.store.root import RunStore
from jobs.store.runinfo import model_fingerprint, read_prompts
from workers.reward import RewardEngine, RewardSpec, aggregate

# Bumped when this module's way of scoring changes (the scorer key then changes with it).
SCORER_VERSION = 1

SCORES_SCHEMA = pa.schema([
    pa.field("problem_id", pa.string(), nullable=False),
    pa.field("sample_idx", pa.int32(), nullable=False),
    pa.field("reward", pa.float64()),
    pa.field("step_rewards", pa.list_(pa.float64())),
    pa.field("detail", pa.string()),
    pa.field("num_tokens", pa.int32()),  # the tokens the reward model read (compute accounting); null: not scored
])


def reward_spec(config: ScoreConfig) -> RewardSpec:
    return RewardSpec(
        model=config.model, revision=config.revision, dtype=config.dtype, max_model_len=config.max_model_len,
        kind=config.kind, label=config.label, step_separator=config.step_separator, step_token=config.step_token,
        system=config.system,
        tensor_parallel_size=config.tensor_parallel_size, kv_cache_memory_bytes=config.kv_cache_memory_bytes,
        gpu_memory_utilization=config.gpu_memory_utilization, enforce_eager=config.enforce_eager,
        engine_kwargs=dict(config.engine_kwargs),
    )


def scorer_key(config: ScoreConfig) -> str:
    """`<model name>-<hash>`: the hash covers the model's revision (or a local folder's
    fingerprint) and every setting that changes a score, so another reward model, revision or
    setting writes beside the first, never over it."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", config.model.rstrip("/").rsplit("/", 1)[-1]) or "model"
    settings = {
        "model": config.model, "revision": config.revision or model_fingerprint(config.model), "kind": config.kind,
        "label": config.label, "aggregate": config.aggregate if config.kind == "process" else None,
        "step_separator": config.step_separator if config.kind == "process" else None,
        "step_token": config.step_token if config.kind == "process" else None, "system": config.system,
        "dtype": config.dtype, "max_model_len": config.max_model_len, "version": SCORER_VERSION,
    }
    blob = json.dumps(settings, sort_keys=True)
    return f"{name}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


@dataclass(frozen=True)
class ScoreTask:
    store: RunStore
    unit_id: str
    scorer_key: str
    aggregate: str  # process models: how step rewards become the reward


@dataclass(frozen=True)
class ScoreStats:
    unit_id: str
    samples: int
    scored: int  # distinct (problem, completion) pairs sent to the reward model
    unscored: int  # samples whose reward is null (too long)
    seconds: float


def score_rows(samples: pa.Table, prompts: dict, engine, how: str) -> pa.Table:
    """Score rows for `samples` (problem_id, sample_idx, text): identical completions of one
    problem are scored once and share the result."""
    ids, idxs, texts = (samples[c].to_pylist() for c in ("problem_id", "sample_idx", "text"))
    distinct = list(dict.fromkeys(zip(ids, texts)))
    scored = dict(zip(distinct, engine.score([prompts[p] for p, _ in distinct], [t for _, t in distinct])))
    rows = {name: [] for name in SCORES_SCHEMA.names}
    for pid, idx, text in zip(ids, idxs, texts):
        result = scored[(pid, text)]
        steps = list(result.step_rewards) if result.step_rewards is not None else None
        rows["problem_id"].append(pid)
        rows["sample_idx"].append(idx)
        rows["reward"].append(aggregate(steps, how) if steps else result.reward)
        rows["step_rewards"].append(steps)
        rows["detail"].append(result.detail)
        rows["num_tokens"].append(result.num_tokens)
    return pa.table(rows, schema=SCORES_SCHEMA)


class ScoreWorker:
    """Scores whole units with one reward-model engine; keeps the prompts of one run."""

    def __init__(self, spec: RewardSpec, engine_factory=RewardEngine):
        self.engine = engine_factory(spec)
        self._prompts: dict[str, dict] = {}  # run root -> {problem_id: prompt}

    def ready(self) -> int:
        """The worker's process id, once its engine is up (a dead worker is named by it)."""
        return os.getpid()

    def close(self) -> None:
        self.engine.close()

    def run_unit(self, task: ScoreTask) -> ScoreStats:
        began = time.perf_counter()
        store = task.store
        if store.root not in self._prompts:  # a worker serves one run at a time, a pool several in turn
            self._prompts = {store.root: read_prompts(store)}
        samples = store.read_table(store.sample_unit(task.unit_id), columns=["problem_id", "sample_idx", "text"])
        table = score_rows(samples, self._prompts[store.root], self.engine, task.aggregate)
        # The file says whether `reward` is a raw logit or a probability (how metrics weigh votes by it).
        kind = b"logit" if getattr(self.engine, "reward_is_logit", False) else b"probability"
        store.write_table(store.score_unit(task.scorer_key, task.unit_id), table,
                          SCORES_SCHEMA.with_metadata({b"troop.reward": kind}))
        distinct = len(set(zip(samples["problem_id"].to_pylist(), samples["text"].to_pylist())))
        return ScoreStats(task.unit_id, table.num_rows, distinct, table["reward"].null_count, time.perf_counter() - began)
