"""Helper processes that run one function of this package in a fresh interpreter.

As multiprocessing's spawn (a fresh interpreter, the parent's sys.path, the function and its
arguments pickled over a pipe), minus spawn's import of the parent's main module: in a Ray
worker that is Ray's default_worker.py, so every helper would import all of Ray first (about
0.5 s of CPU, taken from the helpers and workers sharing the node's cores). Not fork: a Ray
worker runs threads, and forking one can deadlock.
"""

import subprocess
import sys
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from typing import Callable, Optional

# Run by `python -c`: the connection's fd is argv[1] (argv[2] names the target, for `ps`); the
# parent sends sys.path, then (target, args), which unpickling imports by name.
BOOTSTRAP = """import sys
from multiprocessing.connection import Connection
conn = Connection(int(sys.argv[1]))
sys.path[:] = conn.recv()
target, args = conn.recv()
target(conn, *args)
"""


class Helper:
    """A started helper: the part of multiprocessing.Process its callers use."""

    def __init__(self, popen: subprocess.Popen):
        self._popen = popen
        self.pid = popen.pid

    def is_alive(self) -> bool:
        return self._popen.poll() is None

    def kill(self) -> None:
        self._popen.kill()

    def join(self, timeout: Optional[float] = None) -> None:
        try:
            self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    @property
    def exitcode(self) -> Optional[int]:
        """None while it runs; -N if signal N ended it, as multiprocessing reports."""
        return self._popen.poll()


def start_helper(target: Callable, *args) -> tuple[Helper, Connection]:
    """`target(connection, *args)` in a new process, and this side's end of the connection.
    `target` must be importable by name (a module-level function)."""
    parent_end, child_end = Pipe()
    try:
        name = f"{target.__module__}.{target.__qualname__}"
        popen = subprocess.Popen([sys.executable, "-c", BOOTSTRAP, str(child_end.fileno()), name],
                                 pass_fds=(child_end.fileno(),), stdin=subprocess.DEVNULL)
    finally:
        child_end.close()
    helper = Helper(popen)
    try:
        parent_end.send(list(sys.path))
        parent_end.send((target, args))
    except OSError:
        pass  # it died at once: the caller finds it dead
    return helper, parent_end
