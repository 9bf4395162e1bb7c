"""Generation actors on Ray: placement and dispatch of units, nothing else.

The driver keeps the queue of units and hands each actor its next unit as soon as one of its
units finishes, so the actors pull work at their own pace. Each actor holds `UNITS_IN_FLIGHT`
units at once so that its next unit is already waiting in its mailbox while it writes the
current one. Only unit ids and `UnitStats` travel through the driver.

Where the actors go and what they ask of Ray comes from `jobs.cluster.placement`, given the live nodes
as `ray.nodes()` describes them when the pool starts; with tensor parallelism on GPUs each actor
holds a placement group of its own, removed with the actor.

An actor that dies (its process killed, its node lost, its engine crashed) is replaced by a new
one, and its units go back to the queue: a unit file is written whole or not at all, so nothing
it half-did survives. A unit is tried at most 1 + `max_unit_retries` times; after that it is
reported as failed and the others carry on.
"""

import logging
import os
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable

from jobs.stages.generation import GenerationWorker, UnitStats, UnitTask
from jobs.errors import TroopError
from jobs.cluster.placement import Node, PlacementSettings, alive_nodes, generation_placement
from jobs.cluster.reach import check_root_reachable
from workers.engine import EngineSpec

log = logging.getLogger("troop")

UNITS_IN_FLIGHT = 2
MAX_UNIT_RETRIES = 2
# How long the pool waits for its placement groups: long enough for an autoscaler to add a node.
PLACEMENT_TIMEOUT_S = 600


@dataclass
class PoolResult:
    finished: list = field(default_factory=list)  # UnitStats of the units written
    failed: dict = field(default_factory=dict)  # unit id -> (status, reason) of its last attempt


def init_ray(address: str | None, root: str | None = None, shared_filesystem: bool = False) -> None:
    """Connect to `address` (an existing cluster), or start a local Ray; once per process.
    With `root`: refuse a local root that the cluster's other nodes cannot reach (jobs.cluster.reach)."""
    import ray

    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=True, logging_level=logging.WARNING)
        except ConnectionError as err:
            raise TroopError(f"cluster.address={address} cannot be reached ({err}): is the Ray head running?") from None
    if root is not None:
        check_root_reachable(root, len(cluster_nodes()), shared_filesystem)


def cluster_nodes() -> list[Node]:
    """The live nodes of the cluster and their total resources and labels."""
    import ray

    return alive_nodes(ray.nodes())


def free_nodes() -> list[Node]:
    """The live nodes with the resources free on each now (what actors and placement groups
    have not taken), and their labels."""
    import ray
    from ray._private.state import available_resources_per_node  # a DeveloperAPI: Ray's only per-node view

    free = available_resources_per_node()
    return [Node(dict(free.get(n["NodeID"], {})), dict(n.get("Labels") or {})) for n in ray.nodes() if n.get("Alive")]


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
    """`num_workers` actors (None: as many as the cluster holds, see `jobs.cluster.placement`), each
    owning one engine built from `spec`; `placement` adds custom resources and node labels.
    Reusable across runs."""

    def __init__(self, spec: EngineSpec, num_workers: int | None = None, cpus_per_worker: float = 1.0,
                 max_unit_retries: int = MAX_UNIT_RETRIES, worker_class=GenerationWorker,
                 placement: PlacementSettings = PlacementSettings()):
        import ray

        self.spec = spec
        self.max_unit_retries = max_unit_retries
        self.actor_placement = generation_placement(cluster_nodes(), spec.tensor_parallel_size, cpus_per_worker, num_workers, placement)
        self.num_workers = self.actor_placement.num_workers
        # The engine is told it owns a placement group, so it runs its ranks in the group's GPUs.
        self._actor_spec = replace(spec, in_placement_group=self.actor_placement.uses_placement_groups)
        # vLLM logs every engine step at INFO; a user who wants them sets VLLM_LOGGING_LEVEL.
        env = {"VLLM_LOGGING_LEVEL": os.environ.get("VLLM_LOGGING_LEVEL", "WARNING")}
        self._actor_class = ray.remote(worker_class)
        self._options = {**self.actor_placement.options, "runtime_env": {"env_vars": env}}
        self._groups: dict = {}  # actor -> the placement group it runs in (tensor parallelism on GPUs)
        self._announce()
        self.actors = [self._spawn(group) for group in self._reserve(self.num_workers)]
        self._ready = {actor: actor.ready.remote() for actor in self.actors}  # each resolves to its pid
        try:
            ray.get(list(self._ready.values()))
        except ray.exceptions.RayActorError as err:
            self.shutdown()
            cause = str(err.__cause__ or err).strip().splitlines()[-1]
            raise TroopError(f"model.path={spec.model}: the vLLM engine failed to start ({cause}; the worker's log above has the root cause)") from None

    def _announce(self) -> None:
        placed = self.actor_placement
        if self.num_workers > placed.capacity:
            log.warning("cluster.num_workers=%d, but the cluster's nodes hold %d generation worker(s) now: "
                        "the others wait for nodes with room to join", self.num_workers, placed.capacity)
        groups = f", each in a {placed.strategy} placement group {placed.bundles}" if placed.uses_placement_groups else ""
        log.info("starting %d generation worker(s) for %s (%s%s)", self.num_workers, self.spec.model, placed.options, groups)

    def _reserve(self, count: int) -> list:
        """`count` placement groups, each ready, or `count` Nones where the actors need none."""
        import ray

        if not self.actor_placement.uses_placement_groups:
            return [None] * count
        groups = [self._new_group() for _ in range(count)]
        ready, _ = ray.wait([group.ready() for group in groups], num_returns=count, timeout=PLACEMENT_TIMEOUT_S)
        if len(ready) < count:
            for group in groups:
                ray.util.remove_placement_group(group)
            raise TroopError(
                f"{count - len(ready)} of {count} placement groups of model.tensor_parallel_size={self.spec.tensor_parallel_size} "
                f"GPUs on one node were not placed within {PLACEMENT_TIMEOUT_S}s (other jobs hold the GPUs, or nodes are "
                "missing): lower cluster.num_workers or free the GPUs"
            )
        return groups

    def _new_group(self):
        import ray

        placed = self.actor_placement
        # Label selectors only where the config sets some: Rays before label scheduling lack the argument.
        labels = {"bundle_label_selector": placed.bundle_label_selector} if placed.bundle_label_selector else {}
        return ray.util.placement_group(placed.bundles, strategy=placed.strategy, **labels)

    def _spawn(self, group):
        """A new actor; in bundle 0 of `group` if there is one. Child tasks and actors it starts
        go in the group too (Ray Data LLM's vLLM stage does the same)."""
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        options = dict(self._options)
        if group is not None:
            options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                placement_group=group, placement_group_bundle_index=0, placement_group_capture_child_tasks=True)
        actor = self._actor_class.options(**options).remote(self._actor_spec)
        if group is not None:
            self._groups[actor] = group
        return actor

    def _release(self, actor) -> None:
        """Removes the actor's placement group, which kills whatever still runs in it."""
        import ray

        group = self._groups.pop(actor, None)
        if group is not None:
            ray.util.remove_placement_group(group)

    def shutdown(self) -> None:
        gone = list(self.actors)
        super().shutdown()
        for actor in gone:
            self._release(actor)

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
        # A fresh group rather than the dead actor's: removing that one kills the vLLM workers
        # the dead engine left in it, so their GPU memory is free for the replacement. The new
        # actor waits in Ray's queue until its group is placed; the other actors carry on.
        self._release(dead)
        fresh = self._spawn(self._new_group() if self.actor_placement.uses_placement_groups else None)
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
