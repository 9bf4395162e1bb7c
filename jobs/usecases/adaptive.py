"""`troop run` with an adaptive `allocate.policy`: generation, verification (and scoring) side by
side, each problem's next samples decided from its verdicts as they land (`jobs.allocate`).

The driver feeds the schedule each unit whose verdicts (and, for a reward-weighted
`confidence` vote, whose scores) have landed, and queues the units it releases at once: the
generation actors always have the next units in their queue while any are decided. A resumed
run first feeds the schedule every stored verdict, which gives the same decisions as the run
that wrote them; it then generates the released units that have no sample file yet, and
verifies (and scores) those generated but not verified.
"""

import json
import logging
import threading
import time
from dataclasses import dataclass, field

from jobs.allocate import Grant, Schedule
from jobs.cluster.executor import UnitExecutor
from jobs.cluster.pools import Cluster
from jobs.config import JobConfig
from jobs.errors import TroopError
from jobs.problems.units import WorkUnit
from jobs.stages.generation import UnitTask, engine_spec, sampling_spec
from jobs.store import layout
from jobs.store.failures import record_failures
from jobs.store.progress import ProgressFile
from jobs.store.runinfo import record_run
from jobs.usecases.allocation import StoredVerdicts, allocation_settings, replay, weighs_votes
from jobs.usecases.follow import Events, StageFeed, scoring_follower, verification_follower
from jobs.usecases.generate import GenerateSummary, RunPlan
from jobs.usecases.score import ScoreSummary, check_scorer
from jobs.usecases.verify import VerifySummary, prepare_verification

log = logging.getLogger("troop")


@dataclass
class AllocationStats:
    """What the driver saw of an adaptive run (allocation.json)."""

    policy: str
    rounds: int = 0  # rounds with samples drawn
    units: int = 0  # work units released
    finished: bool = False  # every decision taken (False: units failed every attempt; rerun)
    engine_seconds: float = 0.0  # generation actors' time on units (this driver's)
    wall_seconds: float = 0.0  # from the first unit queued to the last generated, times workers
    engine_idle_share: float | None = None  # 1 - engine_seconds / wall_seconds

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def work_unit(grant: Grant, problem_ids: list[str]) -> WorkUnit:
    return WorkUnit(grant.unit_id, grant.block_start, tuple(problem_ids[i] for i in grant.problems), grant.start, grant.end)


class _Borrowed:
    """A pool the caller owns: the feed must not shut it down."""

    def __init__(self, pool: UnitExecutor):
        self.pool = pool

    def __enter__(self) -> UnitExecutor:
        return self.pool

    def __exit__(self, *exc) -> None:
        pass


@dataclass
class _Outstanding:
    """Units released but not yet in the schedule, by what they still wait for."""

    generate: set = field(default_factory=set)
    verify: set = field(default_factory=set)
    score: set = field(default_factory=set)  # only where decisions need scores
    lost: set = field(default_factory=set)  # failed every attempt in some stage

    def waiting(self) -> bool:
        return bool(self.generate or self.verify or self.score)


def run_adaptive(config: JobConfig, plan: RunPlan, pool: UnitExecutor | None, cluster: Cluster
                 ) -> tuple[GenerateSummary, VerifySummary, ScoreSummary | None, AllocationStats]:
    """Generates, verifies (and scores) an adaptive run to its last decision (see the module)."""
    store, ids = plan.store, plan.problems["problem_id"].to_pylist()
    verification = prepare_verification(config.verify, plan.problems, f"problems.source={config.problems.source}")
    scorer = check_scorer(config.score) if config.score.model is not None else None
    weighted = weighs_votes(config)
    schedule = Schedule(allocation_settings(config, len(ids)), config.plan.samples_per_unit, weighted)
    stored = StoredVerdicts(store, verification.summary.verifier_key, scorer if weighted else None, ids)
    released = replay(schedule, stored)
    done = store.unit_ids(layout.SAMPLES)
    to_generate = [g for g in released if g.unit_id not in done]
    cluster.connect(config.cluster.address, config.run.root, config.run.shared_filesystem)
    own_pool = cluster.generation(config) if pool is None and (to_generate or not schedule.finished) else None
    engines = pool or own_pool
    if engines is not None and engines.stage.identity != engine_spec(config):
        raise ValueError(f"the pool's engine ({engines.stage.identity}) is not the one the config asks for ({engine_spec(config)})")
    try:
        record_run(store, config, plan.problems)  # after the engines start: a model that fails to load leaves no run
        driver = _Driver(config, store, ids, schedule, stored, verification, scorer, cluster, engines, own_pool is not None)
    except BaseException:
        if own_pool is not None:
            own_pool.shutdown()
        raise
    driver.start(released, done)
    return driver.finish(len(done))


class _Driver:
    """The loop of one adaptive run: units land, the schedule decides, new units are queued."""

    def __init__(self, config, store, ids, schedule, stored, verification, scorer, cluster, engines, owns_engines):
        self.config, self.store, self.ids, self.schedule, self.stored = config, store, ids, schedule, stored
        self.verification, self.weighted = verification, stored.scorer_key is not None
        self.events = Events()
        self.out = _Outstanding()
        self.stats = AllocationStats(config.allocate.policy)
        self.generated: list = []
        self.generation_failed: dict = {}
        self.workers = engines.num_workers if engines is not None else 0
        store.remove_stale_temporaries(layout.SAMPLES)
        self.began = self.first_put = self.last_landed = None
        # Scores that decisions read start with generation (and before verification, which takes
        # the CPUs left); others as score.start says.
        self.score_gate = None if self.weighted or config.score.start == "with_generation" else threading.Event()
        self.scoring = scoring_follower(config, store, scorer, cluster, None, self.events) \
            if scorer is not None and self.score_gate is None else None
        self.verifier = verification_follower(config, store, verification, cluster, self.events)
        if scorer is not None and self.score_gate is not None:
            self.scoring = scoring_follower(config, store, scorer, cluster, self.score_gate, self.events)
        # Last: from here on the feed owns this run's engines and shuts them down when closed.
        self.generation = StageFeed(lambda: engines if owns_engines else _Borrowed(engines),
                                    lambda stats: self.events.put("generated", stats.unit_id, stats),
                                    on_failed=self.events.failed("generation"), progress=ProgressFile(store)) \
            if engines is not None else None

    def start(self, released: list[Grant], done: set[str]) -> None:
        self.began = time.perf_counter()
        for grant in released:
            if grant.unit_id not in done:
                self._generate(grant)
            elif not self.stored.has_verdicts(grant.unit_id) or not self.stored.has_scores(grant.unit_id):
                # the followers queued it already (unverified or unscored units of an earlier run)
                if not self.stored.has_verdicts(grant.unit_id):
                    self.out.verify.add(grant.unit_id)
                if not self.stored.has_scores(grant.unit_id):
                    self.out.score.add(grant.unit_id)
        try:
            self._loop()
        except BaseException:
            self._close()
            raise

    def _generate(self, grant: Grant) -> None:
        task = UnitTask(self.store, work_unit(grant, self.ids), sampling_spec(self.config), self.config.run.seed)
        self.first_put = self.first_put or time.perf_counter()
        self.out.generate.add(grant.unit_id)
        self.generation.put(task)

    def _loop(self) -> None:
        while self.out.waiting():
            kind, unit_id, detail = self.events.queue.get()
            if kind == "generated":
                self._generated(unit_id, detail)
            elif kind in ("verified", "scored"):
                (self.out.verify if kind == "verified" else self.out.score).discard(unit_id)
            else:  # a stage's last attempt failed: the unit's decisions wait for a rerun
                for waiting in (self.out.generate, self.out.verify, self.out.score):
                    waiting.discard(unit_id)
                self.out.lost.add(unit_id)
                if kind == "generation_failed":
                    self.generation_failed[unit_id] = detail
                continue
            if unit_id in self.schedule.grants and not self._waits(unit_id):
                self.schedule.landed(unit_id, self.stored.read(unit_id))
                for grant in self.schedule.advance():
                    self._generate(grant)

    def _waits(self, unit_id: str) -> bool:
        out = self.out
        return unit_id in out.generate or unit_id in out.verify or unit_id in out.score or unit_id in out.lost

    def _generated(self, unit_id: str, stats) -> None:
        self.out.generate.discard(unit_id)
        self.generated.append(stats)
        self.last_landed = time.perf_counter()
        self.out.verify.add(unit_id)
        self.verifier.feed.put(self.verifier.task(unit_id))
        if self.scoring is not None:
            if self.weighted:
                self.out.score.add(unit_id)
            self.scoring.feed.put(self.scoring.task(unit_id))

    def _close(self) -> None:
        """Closes generation (shutting its engines down if they are this run's), then the followers."""
        if self.generation is not None:
            self.generation.close()
        if self.score_gate is not None:
            self.score_gate.set()
        for follower in (self.verifier, self.scoring):
            if follower is not None:
                follower.summary.failed.update(follower.feed.close().failed)

    def finish(self, skipped: int) -> tuple[GenerateSummary, VerifySummary, ScoreSummary | None, AllocationStats]:
        self._close()
        for unit_id, (status, reason) in self.generation_failed.items():
            record_failures(self.store, unit_id, [(None, status, reason)])
        seconds = time.perf_counter() - self.began
        stats = self.stats
        stats.units, stats.finished = len(self.schedule.grants), self.schedule.finished
        stats.rounds = max((g.round for g in self.schedule.grants.values()), default=0)
        stats.engine_seconds = sum(s.seconds for s in self.generated)
        if self.first_put is not None and self.last_landed is not None and self.workers:
            stats.wall_seconds = (self.last_landed - self.first_put) * self.workers
            stats.engine_idle_share = max(0.0, 1.0 - stats.engine_seconds / stats.wall_seconds) if stats.wall_seconds else None
        self.store.write_text(self.store.path(layout.ALLOCATION_JSON), json.dumps(stats.as_dict(), indent=1) + "\n")
        generated = GenerateSummary(
            units_total=len(self.schedule.grants), units_skipped=skipped, generated=[s.unit_id for s in self.generated],
            samples=sum(s.samples for s in self.generated), tokens=sum(s.tokens for s in self.generated), seconds=seconds,
            rejected=sum(s.rejected for s in self.generated), failed=self.generation_failed,
            root=self.store.url(self.store.path()))
        if not stats.finished and not (self.generation_failed or self.verification.summary.failed or
                                       (self.scoring is not None and self.scoring.summary.failed)):
            raise TroopError(f"the allocation of {self.store.root} stopped before its last decision with no unit failed: "
                             "a bug; rerun the same command to go on")
        self.verification.summary.seconds = seconds
        if self.scoring is not None:
            self.scoring.summary.seconds = seconds
        return generated, self.verification.summary, self.scoring.summary if self.scoring else None, stats
