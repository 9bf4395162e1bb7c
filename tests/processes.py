"""Starting `troop` as a user does, in a session of its own, and waiting for every process of
that session to exit after a SIGKILL (the durable-run tests)."""

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest


def session_processes(sid: int) -> list[psutil.Process]:
    """Live processes of a session (the killed driver's: it was started in a new one)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == sid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (ProcessLookupError, psutil.Error):
            pass
    return found


def wait_until_session_ends(sid: int, timeout: float = 60.0) -> None:
    """Every process of the session exits by itself, or the test fails naming those left."""
    deadline = time.monotonic() + timeout
    while (left := session_processes(sid)) and time.monotonic() < deadline:
        time.sleep(0.5)
    if left:
        names = [(p.pid, " ".join(p.cmdline())[:80]) for p in left]
        for proc in left:  # only what this test started
            proc.kill()
        pytest.fail(f"processes of the killed run still alive {timeout:.0f} s after the kill: {names}")


def start_troop(args: list[str], env: dict, cwd, log_path) -> subprocess.Popen:
    with open(log_path, "w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "jobs", *args], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # a process group and session of its own: killable as a whole
        )


def kill_when(driver: subprocess.Popen, ready, log_path, what: str, timeout: float = 600.0) -> None:
    """SIGKILLs the driver's whole session as soon as `ready()` holds (the test fails if the
    driver exits first, or after `timeout` seconds), and waits until every process of it is gone."""
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if driver.poll() is not None:
                with open(log_path) as log:
                    pytest.fail(f"the driver exited before the {what}: {log.read()[-3000:]}")
            assert time.monotonic() < deadline, f"no {what} after {timeout:.0f} s"
            time.sleep(0.02)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    wait_until_session_ends(driver.pid)
