"""The verification pool: Ray actors on CPUs only, apart from the generation actors.

Each actor is a `VerifyWorker` with its own warm sandbox. The driver hands each actor its next
unit when one finishes, like the generation pool. Tasks come from a queue, so `troop run` can
feed units to the pool as the generation actors land them (verdicts follow minutes behind the
samples, not after the last one); `troop verify` queues every pending unit at once.
"""

import logging
import queue
from typing import Callable, Iterable, Optional

from jobs.pool import ActorPool
from jobs.verify import VerifyStats, VerifyTask, VerifyWorker

log = logging.getLogger("troop")

POLL_S = 0.05  # how often the dispatch loop looks at the queue while units are in flight


def verify_actor_cpus(workers: Optional[int], free_cpus: float) -> tuple[int, float]:
    """(actors, CPUs per actor): one CPU each by default, one actor per free CPU; an explicit
    `workers` beyond the free CPUs shares them, so no actor waits for a CPU that never frees."""
    if workers is None:
        return max(1, int(free_cpus)), 1.0
    per_actor = min(1.0, free_cpus / workers) if free_cpus > 0 else 0.0
    return workers, round(per_actor, 4)


class VerifyPool(ActorPool):
    def __init__(self, workers: Optional[int] = None):
        import ray

        free = ray.available_resources().get("CPU", 0.0)
        self.num_workers, cpus = verify_actor_cpus(workers, free)
        actor_class = ray.remote(VerifyWorker).options(num_cpus=cpus, num_gpus=0)
        log.info("starting %d verification worker(s) (%.2f CPU each)", self.num_workers, cpus)
        self.actors = [actor_class.remote() for _ in range(self.num_workers)]
        ray.get([actor.ready.remote() for actor in self.actors])

    def run(self, tasks: Iterable[VerifyTask], on_done: Callable[[VerifyStats], None]) -> None:
        source: queue.Queue = queue.Queue()
        for task in tasks:
            source.put(task)
        source.put(None)
        self.run_stream(source, on_done)

    def run_stream(self, source: "queue.Queue[Optional[VerifyTask]]", on_done: Callable[[VerifyStats], None]) -> None:
        """Verifies tasks from `source` until it yields None and every unit is done."""
        import ray

        idle = list(self.actors)
        in_flight: dict = {}  # object ref -> actor
        open_source = True
        while open_source or in_flight:
            while open_source and idle:
                try:
                    task = source.get(timeout=POLL_S if in_flight else None)
                except queue.Empty:
                    break
                if task is None:
                    open_source = False
                    break
                actor = idle.pop()
                in_flight[actor.run_unit.remote(task)] = actor
            if not in_flight:
                continue
            done, _ = ray.wait(list(in_flight), num_returns=1, timeout=0 if open_source and idle else POLL_S)
            for ref in done:
                idle.append(in_flight.pop(ref))
                on_done(ray.get(ref))

    def _close(self, actor) -> None:
        import ray

        try:  # stops the actor's sandbox and math helper before the kill
            ray.get(actor.close.remote(), timeout=10)
        except Exception:  # noqa: BLE001 - a dead actor has nothing left to close
            pass
