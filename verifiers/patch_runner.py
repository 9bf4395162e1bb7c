"""Applies one candidate patch and runs the tests, inside the sandbox (standard library only).

Run as `python -I -B patch_runner.py` in the candidate's private copy of the workspace; reads
one JSON request on stdin and writes one JSON result to the pipe it names (`result_fd`), which
the test command does not inherit (so what the tests print cannot stand in for the result):
- apply the candidate: `git apply`, else `patch --batch --fuzz=5 -p1` (as SWE-bench's harness);
- reset the files the test patch touches to the base workspace, then apply the test patch;
- run the test command in its own process group under the limits, killing the group at the
  wall-clock limit, and return its output (the tail, capped).
"""

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time

GIT = ["git", "-c", "safe.directory=*", "-c", "core.autocrlf=false"]


def apply(diff_path: str) -> tuple[bool, str]:
    """The patch applied with git, else with patch's fuzz; (applied, what each tool said)."""
    log = []
    for command in ([*GIT, "apply", "--verbose", diff_path], ["patch", "--batch", "--fuzz=5", "-p1", "-i", diff_path]):
        done = subprocess.run(command, capture_output=True, text=True)
        log.append(f"$ {' '.join(command[-4:])}\n{done.stdout[-400:]}{done.stderr[-400:]}")
        if done.returncode == 0:
            return True, "\n".join(log)
    return False, "\n".join(log)


def reset_to_base(files: list[str], base: str) -> None:
    """SWE-bench resets the test patch's files before applying it: a candidate's edits to them go."""
    for path in files:
        original = os.path.join(base, path)
        if os.path.lexists(path):
            os.remove(path) if not os.path.isdir(path) or os.path.islink(path) else shutil.rmtree(path)
        if os.path.isfile(original):
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            shutil.copy2(original, path)


def limit(req: dict):
    def apply_limits() -> None:
        os.setsid()
        memory = req["memory_mb"] * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        cpu = int(req["cpu_s"])
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        size = req["file_size_mb"] * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return apply_limits


def run_tests(req: dict) -> dict:
    began = time.monotonic()
    env = {**req["env"], "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.Popen(req["test_cmd"], shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=env, preexec_fn=limit(req), close_fds=True)
    try:
        output, _ = proc.communicate(timeout=req["timeout_s"])
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        timed_out = True
    try:  # whatever the tests left running in their group
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    text = output.decode("utf-8", "replace")
    return {"returncode": proc.returncode, "timed_out": timed_out, "output": text[-req["max_output"]:],
            "seconds": time.monotonic() - began}


def main() -> None:
    req = json.loads(sys.stdin.read())
    os.makedirs(req["scratch"], exist_ok=True)
    result = {"stage": "applied"}
    with open(os.path.join(req["scratch"], "candidate.diff"), "w") as f:
        f.write(req["patch"])
    applied, log = apply(f.name)
    result["apply_log"] = log[-1500:]
    if not applied:
        result["stage"] = "patch_failed"
    else:
        if req.get("test_patch"):
            reset_to_base(req["test_files"], req["base"])
            with open(os.path.join(req["scratch"], "test.diff"), "w") as f:
                f.write(req["test_patch"])
            ok, test_log = apply(f.name)
            if not ok:
                result.update(stage="test_patch_failed", apply_log=test_log[-1500:])
        if result["stage"] == "applied":
            result.update(run_tests(req))
    with os.fdopen(req["result_fd"], "w") as out:
        out.write(json.dumps(result))


if __name__ == "__main__":
    main()
