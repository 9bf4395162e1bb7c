"""A watchdog process: when its owner (its parent) dies, however it dies, SIGKILL included, it
kills the processes it was given and their descendants, then exits.

For processes that the owner started and that watch nothing themselves: vLLM's EngineCore
(`workers.engine`), and the agents of a local Ray that a driver started (`jobs.cluster.session`).
It watches the owner *process* (a pidfd), so which of the owner's threads started them does
not matter (a parent-death signal is tied to the forking thread).
"""

import os
import select
import subprocess
import sys
from typing import Sequence


def watch(owner: int, pids: Sequence[int]) -> None:
    """The watchdog's body, run in its own process (`start_watchdog`): waits until `owner`, its
    parent, dies, then SIGKILLs the processes `pids` and all their descendants, and returns
    once they are gone. If the owner is already gone when it starts, it kills them at once."""
    import psutil

    family = []
    for pid in pids:
        try:  # Process objects remember the start time: a reused pid is never signalled
            family.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    try:
        pidfd: int | None = os.pidfd_open(owner)
    except ProcessLookupError:
        pidfd = None
    if pidfd is not None and os.getppid() == owner:  # still our parent: the pidfd is its
        select.select([pidfd], [], [])  # readable once the owner has exited
    for process in list(family):  # before the kill: a killed process's children move to init
        try:
            family.extend(process.children(recursive=True))
        except psutil.NoSuchProcess:
            pass
    for process in family:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=10)


def start_watchdog(pids: Sequence[int]) -> subprocess.Popen:
    """A watchdog process (`watch`) for `pids`, children of this process. Stop it (kill and
    wait) before stopping them the orderly way."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # where `workers` is
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    code = f"from workers.watchdog import watch; watch({os.getpid()}, {list(pids)!r})"
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdin=subprocess.DEVNULL)
