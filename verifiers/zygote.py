"""The warm interpreter inside the sandbox: forks one limited child per program it is sent.

Run as a script (`python -I zygote.py [--sandboxed]`), never imported by the pool: it must
start with nothing but the standard library loaded, so that what a forked child inherits is an
almost empty interpreter. Requests and replies are length-prefixed JSON frames on stdin and
stdout (see `verifiers.sandbox`).

Per request the zygote: writes the program's stdin to a fresh working directory, forks; the
child starts a new session (its own process group), applies the rlimits, points fds 0/1/2 at
the stdin file and two pipes, runs the program in a fresh namespace, and reports how it ended
on a private result pipe (so closing or flooding stdout cannot fake a pass). The zygote reads
the pipes up to the output cap, kills the process group at the wall-clock limit or when the
output cap is exceeded, then (inside the sandbox, where its PID namespace holds nothing else)
kills every leftover process and wipes /tmp so the next child sees nothing of this one.

Nothing outlives the pool worker: each child gets SIGKILL from the kernel when the zygote dies
(PR_SET_PDEATHSIG, set in the child right after the fork, from the zygote's only thread), and so
does the zygote when its parent dies: with `--parent PID` (no bwrap: the pool worker is its
parent) it sets that itself; inside bwrap, `--die-with-parent` and the PID namespace see to it.
"""

import ctypes
import gc
import json
import os
import resource
import selectors
import shutil
import signal
import struct
import sys
import tempfile
import time

HEADER = struct.Struct("!I")
SANDBOXED = "--sandboxed" in sys.argv
# Read-only bind mounts inside /tmp (the interpreter, when it lives there): never wiped.
KEEP = {os.path.normpath(sys.argv[i + 1]) for i, arg in enumerate(sys.argv[:-1]) if arg == "--keep"}
# The pool worker's pid, when it is our parent (no bwrap between).
PARENT = next((int(sys.argv[i + 1]) for i, arg in enumerate(sys.argv[:-1]) if arg == "--parent"), None)
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
LIBC = ctypes.CDLL(None, use_errno=True)
# Standard modules that model-written programs and their tests import all the time (HumanEval's
# prompts start with `from typing import List`): imported once here, every forked child finds
# them loaded instead of paying milliseconds each. A child's changes to them die with it.
PRELOAD = (
    "typing", "math", "re", "collections", "itertools", "functools", "heapq", "bisect", "string",
    "hashlib", "random", "statistics", "fractions", "decimal", "json", "copy", "operator", "datetime",
)


def read_frame(stream):
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    return json.loads(stream.read(size))


def write_frame(stream, message) -> None:
    data = json.dumps(message).encode()
    stream.write(HEADER.pack(len(data)) + data)
    stream.flush()


def die_with_parent(parent_pid: int) -> None:
    """SIGKILL from the kernel when our parent dies (the same as `verifiers.sandbox`'s, which a
    script run with `python -I` cannot import); at once if it died before this call."""
    LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGKILL)


def set_limits(req) -> None:
    cpu = int(req["cpu_s"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    memory = int(req["memory_mb"]) << 20
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    file_size = int(req["file_size_mb"]) << 20
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
    resource.setrlimit(resource.RLIMIT_NPROC, (req["processes"], req["processes"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def child(req, code, stdin_path, out_w, err_w, result_w, zygote: int) -> None:
    """Never returns: runs the program and leaves through os._exit."""
    try:
        die_with_parent(zygote)
        os.setsid()
        fd = os.open(stdin_path or os.devnull, os.O_RDONLY)
        os.dup2(fd, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.closerange(3, result_w)
        os.closerange(result_w + 1, 1 << 16)
        set_limits(req)
        sys.stdin = open(0, "r", closefd=False)
        sys.stdout = open(1, "w", closefd=False)
        sys.stderr = open(2, "w", closefd=False)
    except BaseException as err:  # noqa: BLE001 - reported, never raised
        os.write(result_w, f"setup_error {err!r}".encode()[:500])
        os._exit(3)

    def report(message: str) -> None:
        try:
            os.write(result_w, message.encode()[:2000])
        except OSError:
            pass

    status = 1
    try:
        status = run_program(req, code, report)
    finally:  # whatever the program raised or broke, the child never returns into the zygote's loop
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:  # noqa: BLE001 - the program may have closed its stdout
                pass
        os._exit(status)


def run_program(req, code, report) -> int:
    """Runs the program and reports how it ended; returns the exit status."""
    try:
        exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
        report("ok")
        return 0
    except SystemExit as err:
        if err.code in (None, 0) and req["exit_ok"]:
            report("ok")
            return 0
        report(f"exit {err.code!r}")
        return err.code if isinstance(err.code, int) and 0 < err.code < 256 else 1
    except MemoryError:
        report("memory MemoryError")
    except RecursionError:
        report("error RecursionError: maximum recursion depth exceeded")
    except BaseException as err:  # noqa: BLE001 - the program's failure is the verdict
        report(f"exception {describe(err)}"[:2000])
        print_traceback(err)
    return 1


def describe(err: BaseException) -> str:
    try:
        return f"{type(err).__name__}: {err}"
    except BaseException:  # noqa: BLE001 - a program's exception may break its own __str__
        return type(err).__name__


def print_traceback(err: BaseException) -> None:
    """File and line of each frame, then the exception. Not `traceback.print_exc`: it reads
    and re-parses source lines, which in a forked child costs ~6 ms of copy-on-write faults."""
    lines = ["Traceback (most recent call last):"]
    tb = err.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        lines.append(f'  File "{code.co_filename}", line {tb.tb_lineno}, in {code.co_name}')
        tb = tb.tb_next
    lines.append(describe(err))
    try:
        sys.stderr.write("\n".join(lines[-40:]) + "\n")
    except BaseException:  # noqa: BLE001 - the program may have closed its stderr
        pass


def collect(pipes: dict, pid: int, deadline: float, max_output: int) -> tuple[dict, bool, bool]:
    """Reads the child's pipes until it exits, its output passes the cap, or the deadline;
    returns (bytes by name, timed out, over the cap). The child's exit is watched through a
    pidfd, so it is seen at once; what it wrote before exiting is drained, but a pipe held
    open by a process it left behind is not waited for (the sweep kills that process)."""
    chunks = {name: bytearray() for name in pipes}
    selector = selectors.DefaultSelector()
    for name, fd in pipes.items():
        selector.register(fd, selectors.EVENT_READ, name)
    pidfd = os.pidfd_open(pid)
    selector.register(pidfd, selectors.EVENT_READ, None)
    timed_out = over_cap = exited = False
    while not (exited or over_cap):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        for key, _ in selector.select(remaining):
            if key.data is None:
                exited = True
            elif not read_into(chunks[key.data], key.fd, selector):
                continue
            over_cap = over_cap or any(len(c) > max_output for c in chunks.values())
    while exited and not over_cap:  # what the child wrote before it exited
        ready = [key for key, _ in selector.select(0) if key.data is not None]
        if not ready:
            break
        for key in ready:
            read_into(chunks[key.data], key.fd, selector)
        over_cap = any(len(c) > max_output for c in chunks.values())
    selector.close()
    os.close(pidfd)
    if timed_out or over_cap:
        kill_group(pid)
    return chunks, timed_out, over_cap


def read_into(chunk: bytearray, fd: int, selector) -> bool:
    """Appends what `fd` has; False (and stops watching it) at end of file."""
    data = os.read(fd, 1 << 16)
    if not data:
        selector.unregister(fd)
        return False
    chunk += data
    return True


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def wait_child(pid: int) -> tuple[int | None, int | None]:
    """(exit code, signal) of the child, which has exited or been sent SIGKILL."""
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status)
    return os.WEXITSTATUS(status), None


def sweep(workdir: str) -> None:
    """Leaves nothing of the last program behind: its processes (those that left its process
    group included) and its files."""
    if SANDBOXED:  # our PID namespace holds only bwrap's init (1), us, and the program's heirs
        kill_strays(time.monotonic() + 1.0)
        for folder in ("/tmp", "/dev/shm"):
            wipe(folder)
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def wipe(folder: str) -> None:
    """Removes everything under `folder` but the kept bind mounts and the folders that lead
    to them (whose other entries are wiped)."""
    for name in os.listdir(folder) if os.path.isdir(folder) else ():
        path = os.path.join(folder, name)
        if path in KEEP:
            continue
        if any(kept.startswith(path + "/") for kept in KEEP):
            wipe(path)
        elif os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            _unlink(path)


def kill_strays(deadline: float) -> None:
    """SIGKILL every process of the namespace but init and us, until none is left (bwrap's
    init reaps them) or the deadline passes."""
    me = os.getpid()
    while True:
        strays = [int(e) for e in os.listdir("/proc") if e.isdigit() and int(e) not in (1, me)]
        if not strays or time.monotonic() > deadline:
            return
        for pid in strays:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.002)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def compile_program(source: str):
    """The program's code object, or the reason it has none. Compiled here, before the fork:
    the compiler touches many memory pages, and in a forked child each first touch copies a
    page (2-3 ms for a one-line program); here it is a fraction of that. CPython bounds what
    compiling can cost (constant folding limits, a nesting limit), and it runs no code."""
    try:
        return compile(source, "<sample>", "exec"), ""
    except (SyntaxError, ValueError, MemoryError, RecursionError) as err:
        return None, f"{type(err).__name__}: {err}"[:2000]


def syntax_error_reply(began: float, reason: str) -> dict:
    return {
        "exit_code": 1, "signal": None, "timed_out": False, "output_limit": False,
        "result": f"syntax_error {reason}", "stdout": "", "stderr": "", "seconds": time.monotonic() - began,
    }


def run(req) -> dict:
    began = time.monotonic()
    code, reason = compile_program(req["program"])
    if code is None:
        return syntax_error_reply(began, reason)
    workdir = tempfile.mkdtemp(prefix="sample-")
    stdin_path = None
    if req.get("stdin"):
        stdin_path = os.path.join(workdir, ".stdin")
        with open(stdin_path, "w") as handle:
            handle.write(req["stdin"])
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    result_r, result_w = os.pipe()
    os.chdir(workdir)
    zygote = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(out_r), os.close(err_r), os.close(result_r)
            child(req, code, stdin_path, out_w, err_w, result_w, zygote)
        finally:
            os._exit(70)  # unreachable unless child() itself broke: never resume the zygote's loop
    os.chdir("/")
    for fd in (out_w, err_w, result_w):
        os.close(fd)
    deadline = began + float(req["timeout_s"])
    pipes = {"stdout": out_r, "stderr": err_r, "result": result_r}
    chunks, timed_out, over_cap = collect(pipes, pid, deadline, int(req["max_output"]))
    exit_code, sig = wait_child(pid)
    for fd in pipes.values():
        os.close(fd)
    sweep(workdir)
    cap = int(req["max_output"])
    return {
        "exit_code": exit_code,
        "signal": sig,
        "timed_out": timed_out,
        "output_limit": over_cap,
        "result": chunks["result"].decode(errors="replace"),
        "stdout": bytes(chunks["stdout"][:cap]).decode(errors="replace"),
        "stderr": bytes(chunks["stderr"][-4000:]).decode(errors="replace"),
        "seconds": time.monotonic() - began,
    }


def warm_up() -> None:
    for name in PRELOAD:
        try:
            __import__(name)
        except ImportError:
            pass
    # Objects that exist now are never collected in a child: its garbage collector then does
    # not write to (and so copy) the pages it shares with the zygote.
    gc.freeze()


def main() -> None:
    if PARENT is not None:
        die_with_parent(PARENT)
    warm_up()
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    # Nothing the zygote itself prints may corrupt the frames.
    sys.stdout = sys.stderr
    write_frame(stdout, {"ready": True, "pid": os.getpid()})
    while (req := read_frame(stdin)) is not None:
        write_frame(stdout, run(req))


if __name__ == "__main__":
    main()
