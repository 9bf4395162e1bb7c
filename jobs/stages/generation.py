"""The generation worker: one engine, units in, unit files out.

A plain class, so a test can run it without Ray; `jobs.cluster.executor` places copies of it on the
cluster as Ray actors. Samples go from the engine straight to the store: the driver gets back
only a `UnitStats`.
"""

import os
import time
from dataclasses import dataclass

from jobs.store.failures import record_failures
from jobs.problems.units import WorkUnit, problem_seed
from jobs.store.root import RunStore
from workers.engine import Engine, EngineSpec, Rejected
from workers.samples import SAMPLES_SCHEMA, samples_table
from workers.sampling import SamplingSpec


@dataclass(frozen=True)
class UnitTask:
    """What a worker needs for one unit: where the run lives, which samples, how to sample."""

    store: RunStore
    unit: WorkUnit
    sampling: SamplingSpec
    run_seed: int


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
            table = store.read_table(store.problems, columns=["problem_id", "prompt"])
            self._prompts = {store.root: dict(zip(table["problem_id"].to_pylist(), table["prompt"].to_pylist()))}
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
