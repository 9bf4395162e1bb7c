"""The verification pool: Ray actors on CPUs only, apart from the generation actors.

Each actor is a `VerifyWorker` with its own warm sandbox. The driver hands each actor its next
unit when one finishes, like the generation pool. Tasks come from a queue, so `troop run` can
feed units to the pool as the generation actors land them (verdicts follow minutes behind the
samples, not after the last one); `troop verify` queues every pending unit at once. An actor
that dies is replaced and its unit redone, at most `MAX_UNIT_RETRIES` more times; a unit that
still fails is reported (`on_failed`) and has no verdict file, so a rerun verifies it again.
"""

import logging
import queue
from typing import Callable, Iterable, Optional

from jobs.config import VerifyConfig
from jobs.cluster.placement import PlacementSettings, verify_placement
from jobs.cluster.executor import ActorPool, free_nodes
from jobs.stages.verification import VerifyStats, VerifyTask, VerifyWorker

log = logging.getLogger("troop")

POLL_S = 0.05  # how often the dispatch loop looks at the queue while units are in flight
MAX_UNIT_RETRIES = 2


def start_verify_pool(config: VerifyConfig) -> "VerifyPool":
    """The pool `config` asks for, on the CPUs the generation actors (if any) left free."""
    return VerifyPool(config.workers, placement=PlacementSettings(dict(config.resources), dict(config.label_selector)))


class VerifyPool(ActorPool):
    """`workers` actors (None: one per CPU the generation actors left free, see
    `jobs.cluster.placement.verify_placement`); `placement` adds custom resources and node labels."""

    def __init__(self, workers: Optional[int] = None, worker_class=VerifyWorker, placement: PlacementSettings = PlacementSettings()):
        import ray

        self.actor_placement = verify_placement(free_nodes(), workers, placement)
        self.num_workers = self.actor_placement.num_workers
        self._actor_class = ray.remote(worker_class).options(**self.actor_placement.options)
        log.info("starting %d verification worker(s) (%s)", self.num_workers, self.actor_placement.options)
        self.actors = [self._actor_class.remote() for _ in range(self.num_workers)]
        ray.get([actor.ready.remote() for actor in self.actors])

    def run(self, tasks: Iterable[VerifyTask], on_done: Callable[[VerifyStats], None], on_failed=None) -> None:
        source: queue.Queue = queue.Queue()
        for task in tasks:
            source.put(task)
        source.put(None)
        self.run_stream(source, on_done, on_failed)

    def run_stream(self, source: "queue.Queue[Optional[VerifyTask]]", on_done: Callable[[VerifyStats], None],
                   on_failed: Callable[[str, str], None] | None = None) -> None:
        """Verifies tasks from `source` until it yields None and every unit is done;
        `on_failed(unit_id, reason)` hears of a unit that failed every attempt."""
        import ray

        idle = list(self.actors)
        in_flight: dict = {}  # object ref -> (actor, task, attempts)
        retries: list = []  # (task, attempts) of units whose actor died
        open_source = True
        while open_source or in_flight or retries:
            while idle and (retries or open_source):
                if retries:
                    task, attempts = retries.pop()
                else:
                    try:
                        task, attempts = source.get(timeout=POLL_S if in_flight else None), 0
                    except queue.Empty:
                        break
                    if task is None:
                        open_source = False
                        break
                actor = idle.pop()
                in_flight[actor.run_unit.remote(task)] = (actor, task, attempts)
            if not in_flight:
                continue
            done, _ = ray.wait(list(in_flight), num_returns=1, timeout=0 if open_source and idle else POLL_S)
            for ref in done:
                actor, task, attempts = in_flight.pop(ref)
                try:
                    stats = ray.get(ref)
                except ray.exceptions.RayError as err:
                    idle.append(self._replace(actor) if isinstance(err, ray.exceptions.RayActorError) else actor)
                    self._retry_or_fail(task, attempts, err, retries, on_failed)
                else:
                    idle.append(actor)
                    on_done(stats)

    def _replace(self, dead):
        import ray

        log.warning("a verification worker died; starting a replacement")
        ray.kill(dead, no_restart=True)
        fresh = self._actor_class.remote()
        self.actors[self.actors.index(dead)] = fresh
        return fresh

    @staticmethod
    def _retry_or_fail(task: VerifyTask, attempts: int, err: Exception, retries: list, on_failed) -> None:
        reason = (str(err.__cause__ or err).strip().splitlines() or [type(err).__name__])[-1]
        if attempts < MAX_UNIT_RETRIES:
            log.warning("verifying unit %s failed (%s); retrying", task.unit_id, reason)
            retries.append((task, attempts + 1))
        else:
            log.error("verifying unit %s failed %d times, last: %s", task.unit_id, attempts + 1, reason)
            if on_failed is not None:
                on_failed(task.unit_id, reason)

    def _close(self, actor) -> None:
        import ray

        try:  # stops the actor's sandbox and math helper before the kill
            ray.get(actor.close.remote(), timeout=10)
        except Exception:  # noqa: BLE001 - a dead actor has nothing left to close
            pass
