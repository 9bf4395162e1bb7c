"""`troop generate`: plan the units, skip the finished ones, run the rest on the pool."""

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import pyarrow as pa

from jobs.cluster.executor import UnitExecutor
from jobs.cluster.pools import RAY, Cluster
from jobs.config import JobConfig
from jobs.errors import ConfigError, ProblemSetError, TroopError
from jobs.problems import load_problems
from jobs.problems.units import WorkUnit, plan_units
from jobs.stages.generation import UnitStats
from jobs.store import layout
from jobs.store.failures import record_failures
from jobs.store.progress import ProgressFile
from jobs.store.root import RunStore
from jobs.store.runinfo import check_model_path, check_resumable, record_run
from jobs.usecases.allocation import check_allocation
from jobs.usecases.progress import UnitProgress
from jobs.usecases.search import check_search_inputs, check_separator, engines_of, samples_per_unit, unit_tasks

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
    root: str = ""  # the run's root as a URL

    def check(self) -> None:
        """A TroopError naming the units that failed every attempt, if any (the rest is done)."""
        if self.failed:
            unit_id, (status, reason) = next(iter(self.failed.items()))
            more = f" and {len(self.failed) - 1} more" if len(self.failed) > 1 else ""
            raise TroopError(f"unit {unit_id}{more} failed every attempt ({status}: {reason}); the rest of the run is done, "
                             f"the failures are in {self.root}/failures/: rerun the same command to retry them")


def open_run(config: JobConfig, required_columns: dict[str, str] | None = None) -> tuple[RunStore, pa.Table, list]:
    """The run's store, problem set and sample segments, checked; nothing is written yet.

    `required_columns` maps problem columns that a later step reads to the setting that needs them.
    """
    store = RunStore(config.run.root, dict(config.run.storage_options))
    problems = load_problems(config.problems, dict(config.run.storage_options), config.prompt, config.model)
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
    done = store.unit_ids(layout.SAMPLES)
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
    check_search_inputs(config)
    store, problems, segments = open_run(config, required_columns)
    check_allocation(config, problems.num_rows, segments)
    units = plan_units(problems["problem_id"].to_pylist(), config.sampling.n, samples_per_unit(config), segments)
    todo = pending_units(store, units)
    log.info("run %s: %d units, %d already done", store.root, len(units), len(units) - len(todo))
    return RunPlan(config, store, problems, units, todo, segments)


def generate(config: JobConfig, pool: UnitExecutor | None = None, plan: RunPlan | None = None,
             cluster: Cluster = RAY) -> GenerateSummary:
    """`troop generate`: every missing unit of the run. `pool` lets several runs share engines;
    `plan`: the run as the caller already planned it; `cluster`: where actors come from.

    Input errors (config, problems, model path, store) surface before anything is written, and
    the engines start before job.yaml, so a model that fails to load leaves no run behind.
    """
    plan = plan or plan_run(config)
    if config.allocate.policy != "uniform":
        raise ConfigError(f"allocate.policy={config.allocate.policy} decides from verdicts as they land: use troop run "
                          "(troop generate draws sampling.n per problem, allocate.policy=uniform)")
    if pool is None and plan.todo:
        cluster.connect(config.cluster.address, config.run.root, config.run.shared_filesystem)
        with cluster.generation(config) as own:
            return execute(plan, own)
    return execute(plan, pool)


def execute(plan: RunPlan, pool: UnitExecutor | None, on_unit: Callable[[str], None] | None = None) -> GenerateSummary:
    """Generate the plan's pending units on `pool`; `on_unit` sees each unit id as its file lands."""
    config = plan.config
    if plan.todo and pool.stage.identity != engines_of(config):
        raise ValueError(f"the pool's engine ({pool.stage.identity}) is not the one the config asks for ({engines_of(config)})")
    if plan.todo and len(plan.todo) == len(plan.units):  # a fresh run: nothing is written yet
        check_separator(pool, config, plan.store, plan.problems, plan.todo[0])
    record_run(plan.store, config, plan.problems, plan.segments)
    if not plan.todo:
        summary = GenerateSummary(len(plan.units), len(plan.units), [], 0, 0, 0.0)
    else:
        summary = _generate(pool, config, plan.store, plan.todo, len(plan.units), on_unit)
    summary.root = plan.store.url(plan.store.path())
    return summary


def _generate(pool: UnitExecutor, config: JobConfig, store: RunStore, todo: list[WorkUnit], units_total: int,
              on_unit=None) -> GenerateSummary:
    store.remove_stale_temporaries(layout.SAMPLES)
    tasks = unit_tasks(config, store, todo)
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
