"""Running a sweep: points that share an engine run one after the other on the same actors.

Points are grouped by everything their generation pool depends on (the engine spec: model,
revision, dtype, max_model_len, parallelism, engine kwargs; a search's PRM too; and the pool's
cluster settings).
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
from typing import Callable, Optional

from omegaconf import OmegaConf

from jobs.cluster.pools import RAY, Cluster
from jobs.config import JobConfig
from jobs.errors import TroopError
from jobs.stages.verification import verifier_key, verify_settings
from jobs.store.root import RunStore
from jobs.usecases.generate import RunPlan, plan_run
from jobs.usecases.report import ReportResult, sweep_report_of
from jobs.usecases.run import RunSummary, run, verifier_columns
from jobs.usecases.search import engines_of
from jobs.usecases.sweep import Point, Sweep, load_sweep, write_sweep_yaml
from jobs.usecases.verify import unverified_units

log = logging.getLogger("troop")


@dataclass
class SweepSummary:
    skipped: list[str] = field(default_factory=list)  # points already finished
    ran: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # point name -> its error
    pools_started: int = 0
    engines_started: int = 0  # pools x actors: each actor loads the model once
    points: dict[str, RunSummary] = field(default_factory=dict)  # point name -> its run, for the points run
    report: ReportResult | None = None  # the comparison and its report, once any point is measured

    def check(self) -> None:
        """A TroopError naming the points that did not finish, if any (the others did)."""
        if self.failed:
            name, error = next(iter(self.failed.items()))
            more = f" and {len(self.failed) - 1} more" if len(self.failed) > 1 else ""
            raise TroopError(f"sweep point {name}{more} did not finish ({error})")


def pool_key(config: JobConfig) -> tuple:
    """Two points with equal keys can run on the same generation pool."""
    cluster = OmegaConf.to_yaml(OmegaConf.structured(config.cluster))
    return engines_of(config), cluster


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


PointRunner = Callable[[JobConfig, object, RunPlan], Optional[RunSummary]]


def sweep(config_path: Optional[str], overrides: list[str], cluster: Cluster = RAY,
          on_point: Callable[[str, RunSummary], None] | None = None) -> SweepSummary:
    """`troop sweep CONFIG key=a,b ...`: every unfinished point, then the comparison report.
    `on_point(name, summary)` hears of each point as it finishes."""
    grid = load_sweep(config_path, overrides)
    summary = run_sweep(grid, cluster=cluster, on_point=on_point)
    if summary.ran or summary.skipped:
        store = grid.store
        summary.report = sweep_report_of(store, RunStore(store.url(store.report), dict(grid.storage_options)))
    return summary


def run_sweep(grid: Sweep, run_point: PointRunner | None = None, cluster: Cluster = RAY,
              on_point: Callable[[str, RunSummary], None] | None = None) -> SweepSummary:
    """Runs every unfinished point; `run_point(config, pool, plan)` is `troop run` on a given
    pool with the point's plan (pool None: the point has nothing left to generate). A point
    whose run fails (a unit that failed every attempt, say) is reported and the sweep goes on."""
    run_point = run_point or (lambda config, pool, plan: run(config, pool, plan, cluster))
    plans = plan_points(grid)  # each point's store checked writable: the sweep root's too
    write_sweep_yaml(grid)
    summary = SweepSummary()
    for group in group_points(grid.points):
        todo = [p for p in group if not point_finished(plans[p.name])]
        summary.skipped += [p.name for p in group if p not in todo]
        if todo:
            _run_group(todo, plans, run_point, summary, cluster, on_point)
    return summary


def _run_group(points: list[Point], plans: dict[str, RunPlan], run_point: PointRunner, summary: SweepSummary,
               cluster: Cluster, on_point) -> None:
    pool = None
    try:
        for point in points:
            if pool is None and plans[point.name].todo:
                cluster.connect(point.config.cluster.address, point.config.run.root, point.config.run.shared_filesystem)
                pool = cluster.generation(point.config)
                summary.pools_started += 1
                summary.engines_started += pool.num_workers
            log.info("sweep point %s", point.name)
            try:
                result = run_point(point.config, pool, plans[point.name])
                if result is not None:
                    summary.points[point.name] = result
                    if on_point is not None:
                        on_point(point.name, result)
                    result.check()
            except TroopError as err:
                log.error("sweep point %s: %s", point.name, err)
                summary.failed[point.name] = str(err)
            else:
                summary.ran.append(point.name)
    finally:
        if pool is not None:
            pool.shutdown()
