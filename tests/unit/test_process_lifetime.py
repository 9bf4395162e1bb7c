"""Children die with their parent, even a SIGKILLed one: `verifiers.sandbox.die_with_parent`
(PR_SET_PDEATHSIG), `in_lasting_thread` (the signal is tied to the forking thread), the
rlimits-mode zygote, and `workers.engine`'s watchdog. No Ray, no vLLM: each test runs a small
intermediate Python process, SIGKILLs it, and watches what it started."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's"),
    pytest.mark.slow,  # each test starts process trees and SIGKILLs them
]

# A child that optionally sets its death signal, says so, and sleeps.
CHILD = "import sys, time\nif sys.argv[1] == 'die':\n    from verifiers.sandbox import die_with_parent\n    die_with_parent(int(sys.argv[2]))\nprint('ready', flush=True)\ntime.sleep(600)\n"


def intermediate(body: str) -> tuple[subprocess.Popen, list[int]]:
    """A parent process running `body`, which starts processes and prints their pids, one
    line, then sleeps: (the parent, those pids)."""
    prelude = f"import os, subprocess, sys, threading, time\nCHILD = {CHILD!r}\n"
    code = prelude + textwrap.dedent(body) + "\nsys.stdout.flush()\ntime.sleep(600)\n"
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    line = parent.stdout.readline()
    assert line, "the intermediate process failed"
    return parent, [int(p) for p in line.split()]


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def gone_within(pids: list[int], seconds: float) -> list[int]:
    """Those of `pids` still alive after `seconds` (polling)."""
    deadline = time.monotonic() + seconds
    while (living := [p for p in pids if alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return living


def kill(parent: subprocess.Popen) -> None:
    parent.kill()
    parent.wait()


def cleanup(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


START_CHILD = """
def start(mode):
    child = subprocess.Popen([sys.executable, "-c", CHILD, mode, str(os.getpid())], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "ready\\n"
    return child
"""


def test_a_child_that_sets_the_death_signal_dies_with_its_killed_parent():
    parent, pids = intermediate(START_CHILD + "print(start('die').pid, start('stay').pid)")
    dying, staying = pids
    try:
        kill(parent)
        assert gone_within([dying], 10) == []
        assert alive(staying)  # without it the child lives on: the test above means something
    finally:
        cleanup(pids)


def test_a_child_forked_by_a_thread_dies_with_the_thread_unless_forked_in_a_lasting_thread():
    body = START_CHILD + """
from verifiers.sandbox import in_lasting_thread
children = {}
def worker():
    children["plain"] = start("die")
    children["lasting"] = in_lasting_thread(start, "die")
thread = threading.Thread(target=worker)
thread.start()
thread.join()
time.sleep(0.5)
print(children["plain"].pid, children["lasting"].pid)
"""
    parent, pids = intermediate(body)
    plain, lasting = pids
    try:
        assert not alive(plain)  # the kernel's rule: the forking thread exited
        assert alive(lasting)
        kill(parent)
        assert gone_within([lasting], 10) == []
    finally:
        cleanup(pids)


def test_a_child_whose_parent_is_already_gone_kills_itself():
    child = subprocess.run(
        [sys.executable, "-c", "import os\nfrom verifiers.sandbox import die_with_parent\ndie_with_parent(os.getppid() + 1)"],
        cwd=REPO, timeout=60, check=False,
    )
    assert child.returncode == -signal.SIGKILL


def test_the_rlimits_zygote_and_its_program_die_with_the_pool_worker():
    body = """
import psutil
from verifiers.sandbox import Limits, Sandbox
sandbox = Sandbox(Limits(timeout_s=120), mode="rlimits")
threading.Thread(target=sandbox.run, args=("import time\\ntime.sleep(600)",), daemon=True).start()
deadline = time.monotonic() + 30
while time.monotonic() < deadline and not (sandbox._proc and psutil.Process(sandbox._proc.pid).children()):
    time.sleep(0.05)
zygote = psutil.Process(sandbox._proc.pid)
print(zygote.pid, *[c.pid for c in zygote.children()])
"""
    parent, pids = intermediate(body)
    try:
        assert len(pids) == 2  # the zygote and the program it forked
        kill(parent)
        assert gone_within(pids, 10) == []
    finally:
        cleanup(pids)


def test_the_engine_watchdog_stops_the_engine_processes_when_their_owner_dies():
    # A stand-in engine process with a child of its own (a worker), as vLLM's EngineCore has.
    # Multiprocessing's resource tracker is left to exit by itself (it unlinks shared memory).
    body = """
from multiprocessing import resource_tracker
from workers.engine import start_watchdog
resource_tracker.ensure_running()
core = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time\\nw = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\\nprint(w.pid, flush=True)\\ntime.sleep(600)"], stdout=subprocess.PIPE, text=True)
worker = int(core.stdout.readline())
watchdog = start_watchdog([core.pid, resource_tracker._resource_tracker._pid])
time.sleep(1)  # the watchdog is up and waiting
print(core.pid, worker, watchdog.pid, resource_tracker._resource_tracker._pid)
"""
    parent, pids = intermediate(body)
    tracker = pids.pop()
    try:
        assert all(alive(p) for p in pids)
        assert str(tracker) not in " ".join(psutil.Process(pids[2]).cmdline())
        began = time.monotonic()
        kill(parent)
        assert gone_within(pids, 20) == []
        assert time.monotonic() - began < 5
        assert gone_within([tracker], 10) == []  # its pipe closed with the last process holding it
    finally:
        cleanup(pids + [tracker])
