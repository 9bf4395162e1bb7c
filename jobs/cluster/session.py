"""The driver's Ray session: connecting (or starting a local Ray) and reading the live nodes."""

import logging
from typing import Callable

from jobs.cluster.placement import Node, alive_nodes
from jobs.cluster.reach import check_root_reachable
from jobs.errors import TroopError
from workers.watchdog import start_watchdog

log = logging.getLogger(__name__)


_connected_here = False  # this process's init_ray called ray.init (not a test's or a caller's session)
_watchdog = None  # kills the local Ray this process started if this process dies first (`_watch_local_ray`)


def init_ray(address: str | None, root: str | None = None, shared_filesystem: bool = False) -> None:
    """Connect to `address` (an existing cluster), or start a local Ray; once per process.
    With `root`: refuse a local root that the cluster's other nodes cannot reach (jobs.cluster.reach)."""
    import ray

    global _connected_here
    if not ray.is_initialized():
        before = _child_processes()
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=True, logging_level=logging.WARNING)
        except ConnectionError as err:
            raise TroopError(f"cluster.address={address} cannot be reached ({err}): is the Ray head running?") from None
        _connected_here = True
        _watch_local_ray([pid for pid in _child_processes() if pid not in before])
    if root is not None:
        check_driver_reach(root, shared_filesystem)


def end_ray() -> None:
    """Disconnects the session `init_ray` opened, stopping the local Ray it started, if any
    (a cluster's head is left running). Ray's exit hook would do the same after a half-second
    pause for log lines; a command that is done with Ray ends that much sooner."""
    global _connected_here, _watchdog
    if _connected_here:
        import ray

        if _watchdog is not None:
            _watchdog.kill()
            _watchdog.wait()
            _watchdog = None
        _stop_local_monitor()
        ray.shutdown()
    _connected_here = False


def _child_processes() -> set[int]:
    import psutil

    return {child.pid for child in psutil.Process().children(recursive=True)}


def _watch_local_ray(started: list[int]) -> None:
    """A watchdog (`workers.watchdog`) for the processes of the local Ray that `ray.init` just
    started, if it started one. Ray's own fate sharing takes the GCS, the raylet and the
    workers down with a SIGKILLed driver, but not the agents the raylet starts (DashboardAgent,
    RuntimeEnvAgent): they lived on under init."""
    global _watchdog
    if started:
        _watchdog = start_watchdog(started)


def _stop_local_monitor() -> None:
    """Kills the autoscaler monitor of the local Ray this process started. `ray.shutdown()`
    stops the GCS first and then sends the monitor SIGTERM, whose handler reports to the GCS
    that is gone, until Ray kills it a second later: a second of every command's end. A local
    Ray has nothing to autoscale; SIGKILL skips the handler (which would also tell the driver
    that the autoscaler failed). Ray keeps its processes in `ray._private` (no public handle):
    anything missing there leaves shutdown as it is."""
    try:
        from ray._private import ray_constants, worker

        node = worker._global_node
        monitors = node.all_processes.get(ray_constants.PROCESS_TYPE_MONITOR, []) if node.is_head() else []
        for info in monitors:
            info.process.kill()
            info.process.wait(5)
    except Exception:  # noqa: BLE001 - another Ray's internals: shutdown does it the slow way
        log.debug("could not stop the local Ray's autoscaler monitor first", exc_info=True)


def check_driver_reach(root: str, shared_filesystem: bool, count_nodes: Callable[[], int] | None = None) -> None:
    """`root` checked against the nodes that joined the cluster (`count_nodes`: how many are alive)."""
    alive = count_nodes() if count_nodes is not None else len(cluster_nodes())
    check_root_reachable(root, alive, shared_filesystem)


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
