"""The one executor: unit processors on Ray actors, units streamed to them, failures retried.

A stage (generation, verification, and later scoring) is a plain class with `ready()` (its pid,
once it can work), `run_unit(task) -> stats` and `close()`; `Stage` says how many copies to
run, what each asks of Ray (`jobs.cluster.placement`) and how often a unit may be tried. The
executor places the copies, hands each actor its next unit as soon as one of its units
finishes (actors pull work at their own pace), and only unit ids and small stats travel
through the driver: a processor writes its unit file to the store itself.

Failures: a unit whose task raises is tried again; an actor that dies (its process killed, its
node lost, its engine crashed) is replaced, the unit it was running spends an attempt and the
units queued behind it go back to the front of the queue untouched. A unit is tried at most
1 + `max_unit_retries` times, then reported as failed while the others carry on. A unit file is
written whole or not at all, so nothing a dead attempt half-did survives.

Tasks come from a queue, so one stage can feed another while it runs (`troop run` queues each
sample unit for verification the moment it lands); `run` queues a fixed list.
"""

import logging
import queue
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

from jobs.cluster.placement import ActorPlacement
from jobs.errors import TroopError

log = logging.getLogger("troop")

# How often the dispatch loop looks at an open task queue while units are in flight: short
# enough that a landed sample unit starts verifying at once, long enough to stay off the CPU.
POLL_S = 0.05
# How long the executor waits for its placement groups: long enough for an autoscaler to add a node.
PLACEMENT_TIMEOUT_S = 600


@dataclass(frozen=True)
class Stage:
    """One kind of unit work and how to run it on actors."""

    name: str  # "generation", "verification": log lines and errors say it
    worker_class: type  # the unit processor
    worker_args: tuple  # its constructor's arguments
    placement: ActorPlacement  # how many actors, what each asks of Ray
    identity: Any = None  # what the actors hold (an EngineSpec): equal identities may share actors
    max_unit_retries: int = 2
    # Units queued on one actor at once: 2 lets a generation actor find its next unit waiting in
    # its mailbox while it writes the current one; 1 keeps short verification units spread out.
    units_in_flight: int = 1
    env_vars: dict = field(default_factory=dict)
    # How long `close()` may take before the actor is killed anyway: an engine frees its
    # processes and shared memory; a checker stops its sandbox and math helper.
    close_timeout_s: float = 10.0
    what_failed_to_start: str = "a worker"  # "model.path=X: the vLLM engine": the start-up error names it
    serves: str = ""  # what the actors hold, for the log ("for /models/x")


@dataclass
class ExecutorResult:
    finished: list = field(default_factory=list)  # stats of the units written
    failed: dict = field(default_factory=dict)  # unit id -> (status, reason) of its last attempt


def cause(err: Exception) -> str:
    """The last line of a Ray error: the exception that ended the task or the actor."""
    lines = str(err.__cause__ or err).strip().splitlines()
    return lines[-1] if lines else type(err).__name__


class UnitExecutor:
    """The actors of one stage; reusable across runs; a context manager that shuts them down."""

    def __init__(self, stage: Stage):
        import ray

        self.stage = stage
        self.num_workers = stage.placement.num_workers
        self._options = {**stage.placement.options}
        if stage.env_vars:
            self._options["runtime_env"] = {"env_vars": dict(stage.env_vars)}
        self._actor_class = ray.remote(stage.worker_class)
        self._groups: dict = {}  # actor -> the placement group it runs in (tensor parallelism on GPUs)
        self._announce()
        self.actors = [self._spawn(group) for group in self._reserve(self.num_workers)]
        self._ready = {actor: actor.ready.remote() for actor in self.actors}  # each resolves to its pid
        try:
            ray.get(list(self._ready.values()))
        except ray.exceptions.RayActorError as err:
            self.shutdown()
            raise TroopError(f"{stage.what_failed_to_start} failed to start ({cause(err)}; the worker's log above has the root cause)") from None

    # Placing actors.
    def _announce(self) -> None:
        placed = self.stage.placement
        if self.num_workers > placed.capacity:
            log.warning("%d %s worker(s) asked for, but the cluster's nodes hold %d now: the others wait for nodes with room to join",
                        self.num_workers, self.stage.name, placed.capacity)
        groups = f", each in a {placed.strategy} placement group {placed.bundles}" if placed.uses_placement_groups else ""
        log.info("starting %d %s worker(s)%s (%s%s)", self.num_workers, self.stage.name, self.stage.serves, placed.options, groups)

    def _reserve(self, count: int) -> list:
        """`count` placement groups, each ready, or `count` Nones where the actors need none."""
        import ray

        if not self.stage.placement.uses_placement_groups:
            return [None] * count
        groups = [self._new_group() for _ in range(count)]
        ready, _ = ray.wait([group.ready() for group in groups], num_returns=count, timeout=PLACEMENT_TIMEOUT_S)
        if len(ready) < count:
            for group in groups:
                ray.util.remove_placement_group(group)
            raise TroopError(
                f"{count - len(ready)} of {count} placement groups {self.stage.placement.bundles} on one node were not "
                f"placed within {PLACEMENT_TIMEOUT_S}s (other jobs hold the GPUs, or nodes are missing): lower "
                "cluster.num_workers or free the GPUs"
            )
        return groups

    def _new_group(self):
        import ray

        placed = self.stage.placement
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
        actor = self._actor_class.options(**options).remote(*self.stage.worker_args)
        if group is not None:
            self._groups[actor] = group
        return actor

    def _release(self, actor) -> None:
        """Removes the actor's placement group, which kills whatever still runs in it."""
        import ray

        group = self._groups.pop(actor, None)
        if group is not None:
            ray.util.remove_placement_group(group)

    def _replace(self, dead) -> None:
        """A new actor in the place of a dead one (it starts while units queue for it)."""
        import ray

        if dead not in self.actors:  # already replaced: a dead actor fails all its units
            return
        log.warning("a %s worker died; starting a replacement", self.stage.name)
        ray.kill(dead, no_restart=True)
        # A fresh group rather than the dead actor's: removing that one kills the vLLM workers
        # the dead engine left in it, so their GPU memory is free for the replacement. The new
        # actor waits in Ray's queue until its group is placed; the other actors carry on.
        self._release(dead)
        fresh = self._spawn(self._new_group() if self.stage.placement.uses_placement_groups else None)
        self.actors[self.actors.index(dead)] = fresh
        del self._ready[dead]
        self._ready[fresh] = fresh.ready.remote()

    def ask_one(self, method: str, *args):
        """`method(*args)` on the first actor, outside the unit queue (a check before a run)."""
        import ray

        return ray.get(getattr(self.actors[0], method).remote(*args))

    def worker_pids(self) -> list[int]:
        """The workers' process ids (waiting for a replacement to be up)."""
        import ray

        return ray.get([self._ready[actor] for actor in self.actors])

    def shutdown(self) -> None:
        """Lets each actor release what it holds, then kills it; may be called more than once."""
        import ray

        for actor in self.actors:
            try:
                ray.get(actor.close.remote(), timeout=self.stage.close_timeout_s)
            except Exception:  # noqa: BLE001 - a dead or stuck actor is killed all the same
                pass
            ray.kill(actor)
            self._release(actor)
        self.actors = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()

    # Running units.
    def run(self, tasks: Iterable, on_done: Callable, progress=None) -> ExecutorResult:
        """Every task's unit; `on_done` sees each unit's stats as it lands."""
        source: queue.Queue = queue.Queue()
        for task in tasks:
            source.put(task)
        source.put(None)
        return self.run_stream(source, on_done, progress)

    def run_stream(self, source: "queue.Queue[Optional[Any]]", on_done: Callable, progress=None,
                   on_failed: Callable | None = None) -> ExecutorResult:
        """Units from `source` until it yields None and every unit has settled; `progress` (if
        given) is told each unit id as it is `dispatched` and as it has `settled`; `on_failed`
        (if given) sees (unit id, (status, reason)) of a unit that failed its last attempt."""
        run = _Dispatch(self, on_done, progress, on_failed)
        while run.open or run.pending or run.in_flight:
            run.pull(source)
            run.fill()
            if run.in_flight:
                run.wait_one()
        return run.result


class _Dispatch:
    """The state of one `run_stream`: tasks waiting, units in flight, the result so far."""

    def __init__(self, executor: UnitExecutor, on_done: Callable, progress, on_failed: Callable | None = None):
        self.executor, self.on_done, self.progress, self.on_failed = executor, on_done, progress, on_failed
        self.pending: deque = deque()  # (task, attempts so far)
        self.in_flight: dict = {}  # object ref -> (actor, task, attempts), in dispatch order
        self.open = True
        self.result = ExecutorResult()

    def pull(self, source: queue.Queue) -> None:
        """Everything the source holds now; waits for a task only when there is nothing else to do."""
        while self.open:
            idle = not self.pending and not self.in_flight
            try:
                task = source.get() if idle else source.get_nowait()
            except queue.Empty:
                return
            if task is None:
                self.open = False
            else:
                self.pending.append((task, 0))

    def fill(self) -> None:
        busy = [actor for actor, _, _ in self.in_flight.values()]
        for actor in self.executor.actors:
            for _ in range(self.executor.stage.units_in_flight - busy.count(actor)):
                if not self.pending:
                    return
                task, attempts = self.pending.popleft()
                self.in_flight[actor.run_unit.remote(task)] = (actor, task, attempts)
                self._tell("dispatched", task)

    def wait_one(self) -> None:
        import ray

        ready, _ = ray.wait(list(self.in_flight), num_returns=1, timeout=POLL_S if self.open else None)
        if not ready:
            return
        ref = ready[0]
        actor, task, attempts = self.in_flight[ref]
        try:
            stats = ray.get(ref)
        except ray.exceptions.RayActorError as err:
            self._actor_died(actor, ("worker_died", cause(err)))
        except ray.exceptions.RayTaskError as err:
            del self.in_flight[ref]
            self._retry_or_fail(task, attempts, ("error", cause(err)))
            self._tell("settled", task)
        else:
            del self.in_flight[ref]
            self.result.finished.append(stats)
            self.on_done(stats)
            self._tell("settled", task)

    def _actor_died(self, actor, failure: tuple[str, str]) -> None:
        """All of a dead actor's units at once: the first dispatched was running (an actor runs
        its tasks in order) and spends an attempt; the ones waiting behind it go back to the
        front of the queue as they were, so a unit that kills workers takes no other unit down."""
        mine = [ref for ref, (owner, _, _) in self.in_flight.items() if owner == actor]
        self.executor._replace(actor)
        for position, ref in reversed(list(enumerate(mine))):
            _, task, attempts = self.in_flight.pop(ref)
            if position == 0:
                self._retry_or_fail(task, attempts, failure)
            else:
                self.pending.appendleft((task, attempts))
            self._tell("settled", task)

    def _retry_or_fail(self, task, attempts: int, failure: tuple[str, str]) -> None:
        stage = self.executor.stage
        if attempts < stage.max_unit_retries:
            log.warning("%s of unit %s: %s (%s); retrying (attempt %d of %d)",
                        stage.name, task.unit_id, *failure, attempts + 2, stage.max_unit_retries + 1)
            self.pending.append((task, attempts + 1))
        else:
            log.error("%s of unit %s failed %d times, last: %s (%s)", stage.name, task.unit_id, attempts + 1, *failure)
            self.result.failed[task.unit_id] = failure
            if self.on_failed is not None:
                self.on_failed(task.unit_id, failure)

    def _tell(self, event: str, task) -> None:
        if self.progress is not None:
            getattr(self.progress, event)(task.unit_id)
