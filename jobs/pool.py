"""Generation actors on Ray: placement and dispatch of units, nothing else.

The driver keeps the queue of units and hands each actor its next unit as soon as one of its
units finishes, so the actors pull work at their own pace. Each actor holds `UNITS_IN_FLIGHT`
units at once so that its next unit is already waiting in its mailbox while it writes the
current one. Only unit ids and `UnitStats` travel through the driver.

An actor that dies (its process killed, its node lost, its engine crashed) is replaced by a new
one, and its units go back to the queue: a unit file is written whole or not at all, so nothing
it half-did survives. A unit is tried at most 1 + `max_unit_retries` times; after that it is
reported as failed and the others carry on.
"""

import logging
import os
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable

from jobs.actor import GenerationWorker, UnitStats, UnitTask
from jobs.errors import TroopError
from workers.engine import EngineSpec

log = logging.getLogger("troop")

UNITS_IN_FLIGHT = 2
MAX_UNIT_RETRIES = 2


@dataclass
class PoolResult:
    finished: list = field(default_factory=list)  # UnitStats of the units written
    failed: dict = field(default_factory=dict)  # unit id -> (status, reason) of its last attempt


def init_ray(address: str | None) -> None:
    """Connect to `address` (an existing cluster), or start a local Ray; once per process."""
    import ray

    if ray.is_initialized():
        return
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=True, logging_level=logging.WARNING)
    except ConnectionError as err:
        raise TroopError(f"cluster.address={address} cannot be reached ({err}): is the Ray head running?") from None


def worker_resources(tensor_parallel_size: int, cluster_gpus: float, cpus_per_worker: float) -> dict:
    """Ray resources of one generation actor: its engine's GPUs where the cluster has any."""
    return {"num_cpus": cpus_per_worker, "num_gpus": tensor_parallel_size if cluster_gpus > 0 else 0}


def default_num_workers(tensor_parallel_size: int, cluster_gpus: float) -> int:
    """One actor per `tensor_parallel_size` GPUs, or one on a machine without GPUs."""
    return max(1, int(cluster_gpus // tensor_parallel_size)) if cluster_gpus > 0 else 1


class ActorPool:
    """Ray actors owned by a pool: killed by `shutdown` (which may be called more than once),
    and a context manager that shuts down on exit."""

    actors: list

    def _close(self, actor) -> None:
        """Lets an actor release what it holds before it is killed; nothing by default."""

    def shutdown(self) -> None:
        import ray

        for actor in self.actors:
            self._close(actor)
            ray.kill(actor)
        self.actors = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()


class GenerationPool(ActorPool):
    """`num_workers` actors, each owning one engine built from `spec`; reusable across runs."""

    def __init__(self, spec: EngineSpec, num_workers: int | None = None, cpus_per_worker: float = 1.0,
                 max_unit_retries: int = MAX_UNIT_RETRIES, worker_class=GenerationWorker):
        import ray

        gpus = ray.cluster_resources().get("GPU", 0)
        self.spec = spec
        self.max_unit_retries = max_unit_retries
        self.num_workers = num_workers or default_num_workers(spec.tensor_parallel_size, gpus)
        resources = worker_resources(spec.tensor_parallel_size, gpus, cpus_per_worker)
        # vLLM logs every engine step at INFO; a user who wants them sets VLLM_LOGGING_LEVEL.
        env = {"VLLM_LOGGING_LEVEL": os.environ.get("VLLM_LOGGING_LEVEL", "WARNING")}
        self._actor_class = ray.remote(worker_class).options(**resources, runtime_env={"env_vars": env})
        log.info("starting %d generation worker(s) for %s (%s)", self.num_workers, spec.model, resources)
        self.actors = [self._actor_class.remote(spec) for _ in range(self.num_workers)]
        self._ready = {actor: actor.ready.remote() for actor in self.actors}  # each resolves to its pid
        try:
            ray.get(list(self._ready.values()))
        except ray.exceptions.RayActorError as err:
            self.shutdown()
            cause = str(err.__cause__ or err).strip().splitlines()[-1]
            raise TroopError(f"model.path={spec.model}: the vLLM engine failed to start ({cause}; the worker's log above has the root cause)") from None

    def _close(self, actor) -> None:
        import ray

        try:  # the engine's processes stop and free their shared memory before the kill
            ray.get(actor.close.remote(), timeout=60)
        except Exception:  # noqa: BLE001 - a dead actor has nothing left to close
            pass

    def _replace(self, dead) -> None:
        """A new actor in the place of a dead one (its engine loads while units queue for it)."""
        import ray

        if dead not in self.actors:  # already replaced: a dead actor fails all its units
            return
        log.warning("a generation worker died; starting a replacement")
        ray.kill(dead, no_restart=True)
        fresh = self._actor_class.remote(self.spec)
        self.actors[self.actors.index(dead)] = fresh
        del self._ready[dead]
        self._ready[fresh] = fresh.ready.remote()

    def worker_pids(self) -> list[int]:
        """The workers' process ids (waiting for a replacement's engine to be up)."""
        import ray

        return ray.get([self._ready[actor] for actor in self.actors])

    def run(self, tasks: Iterable[UnitTask], on_done: Callable[[UnitStats], None], progress=None) -> PoolResult:
        """Generate every task's unit; `on_done` sees each unit's stats as it lands; `progress`
        (if given) is told each unit id as it is `dispatched` and as it has `settled`."""
        import ray

        pending = deque((task, 0) for task in tasks)  # (task, attempts so far)
        in_flight: dict = {}  # object ref -> (actor, task, attempts), in dispatch order
        result = PoolResult()

        def fill() -> None:
            busy = [a for a, _, _ in in_flight.values()]
            for actor in self.actors:
                for _ in range(UNITS_IN_FLIGHT - busy.count(actor)):
                    if pending:
                        task, attempts = pending.popleft()
                        in_flight[actor.run_unit.remote(task)] = (actor, task, attempts)
                        if progress is not None:
                            progress.dispatched(task.unit.unit_id)

        fill()
        while in_flight:
            [ref], _ = ray.wait(list(in_flight), num_returns=1)
            actor, task, attempts = in_flight[ref]
            try:
                stats = ray.get(ref)
            except ray.exceptions.RayActorError as err:
                self._actor_died(actor, ("worker_died", _cause(err)), in_flight, pending, result, progress)
            except ray.exceptions.RayTaskError as err:
                del in_flight[ref]
                self._retry_or_fail(task, attempts, ("error", _cause(err)), pending, result)
                if progress is not None:
                    progress.settled(task.unit.unit_id)
            else:
                del in_flight[ref]
                result.finished.append(stats)
                on_done(stats)
                if progress is not None:
                    progress.settled(task.unit.unit_id)
            fill()
        return result

    def _actor_died(self, actor, failure: tuple[str, str], in_flight: dict, pending: deque, result: PoolResult, progress) -> None:
        """All of a dead actor's units at once: the first dispatched was running (an actor runs
        its tasks in order) and spends an attempt; the ones waiting behind it go back to the
        front of the queue as they were, so a unit that kills workers takes no other unit down."""
        mine = [ref for ref, (owner, _, _) in in_flight.items() if owner == actor]
        self._replace(actor)
        for position, ref in enumerate(mine):
            _, task, attempts = in_flight.pop(ref)
            if position == 0:
                self._retry_or_fail(task, attempts, failure, pending, result)
            else:
                pending.appendleft((task, attempts))
            if progress is not None:
                progress.settled(task.unit.unit_id)

    def _retry_or_fail(self, task: UnitTask, attempts: int, failure: tuple[str, str], pending: deque, result: PoolResult) -> None:
        unit_id = task.unit.unit_id
        if attempts < self.max_unit_retries:
            log.warning("unit %s: %s (%s); retrying (attempt %d of %d)", unit_id, *failure, attempts + 2, self.max_unit_retries + 1)
            pending.append((task, attempts + 1))
        else:
            log.error("unit %s failed %d times, last: %s (%s)", unit_id, attempts + 1, *failure)
            result.failed[unit_id] = failure


def _cause(err: Exception) -> str:
    """The last line of a Ray error: the exception that ended the task or the actor."""
    lines = str(err.__cause__ or err).strip().splitlines()
    return lines[-1] if lines else type(err).__name__
