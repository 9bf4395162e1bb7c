"""Running a sweep: points that share an engine run one after the other on the same actors.

Points are grouped by everything their generation pool depends on (the engine spec: model,
revision, dtype, max_model_len, parallelism, engine kwargs; and the pool's cluster settings).
Each group starts one pool, runs its points through `troop run`'s own path (generation with
verification alongside, then metrics and the point's report), and shuts the pool down before
the next group's model loads. Only sampling parameters and the problem set change between the
points of a group; the engine never reloads.

Every point is planned (model path, problems, store, resume compatibility) before any engine
starts. A finished point (all units generated and verified, metrics.json written) is skipped;
an unfinished one resumes unit by unit like a run.
"""

import logging
from dataclasses import dataclass, field
from typing import Callable

from omegaconf import OmegaConf

from jobs.config import JobConfig
from jobs.errors import TroopError
from jobs.usecases.generate import RunPlan, engine_spec, plan_run, start_pool
from jobs.cluster.executor import init_ray
from jobs.usecases.run import verifier_columns
from jobs.usecases.sweep import Point, Sweep, write_sweep_yaml
from jobs.usecases.verify import unverified_units
from jobs.stages.verification import verifier_key, verify_settings

log = logging.getLogger("troop")


@dataclass
class SweepSummary:
    skipped: list[str] = field(default_factory=list)  # points already finished
    ran: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # point name -> its error
    pools_started: int = 0
    engines_started: int = 0  # pools x actors: each actor loads the model once


def pool_key(config: JobConfig) -> tuple:
    """Two points with equal keys can run on the same generation pool."""
    cluster = OmegaConf.to_yaml(OmegaConf.structured(config.cluster))
    return engine_spec(config), cluster


def group_points(points: list[Point]) -> list[list[Point]]:
    """Points by pool key, groups in order of first appearance, points in sweep order."""
    groups: dict = {}
    for point in points:
        groups.setdefault(pool_key(point.config), []).append(point)
    return list(groups.values())


def point_finished(plan: RunPlan) -> bool:
    """Every unit generated, verified by this verifier's key, and measured."""
    store, config = plan.store, plan.config
    if plan.todo or config.verify.verifier is None:
        return not plan.todo  # without a verifier a run ends with its samples
    if not store.exists(store.metrics_json):
        return False
    key = verifier_key(config.verify.verifier, verify_settings(config.verify))
    return not unverified_units(store, key)


def plan_points(sweep: Sweep) -> dict[str, RunPlan]:
    """Every point checked before anything starts: a bad point fails the sweep up front."""
    plans = {}
    for point in sweep.points:
        try:
            plans[point.name] = plan_run(point.config, verifier_columns(point.config))
        except TroopError as err:
            raise type(err)(f"sweep point {point.name}: {err}") from None
    return plans


def run_sweep(sweep: Sweep, run_point: Callable[[JobConfig, object, RunPlan], None]) -> SweepSummary:
    """Runs every unfinished point; `run_point(config, pool, plan)` is `troop run` on a given
    pool with the point's plan (pool None: the point has nothing left to generate). A point whose `run_point` raises a
    TroopError (a unit that failed every attempt, say) is reported and the sweep goes on."""
    plans = plan_points(sweep)  # each point's store checked writable: the sweep root's too
    write_sweep_yaml(sweep)
    summary = SweepSummary()
    for group in group_points(sweep.points):
        todo = [p for p in group if not point_finished(plans[p.name])]
        summary.skipped += [p.name for p in group if p not in todo]
        if todo:
            _run_group(todo, plans, run_point, summary)
    return summary


def _run_group(points: list[Point], plans: dict[str, RunPlan], run_point, summary: SweepSummary) -> None:
    pool = None
    try:
        for point in points:
            if pool is None and plans[point.name].todo:
                init_ray(point.config.cluster.address, point.config.run.root, point.config.run.shared_filesystem)
                pool = start_pool(point.config)
                summary.pools_started += 1
                summary.engines_started += pool.num_workers
            log.info("sweep point %s", point.name)
            try:
                run_point(point.config, pool, plans[point.name])
            except TroopError as err:
                log.error("sweep point %s: %s", point.name, err)
                summary.failed[point.name] = str(err)
            else:
                summary.ran.append(point.name)
    finally:
        if pool is not None:
            pool.shutdown()
