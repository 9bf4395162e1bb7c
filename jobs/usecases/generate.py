"""`troop generate`: plan the units, skip the finished ones, run the rest on the pool."""

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import pyarrow as pa

from jobs.stages.generation import UnitStats, UnitTask
from jobs.config import JobConfig
from jobs.errors import ProblemSetError
from jobs.store.failures import record_failures
from jobs.cluster.placement import PlacementSettings
from jobs.problems.units import WorkUnit, plan_units
from jobs.cluster.executor import GenerationPool, init_ray
from jobs.usecases.progress import UnitProgress
from jobs.store.runinfo import check_model_path, check_resumable, record_run
from jobs.problems import load_problems
from jobs.usecases.status import ProgressFile
from jobs.store.root import RunStore
from workers.engine import EngineSpec
from workers.sampling import SamplingSpec

log = logging.getLogger("troop")


@dataclass
class GenerateSummary:
    units_total: int
    units_skipped: int
    generated: list[str]  # ids of the units this call wrote
    samples: int
    tokens: int
    seconds: float
    rejected: int = 0  # problems whose prompt the engine refused (failures/)
    failed: dict = field(default_factory=dict)  # unit id -> (status, reason): no sample file


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


def open_run(config: JobConfig, required_columns: dict[str, str] | None = None) -> tuple[RunStore, pa.Table, list]:
    """The run's store, problem set and sample segments, checked; nothing is written yet.

    `required_columns` maps problem columns that a later step reads to the setting that needs them.
    """
    store = RunStore(config.run.root, dict(config.run.storage_options))
    problems = load_problems(config.problems, dict(config.run.storage_options))
    for column, needed_by in (required_columns or {}).items():
        if column not in problems.column_names:
            raise ProblemSetError(
                f"{needed_by} needs the problem column '{column}', which problems.source={config.problems.source} "
                f"lacks: map it with problems.columns.{column}=COLUMN or pick another verifier"
            )
    store.check_writable()
    segments = check_resumable(store, config, problems)
    return store, problems, segments


def pending_units(store: RunStore, units: list[WorkUnit]) -> list[WorkUnit]:
    done = store.unit_ids("samples")
    return [unit for unit in units if unit.unit_id not in done]


@dataclass
class RunPlan:
    """A checked run: its store, problem set and units; nothing written yet."""

    config: JobConfig
    store: RunStore
    problems: pa.Table
    units: list[WorkUnit]
    todo: list[WorkUnit]
    segments: list  # sample-index ranges planned one after the other (sampling.n raised on resume)


def plan_run(config: JobConfig, required_columns: dict[str, str] | None = None) -> RunPlan:
    """Every input check (model path, problems, store, resume) before any engine starts."""
    check_model_path(config.model.path)
    store, problems, segments = open_run(config, required_columns)
    units = plan_units(problems["problem_id"].to_pylist(), config.sampling.n, config.plan.samples_per_unit, segments)
    todo = pending_units(store, units)
    log.info("run %s: %d units, %d already done", store.root, len(units), len(units) - len(todo))
    return RunPlan(config, store, problems, units, todo, segments)


def generate(
    config: JobConfig, pool: GenerationPool | None = None, required_columns: dict[str, str] | None = None,
    plan: RunPlan | None = None,
) -> GenerateSummary:
    """Generate every missing unit of the run; `pool` lets several runs share engines; `plan`:
    the run as the caller already planned it.

    Input errors (config, problems, model path, store) surface before anything is written, and
    the engines start before job.yaml, so a model that fails to load leaves no run behind.
    """
    plan = plan or plan_run(config, required_columns)
    if pool is None and plan.todo:
        init_ray(config.cluster.address, config.run.root, config.run.shared_filesystem)
        with start_pool(config) as own:
            return execute(plan, own)
    return execute(plan, pool)


def start_pool(config: JobConfig) -> GenerationPool:
    c = config.cluster
    return GenerationPool(engine_spec(config), c.num_workers, c.cpus_per_worker, c.max_unit_retries,
                          placement=PlacementSettings(dict(c.resources), dict(c.label_selector)))


def execute(plan: RunPlan, pool: GenerationPool | None, on_unit: Callable[[str], None] | None = None) -> GenerateSummary:
    """Generate the plan's pending units on `pool`; `on_unit` sees each unit id as its file lands."""
    config = plan.config
    if not plan.todo:
        record_run(plan.store, config, plan.problems, plan.segments)
        return GenerateSummary(len(plan.units), len(plan.units), [], 0, 0, 0.0)
    if pool.spec != engine_spec(config):
        raise ValueError(f"the pool's engine ({pool.spec}) is not the one the config asks for ({engine_spec(config)})")
    record_run(plan.store, config, plan.problems, plan.segments)
    return _generate(pool, config, plan.store, plan.todo, len(plan.units), on_unit)


def _generate(pool, config, store, todo: list[WorkUnit], units_total: int, on_unit=None) -> GenerateSummary:
    store.remove_stale_temporaries("samples")
    tasks = [UnitTask(store, unit, sampling_spec(config), config.run.seed) for unit in todo]
    began = time.perf_counter()
    # The bar starts once the engines are up, so its rate and ETA are the steady state's.
    with UnitProgress(len(tasks), sum(u.num_samples for u in todo)) as progress:

        def landed(stats: UnitStats) -> None:
            progress.advance(stats.samples, stats.tokens)
            if on_unit is not None:
                on_unit(stats.unit_id)

        result = pool.run(tasks, landed, ProgressFile(store))
    for unit_id, (status, reason) in result.failed.items():
        record_failures(store, unit_id, [(None, status, reason)])
    stats = result.finished
    return GenerateSummary(
        units_total=units_total,
        units_skipped=units_total - len(todo),
        generated=[s.unit_id for s in stats],
        samples=sum(s.samples for s in stats),
        tokens=sum(s.tokens for s in stats),
        seconds=time.perf_counter() - began,
        rejected=sum(s.rejected for s in stats),
        failed=result.failed,
    )
