"""`troop generate`: plan the units, skip the finished ones, run the rest on the pool."""

import logging
import time
from dataclasses import dataclass

import pyarrow as pa

from jobs.actor import UnitTask
from jobs.config import JobConfig
from jobs.errors import ProblemSetError
from jobs.plan import WorkUnit, plan_units
from jobs.pool import GenerationPool, init_ray
from jobs.progress import UnitProgress
from jobs.runinfo import check_model_path, check_resumable, record_run
from jobs.sources import load_problems
from jobs.store import RunStore
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


def open_run(config: JobConfig, required_columns: dict[str, str] | None = None) -> tuple[RunStore, pa.Table]:
    """The run's store and problem set, checked; nothing is written yet.

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
    check_resumable(store, config, problems)
    return store, problems


def pending_units(store: RunStore, units: list[WorkUnit]) -> list[WorkUnit]:
    done = store.unit_ids("samples")
    return [unit for unit in units if unit.unit_id not in done]


def generate(
    config: JobConfig, pool: GenerationPool | None = None, required_columns: dict[str, str] | None = None
) -> GenerateSummary:
    """Generate every missing unit of the run; `pool` lets several runs share engines.

    Input errors (config, problems, model path, store) surface before anything is written, and
    the engines start before job.yaml, so a model that fails to load leaves no run behind.
    """
    check_model_path(config.model.path)
    store, problems = open_run(config, required_columns)
    units = plan_units(problems["problem_id"].to_pylist(), config.sampling.n, config.plan.samples_per_unit)
    todo = pending_units(store, units)
    log.info("run %s: %d units, %d already done", store.root, len(units), len(units) - len(todo))
    if not todo:
        record_run(store, config, problems)
        return GenerateSummary(len(units), len(units), [], 0, 0, 0.0)
    if pool is None:
        init_ray(config.cluster.address)
        with GenerationPool(engine_spec(config), config.cluster.num_workers, config.cluster.cpus_per_worker) as own:
            return _generate(own, config, store, problems, todo, len(units))
    if pool.spec != engine_spec(config):
        raise ValueError(f"the pool's engine ({pool.spec}) is not the one the config asks for ({engine_spec(config)})")
    return _generate(pool, config, store, problems, todo, len(units))


def _generate(pool, config, store, problems, todo: list[WorkUnit], units_total: int) -> GenerateSummary:
    record_run(store, config, problems)
    store.remove_stale_temporaries("samples")
    tasks = [UnitTask(store, unit, sampling_spec(config), config.run.seed) for unit in todo]
    began = time.perf_counter()
    # The bar starts once the engines are up, so its rate and ETA are the steady state's.
    with UnitProgress(len(tasks), sum(u.num_samples for u in todo)) as progress:
        stats = pool.run(tasks, lambda s: progress.advance(s.samples, s.tokens))
    return GenerateSummary(
        units_total=units_total,
        units_skipped=units_total - len(todo),
        generated=[s.unit_id for s in stats],
        samples=sum(s.samples for s in stats),
        tokens=sum(s.tokens for s in stats),
        seconds=time.perf_counter() - began,
    )
