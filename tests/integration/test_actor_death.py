"""Every process a Troop actor starts dies with the actor, even when the actor is SIGKILLed:
the verification worker's math helper and sandbox (zygote, bwrap, the program running in it),
the generation worker's vLLM engine (EngineCore, its worker process, the watchdog).

Each test starts the actor, makes it start its processes, records the actor's descendants
(pids with start times, psutil's Process), SIGKILLs the actor's pid and waits for every
recorded process to be gone. It signals nothing but the pids it recorded.

Ray (2.5x and later, by default) kills a dead worker's process group itself, which would hide
whether Troop's own mechanisms work (and does not help where the raylet is gone too, or a
process left the group, as bwrap does). So the actor's raylet, its parent, is stopped
(SIGSTOP) from just before the kill until the processes are gone or `PAUSE_S` has passed, far
less than Ray's node health check tolerates (5 failed checks of 10 s).
"""

import contextlib
import os
import signal
import time

import psutil
import pyarrow as pa
import pytest

from jobs.stages.generation import GenerationWorker
from jobs.stages.verification import VerifyTask, VerifyWorker
from jobs.store.root import RunStore
from verifiers.registry import VerifySettings
from workers.engine import EngineSpec
from workers.samples import SAMPLES_SCHEMA

PAUSE_S = 25  # the longest wait for the processes, with the raylet stopped
PROBLEMS = pa.table({
    "problem_id": ["p"], "prompt": ["def one():\n"], "answer": ["\\frac12"],
    "test": ["def check(candidate):\n    assert candidate() == 1\n"], "entry_point": ["one"],
})
# unit id -> a completion: a math answer, and a program that is still running when the actor dies
UNITS = {"math": "The answer is $0.5$.", "code": "    import time\n    time.sleep(600)\n    return 1\n"}


def write_store(root: str) -> RunStore:
    store = RunStore(root)
    store.write_table(store.problems, PROBLEMS)
    for uid, text in UNITS.items():
        samples = pa.table(
            {"problem_id": ["p"], "sample_idx": [0], "text": [text], "num_tokens": [1],
             "cumulative_logprob": [None], "finish_reason": ["stop"], "seed": [0]},
            schema=SAMPLES_SCHEMA,
        )
        store.write_table(store.sample_unit(uid), samples, SAMPLES_SCHEMA)
    return store


def pid_of(actor) -> int:
    import ray

    return ray.get(actor.__ray_call__.remote(lambda self: os.getpid()))


def descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def living(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those still running (is_running compares start times: a reused pid is not ours)."""
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            pass
    return alive


def command(process: psutil.Process) -> str:
    """Its command line; '' if it has exited (the sandbox's probe of bwrap comes and goes)."""
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def describe(processes: list[psutil.Process]) -> list[str]:
    return [f"{process.pid} {command(process)[:100]}" for process in processes]


@contextlib.contextmanager
def raylet_stopped(actor_pid: int):
    """The actor's raylet stopped (see the module docstring), if the actor's parent is one."""
    raylet = psutil.Process(actor_pid).parent()
    if raylet is None or raylet.name() != "raylet":
        yield
        return
    raylet.suspend()
    try:
        yield
    finally:
        raylet.resume()


def kill_and_wait(actor_pid: int, recorded: list[psutil.Process]) -> tuple[list[psutil.Process], float]:
    """SIGKILLs the actor; (the recorded processes alive after PAUSE_S at most, seconds taken)."""
    began = time.monotonic()
    with raylet_stopped(actor_pid):
        os.kill(actor_pid, signal.SIGKILL)
        while (alive := living(recorded)) and time.monotonic() - began < PAUSE_S:
            time.sleep(0.1)
    return alive, time.monotonic() - began


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


@pytest.mark.parametrize("sandbox", ["auto", "rlimits"])
def test_verification_worker_processes_die_with_it(ray_session, tmp_path, sandbox):
    ray = ray_session
    store = write_store(str(tmp_path / "run"))
    actor = ray.remote(VerifyWorker).options(num_cpus=0).remote()
    pid = pid_of(actor)
    # The math helper: started by the first math check, alive between checks.
    stats = ray.get(actor.run_unit.remote(VerifyTask(store, "math", "math", VerifySettings())), timeout=120)
    assert stats.passed == 1
    # The sandbox, running a program that sleeps: the actor is killed in the middle of the check.
    settings = VerifySettings(timeout_s=300, sandbox=sandbox)
    running = actor.run_unit.remote(VerifyTask(store, "code", "unit_tests", settings))

    def program_started() -> bool:
        """The zygote (Python on zygote.py: bwrap's command line names it too) has forked."""
        try:
            zygotes = [p for p in descendants(pid) if "zygote.py" in command(p) and p.name() != "bwrap"]
            return bool(zygotes and zygotes[0].children())
        except psutil.Error:  # a process that came and went
            return False

    wait_for(program_started, 60, "the sandboxed program")
    recorded = descendants(pid)
    commands = " ".join(command(p) for p in recorded)
    assert "verifiers.math_answer._serve" in commands and "zygote.py" in commands, describe(recorded)
    if sandbox == "auto" and "bwrap" not in commands:
        pytest.skip("bubblewrap cannot run here: the rlimits case covers the zygote")

    alive, seconds = kill_and_wait(pid, recorded)
    assert not alive, f"alive {seconds:.0f} s after the actor's SIGKILL: {describe(alive)}"
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(running, timeout=60)


def test_generation_worker_processes_die_with_it(ray_session, tiny_model):
    ray = ray_session
    spec = EngineSpec(model=tiny_model, dtype="float32", max_model_len=256, enforce_eager=True)
    # vLLM's own processes (EngineCore, its worker), as on GPUs, even where a one-rank CPU
    # engine would run in the actor's process (workers.engine.runs_in_process).
    env = {"VLLM_LOGGING_LEVEL": os.environ.get("VLLM_LOGGING_LEVEL", "WARNING"), "VLLM_ENABLE_V1_MULTIPROCESSING": "1"}
    actor = ray.remote(GenerationWorker).options(num_cpus=0, runtime_env={"env_vars": env}).remote(spec)
    pid = pid_of(actor)  # returns once the engine is up (the constructor has run)
    recorded = descendants(pid)
    names = " ".join(p.name() for p in recorded)
    assert "EngineCore" in names, describe(recorded)

    alive, seconds = kill_and_wait(pid, recorded)
    assert not alive, f"alive {seconds:.0f} s after the actor's SIGKILL: {describe(alive)}"
