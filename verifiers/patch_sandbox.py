"""One candidate patch in its own copy-on-write copy of a prepared workspace.

With bubblewrap (the default), the workspace is the lower layer of an overlay whose writes go
to the sandbox's own tmpfs (`--overlay-src WS --tmp-overlay /tmp/ws`): a candidate starts from
the pristine workspace in microseconds, and nothing it or its tests do reaches the workspace
another candidate sees, or the host. Everything else is the code sandbox's
(`verifiers.sandbox`): read-only system, private /tmp, no network (loopback down), a PID
namespace, an empty environment, dies with the worker; the test command runs under rlimits in
its own process group, killed at the wall-clock limit. The pristine workspace is also bound
read-only at /tmp/base, for resetting the test patch's files.

Where user namespaces are refused (`rlimits` mode), the workspace is copied per candidate
instead (slow, and without namespaces: the tests can reach what the worker's user can).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from verifiers.sandbox import SANDBOX_ENV, Limits, bwrap_command, bwrap_path, in_lasting_thread

RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "patch_runner.py")
WORKSPACE, BASE, SCRATCH = "/tmp/ws", "/tmp/base", "/tmp/scratch"
# Seconds past the tests' own limit for applying the patches and starting up.
GRACE_S = 60.0


@dataclass(frozen=True)
class PatchRun:
    stage: str  # applied | patch_failed | test_patch_failed | sandbox_failed
    returncode: int | None = None
    timed_out: bool = False
    output: str = ""  # the tests' output (its tail)
    apply_log: str = ""
    seconds: float = 0.0


def python_paths(python: str) -> list[str]:
    """What an interpreter needs to see (its folder and installation); under /tmp they are
    bound back over the sandbox's private /tmp."""
    real = os.path.realpath(python)
    paths = {os.path.dirname(os.path.abspath(python)), os.path.dirname(real), os.path.dirname(os.path.dirname(real))}
    return sorted(p for p in paths if p == "/tmp" or p.startswith("/tmp/"))


def run_patch(workspace: str, patch: str, test_patch: str | None, test_files: list[str], test_cmd: str,
              python: str, limits: Limits, mode: str) -> PatchRun:
    """Applies `patch` (then `test_patch`) to a private copy of `workspace` and runs `test_cmd`."""
    path = f"{os.path.dirname(os.path.abspath(python))}:{SANDBOX_ENV['PATH']}"
    request = {
        "patch": patch, "test_patch": test_patch, "test_files": test_files, "test_cmd": test_cmd,
        "timeout_s": limits.timeout_s, "cpu_s": limits.cpu_s, "memory_mb": limits.memory_mb,
        "file_size_mb": limits.file_size_mb, "max_output": limits.max_output_bytes,
        "env": {**SANDBOX_ENV, "PATH": path},
    }
    if mode == "bwrap":
        return _in_bwrap(workspace, request, python, limits)
    return _in_copy(workspace, request, limits)


def _in_bwrap(workspace: str, request: dict, python: str, limits: Limits) -> PatchRun:
    binds = [arg for p in python_paths(python) for arg in ("--ro-bind", p, p)]
    command = [*bwrap_command(bwrap_path()), *binds,
               "--overlay-src", workspace, "--tmp-overlay", WORKSPACE, "--ro-bind", workspace, BASE,
               "--dir", SCRATCH, "--chdir", WORKSPACE, sys.executable, "-I", "-B", RUNNER]
    return _launch(command, {**request, "base": BASE, "scratch": SCRATCH}, limits, cwd="/tmp")


def _in_copy(workspace: str, request: dict, limits: Limits) -> PatchRun:
    scratch = tempfile.mkdtemp(prefix="troop-patch-")
    try:
        copy = os.path.join(scratch, "ws")
        shutil.copytree(workspace, copy, symlinks=True)
        os.makedirs(os.path.join(scratch, "scratch"))
        request = {**request, "base": workspace, "scratch": os.path.join(scratch, "scratch")}
        return _launch([sys.executable, "-I", "-B", RUNNER], request, limits, cwd=copy)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _launch(command: list[str], request: dict, limits: Limits, cwd: str) -> PatchRun:
    """Runs the runner with `request` on stdin and its result on a pipe of its own (the fd
    number travels in the request)."""
    began = time.monotonic()
    read_end, write_end = os.pipe()
    # Started from a lasting thread: the parent-death signal follows the thread that forks.
    proc = in_lasting_thread(
        subprocess.Popen, command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env=dict(SANDBOX_ENV), cwd=cwd, start_new_session=True, pass_fds=(write_end,),
    )
    os.close(write_end)
    try:
        request = {**request, "result_fd": write_end}
        _, stderr = proc.communicate(json.dumps(request).encode(), timeout=limits.timeout_s + GRACE_S)
    except subprocess.TimeoutExpired:
        _kill(proc)
        stderr = b""
    with os.fdopen(read_end, "rb") as result:
        data = result.read()
    if not data:
        reason = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no result"]
        return PatchRun("sandbox_failed", output=reason[0][:300], seconds=time.monotonic() - began)
    fields = {k: v for k, v in json.loads(data).items() if k in PatchRun.__dataclass_fields__ and k != "seconds"}
    return PatchRun(**fields, seconds=time.monotonic() - began)


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
