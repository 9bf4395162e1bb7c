"""Generating one work unit: the unit processor of the generation stage.

A `GenerationWorker` owns one engine (`workers.engine`); for a unit it reads the prompts of the
unit's problems, samples them with the unit's seeds and writes the unit's sample file. A plain
class, so a test can run it without Ray; `jobs.cluster` places copies of it on the cluster as
Ray actors. Samples go from the engine straight to the store: the driver gets back only a
`UnitStats`.
"""

import os
import time
from dataclasses import dataclass

from jobs.store.failures import record_failures
from jobs.problems.units import WorkUnit, problem_seed
from jobs.store.root import RunStore
from jobs.store.runinfo import read_prompts
from jobs.config import JobConfig
from workers.engine import Engine, EngineSpec, Rejected
from workers.samples import SAMPLES_SCHEMA, samples_table
from workers.sampling import SamplingSpec


def engine_spec(config: JobConfig) -> EngineSpec:
    m = config.model
    return EngineSpec(
        model=m.path, revision=m.revision, dtype=m.dtype, max_model_len=m.max_model_len,
        tensor_parallel_size=m.tensor_parallel_size, gpu_memory_utilization=m.gpu_memory_utilization,
        kv_cache_memory_bytes=m.kv_cache_memory_bytes,
        enforce_eager=m.enforce_eager, enable_prefix_caching=m.enable_prefix_caching,
        engine_kwargs=dict(m.engine_kwargs),
    )


def sampling_spec(config: JobConfig) -> SamplingSpec:
    s = config.sampling
    return SamplingSpec(
        temperature=s.temperature, top_p=s.top_p, top_k=s.top_k, min_p=s.min_p,
        max_tokens=s.max_tokens, stop=tuple(s.stop), ignore_eos=s.ignore_eos,
    )


@dataclass(frozen=True)
class UnitTask:
    """What a worker needs for one unit: where the run lives, which samples, how to sample."""

    store: RunStore
    unit: WorkUnit
    sampling: SamplingSpec
    run_seed: int

    @property
    def unit_id(self) -> str:
        return self.unit.unit_id


@dataclass(frozen=True)
class UnitStats:
    unit_id: str
    samples: int
    tokens: int
    seconds: float
    rejected: int = 0  # problems whose prompt the engine refused (see failures/)


class GenerationWorker:
    def __init__(self, spec: EngineSpec, engine_factory=Engine):
        self.engine = engine_factory(spec)
        self._prompts: dict[str, dict] = {}  # run root -> {problem_id: prompt}

    def ready(self) -> int:
        """The worker's process id, once its engine is up (a dead worker is named by it)."""
        return os.getpid()

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()

    def _prompts_of(self, store: RunStore) -> dict:
        # A worker serves one run at a time, but a pool may serve several runs in turn.
        if store.root not in self._prompts:
            self._prompts = {store.root: read_prompts(store)}
        return self._prompts[store.root]

    def run_unit(self, task: UnitTask) -> UnitStats:
        began = time.perf_counter()
        unit = task.unit
        prompts = self._prompts_of(task.store)
        seeds = [problem_seed(task.run_seed, pid) + unit.sample_start for pid in unit.problem_ids]
        results = self.engine.generate(
            [prompts[pid] for pid in unit.problem_ids], task.sampling, unit.samples_per_problem, seeds
        )
        kept = [i for i, r in enumerate(results) if not isinstance(r, Rejected)]
        rejected = [(unit.problem_ids[i], r.status, r.reason) for i, r in enumerate(results) if isinstance(r, Rejected)]
        table = samples_table([unit.problem_ids[i] for i in kept], [results[i] for i in kept], unit.sample_start, [seeds[i] for i in kept])
        # Failures first: the sample file is the unit's completion marker.
        record_failures(task.store, unit.unit_id, rejected)
        task.store.write_table(task.store.sample_unit(unit.unit_id), table, SAMPLES_SCHEMA)
        tokens = sum(table["num_tokens"].to_pylist())
        return UnitStats(unit.unit_id, table.num_rows, tokens, time.perf_counter() - began, len(rejected))
