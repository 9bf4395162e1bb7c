"""What a step-level search run (`strategy.kind=beam|dvts`) changes in `troop run`/`generate`:
the actors hold the policy and the PRM, a unit's task carries the search settings, a unit holds
all N trajectories of its problems, and a fresh run first checks that the policy writes the
step separator at all."""

from dataclasses import replace

from jobs.config import JobConfig, is_search
from jobs.errors import ConfigError
from jobs.problems.units import WorkUnit
from jobs.stages.generation import UnitTask, engine_spec, sampling_spec
from jobs.stages.search import search_engines, search_task
from jobs.store.root import RunStore
from jobs.usecases.score import check_scorer


def engines_of(config: JobConfig):
    """What the run's generation actors hold (`Stage.identity`)."""
    return search_engines(config) if is_search(config) else engine_spec(config)


def unit_tasks(config: JobConfig, store: RunStore, units: list[WorkUnit]) -> list:
    """The units' tasks; the settings (and a search's scorer key, which reads the PRM's folder)
    are worked out once, not per unit."""
    if not units:
        return []
    first = search_task(config, store, units[0]) if is_search(config) else \
        UnitTask(store, units[0], sampling_spec(config), config.run.seed)
    return [replace(first, unit=unit) for unit in units]


def samples_per_unit(config: JobConfig) -> int:
    """A search unit holds every trajectory of its problems (a search cannot be cut by sample)."""
    spu = config.plan.samples_per_unit
    return max(spu, config.sampling.n) if is_search(config) else spu


def check_search_inputs(config: JobConfig) -> None:
    """The PRM exists and is a process reward model: before any engine starts."""
    if is_search(config):
        check_scorer(config.score)


def check_separator(pool, config: JobConfig, store: RunStore, problems, first: WorkUnit) -> None:
    """On a fresh search run, before anything is written: the first unit's first step must end
    at `strategy.step_separator` at least once, else every trajectory would be one step (a
    best-of-N by the PRM, not a search): a ConfigError naming the separator."""
    if not is_search(config):
        return
    prompts = dict(zip(problems["problem_id"].to_pylist(), problems["prompt"].to_pylist()))
    task = search_task(config, store, first)
    stopped, children = pool.ask_one("separator_stops", {pid: prompts[pid] for pid in first.problem_ids}, task)
    if children and not stopped:
        raise ConfigError(
            f"strategy.step_separator={config.strategy.step_separator!r} never occurred in the first step of unit "
            f"{first.unit_id} ({children} continuations of {len(first.problem_ids)} problems all ended at EOS or "
            "sampling.max_tokens): every trajectory would be one step; set strategy.step_separator to what the model "
            "writes between steps (and score.step_separator follows it), or use strategy.kind=sample")
