"""Generation actors on Ray: placement and dispatch of units, nothing else.

The driver keeps the queue of units and hands each actor its next unit as soon as one of its
units finishes, so the actors pull work at their own pace. Each actor holds `UNITS_IN_FLIGHT`
units at once so that its next unit is already waiting in its mailbox while it writes the
current one. Only unit ids and `UnitStats` travel through the driver.
"""

import logging
import os
from collections import deque
from typing import Callable, Iterable

from jobs.actor import GenerationWorker, UnitStats, UnitTask
from jobs.errors import TroopError
from workers.engine import EngineSpec

log = logging.getLogger("troop")

UNITS_IN_FLIGHT = 2


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

    def __init__(self, spec: EngineSpec, num_workers: int | None = None, cpus_per_worker: float = 1.0):
        import ray

        gpus = ray.cluster_resources().get("GPU", 0)
        self.spec = spec
        self.num_workers = num_workers or default_num_workers(spec.tensor_parallel_size, gpus)
        resources = worker_resources(spec.tensor_parallel_size, gpus, cpus_per_worker)
        # vLLM logs every engine step at INFO; a user who wants them sets VLLM_LOGGING_LEVEL.
        env = {"VLLM_LOGGING_LEVEL": os.environ.get("VLLM_LOGGING_LEVEL", "WARNING")}
        actor_class = ray.remote(GenerationWorker).options(**resources, runtime_env={"env_vars": env})
        log.info("starting %d generation worker(s) for %s (%s)", self.num_workers, spec.model, resources)
        self.actors = [actor_class.remote(spec) for _ in range(self.num_workers)]
        try:
            ray.get([actor.ready.remote() for actor in self.actors])
        except ray.exceptions.RayActorError as err:
            self.shutdown()
            cause = str(err.__cause__ or err).strip().splitlines()[-1]
            raise TroopError(f"model.path={spec.model}: the vLLM engine failed to start ({cause}; the worker's log above has the root cause)") from None

    def run(self, tasks: Iterable[UnitTask], on_done: Callable[[UnitStats], None]) -> list[UnitStats]:
        """Generate every task's unit; `on_done` sees each unit's stats as it lands."""
        import ray

        pending = deque(tasks)
        in_flight: dict = {}  # object ref -> actor that runs it
        finished = []

        def submit(actor) -> None:
            in_flight[actor.run_unit.remote(pending.popleft())] = actor

        for actor in self.actors:
            for _ in range(UNITS_IN_FLIGHT):
                if pending:
                    submit(actor)
        while in_flight:
            [ref], _ = ray.wait(list(in_flight), num_returns=1)
            actor = in_flight.pop(ref)
            stats = ray.get(ref)
            finished.append(stats)
            on_done(stats)
            if pending:
                submit(actor)
        return finished
