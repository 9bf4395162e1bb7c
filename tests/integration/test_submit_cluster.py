"""`troop submit`, `jobs`, `logs` and `stop` against a real Ray head: `ray start --head --block`
with its dashboard and job server on 127.0.0.1, started here for this module.

The head gets a temp dir of its own: `ray start` records its address in <temp dir>/
ray_current_cluster, and a `ray.init()` elsewhere in the session (the shared engine's local Ray,
a subprocess's `troop run`) would connect to a head recorded in the default /tmp/ray instead of
starting its own. Every port it opens is a free one (another Ray on the machine keeps Ray's
default ports, e.g. the dashboard agent's 52365). At the end the head is
stopped through its own `ray start --block` process (SIGTERM makes it stop what it started),
and whatever of its process tree is left is killed by pid: never `ray stop`, which stops every
Ray on the machine.

The head asks for a token (as Ray does by default where one exists): a token made here, given to
the head and to every client through RAY_AUTH_MODE=token and RAY_AUTH_TOKEN, never the user's
~/.ray/auth_token. Every client runs in a subprocess with that environment, since Ray caches its
authentication mode per process (and the session's own `ray.init()` may have set it).

Only one job here runs to its end with an engine (about 95 s on this 2-core machine, most of it
the engine's start, as for a local `troop run` of the same config); the failing jobs fail at their
model path before any engine starts, and the stopped job is stopped while it starts one.
"""

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import psutil
import pyarrow.parquet as pq
import pytest

from jobs.problems.arithmetic import arithmetic_rows
from verifiers import get_verifier

BIN = os.path.dirname(sys.executable)
PROBLEMS, N = 6, 4
JOB_ID = re.compile(r"submitted job (\S+) to ")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env() -> dict:
    """This environment without a Ray address or token, with the venv's bin first: the head's
    `python` (which runs the jobs' entrypoints) is then this one."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    env = {k: v for k, v in env.items() if not k.startswith("RAY_AUTH")}
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    return env


@dataclass
class Head:
    address: str  # its dashboard, http://127.0.0.1:PORT
    env: dict  # a client's environment: the token

    def python(self, code: str, timeout: float = 120) -> str:
        """Run `code` in a Python of its own with this head's client environment; its stdout."""
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=self.env, timeout=timeout)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout


def head_command(temp_dir: str, dashboard_port: int) -> list[str]:
    ports = {
        "--port": free_port(), "--dashboard-port": dashboard_port, "--ray-client-server-port": free_port(),
        "--dashboard-agent-listen-port": free_port(), "--dashboard-agent-grpc-port": free_port(),
        "--runtime-env-agent-port": free_port(), "--metrics-export-port": free_port(),
    }
    return [
        os.path.join(BIN, "ray"), "start", "--head", "--block", "--dashboard-host", "127.0.0.1",
        "--include-dashboard", "true", "--num-cpus", "2", "--object-store-memory", str(500 * 2**20),
        "--temp-dir", temp_dir, "--disable-usage-stats",
        *(arg for name, port in ports.items() for arg in (name, str(port))),
    ]


READY = """
import sys, time
from ray.job_submission import JobSubmissionClient
deadline = time.monotonic() + {timeout}
while True:
    try:
        client = JobSubmissionClient("{address}")
        job_id = client.submit_job(entrypoint="true")
        break
    except Exception as err:
        if time.monotonic() > deadline:
            sys.exit(f"the job server did not take a job: {{err}}")
        time.sleep(1)
while str(client.get_job_status(job_id).value) not in ("SUCCEEDED", "FAILED", "STOPPED"):
    time.sleep(0.5)
print(client.get_job_status(job_id).value)
"""


def wait_until_jobs_run(head: Head, timeout: float = 120.0) -> None:
    """Until a trivial job succeeds: the dashboard answers and its job agent takes jobs."""
    assert head.python(READY.format(address=head.address, timeout=timeout), timeout=timeout + 60).strip() == "SUCCEEDED"


def stop_head(head: subprocess.Popen) -> None:
    """Stop the head through its `ray start --block` process, then kill by pid what it left."""
    tree = [head, *psutil.Process(head.pid).children(recursive=True)]
    head.send_signal(signal.SIGTERM)
    try:
        head.wait(timeout=60)
    except subprocess.TimeoutExpired:
        head.kill()
    _, alive = psutil.wait_procs([p for p in tree if p.pid != head.pid], timeout=30)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


@pytest.fixture(scope="module")
def head(tmp_path_factory) -> Head:
    """One head for every test here."""
    temp_dir = tempfile.mkdtemp(prefix="troop-ray-", dir="/tmp")  # short: Ray's socket paths are limited
    log_path = str(tmp_path_factory.mktemp("head") / "head.log")
    dashboard_port = free_port()
    env = {**clean_env(), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            head_command(temp_dir, dashboard_port), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        head = Head(f"http://127.0.0.1:{dashboard_port}", env)
        assert proc.poll() is None, open(log_path).read()[-3000:]
        wait_until_jobs_run(head)
        yield head
    finally:
        stop_head(proc)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def job_dir(tmp_path_factory, tiny_model):
    """A folder with a config and a problems file, both relative to it, as a user would have them."""
    folder = tmp_path_factory.mktemp("submit")
    (folder / "data").mkdir()
    rows = arithmetic_rows(num_problems=PROBLEMS)
    (folder / "data" / "problems.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "job.yaml").write_text(
        f"model: {{path: {tiny_model}, dtype: float32, max_model_len: 256, enforce_eager: true}}\n"  # as ENGINE_KEYS
        f"sampling: {{n: {N}, temperature: 1.0, max_tokens: 8}}\n"
        "problems: {source: jsonl, path: data/problems.jsonl}\n"
        "plan: {samples_per_unit: 8}\n"
        "verify: {verifier: numeric, workers: 1}\n"
    )
    return folder


def troop(head: Head, cwd, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`troop ARGS --address HEAD` in `cwd`, as a client of the head."""
    return subprocess.run(
        [sys.executable, "-m", "jobs", *args, "--address", head.address], capture_output=True, text=True, cwd=cwd,
        env=head.env if env is None else env, timeout=600,
    )


def submitted_id(result: subprocess.CompletedProcess) -> str:
    match = JOB_ID.search(result.stdout)
    assert match, result.stdout + result.stderr
    return match.group(1)


def rows(folder) -> int:
    return sum(pq.read_metadata(path).num_rows for path in folder.glob("unit-*.parquet"))


JOB_INFO = """
import json
from ray.job_submission import JobSubmissionClient
info = JobSubmissionClient("{address}").get_job_info("{job_id}")
print(json.dumps({{"runtime_env": info.runtime_env, "driver": info.driver_info is not None}}))
"""


def errors(result: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return [line for line in result.stderr.splitlines() if line.startswith("troop: error:")]


def test_submit_runs_the_job_to_completion_on_the_cluster(head, job_dir):
    result = troop(head, job_dir, "submit", "job.yaml", "run.root=runs/first")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    job_id = submitted_id(result)
    assert f"job {job_id} SUCCEEDED" in result.stdout
    root = job_dir / "runs" / "first"  # run.root relative to where troop submit ran
    assert f"run: {root}" in result.stdout  # the driver's own output, followed
    assert rows(root / "samples") == PROBLEMS * N
    assert rows(root / "verdicts" / get_verifier("numeric").key()) == PROBLEMS * N
    metrics = json.loads((root / "metrics.json").read_text())
    assert metrics["counts"]["problems"] == PROBLEMS and metrics["counts"]["samples"] == PROBLEMS * N
    info = json.loads(head.python(JOB_INFO.format(address=head.address, job_id=job_id)))
    # The code and the staged files were uploaded, and the driver ran on this cluster (a driver
    # that had started a Ray of its own would not be this job's driver).
    shipped = [*info["runtime_env"]["py_modules"], info["runtime_env"]["working_dir"]]
    assert len(shipped) == 4 and all(uri.startswith("gcs://") for uri in shipped), shipped
    assert info["driver"]


def test_no_wait_then_logs_and_jobs_of_a_job_that_fails(head, job_dir):
    # The model path passes the checks here (it may exist on the cluster only) and fails there,
    # before any engine starts.
    started = time.monotonic()
    result = troop(head, job_dir, "submit", "--no-wait", "job.yaml", "run.root=runs/bad", "model.path=/nonexistent/model")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 60
    job_id = submitted_id(result)
    followed = troop(head, job_dir, "logs", job_id, "--follow")
    assert followed.returncode == 2 and f"job {job_id} FAILED" in followed.stdout
    assert "model.path=/nonexistent/model" in followed.stdout  # the driver's one-line error, in the job's log
    [error] = errors(followed)
    assert f"job {job_id} FAILED" in error and f"troop logs {job_id}" in error
    logs = troop(head, job_dir, "logs", job_id)
    assert logs.returncode == 0 and "model.path=/nonexistent/model" in logs.stdout
    listing = troop(head, job_dir, "jobs")
    assert listing.returncode == 0, listing.stderr
    [line] = [line for line in listing.stdout.splitlines() if job_id in line]
    assert "FAILED" in line and "python -m jobs run job.yaml" in listing.stdout


def test_a_failing_job_fails_the_submit_command(head, job_dir):
    result = troop(head, job_dir, "submit", "job.yaml", "run.root=runs/bad2", "model.path=/nonexistent/model")
    assert result.returncode == 2
    job_id = submitted_id(result)
    assert f"job {job_id} FAILED" in result.stdout
    [error] = errors(result)
    assert f"job {job_id} FAILED" in error and "exit code 2" in error


def test_stop_a_running_job(head, job_dir):
    result = troop(head, job_dir, "submit", "--no-wait", "job.yaml", "run.root=runs/stopped")
    job_id = submitted_id(result)
    stopped = troop(head, job_dir, "stop", job_id)
    assert stopped.returncode == 0, stopped.stderr
    assert f"job {job_id} STOPPED" in stopped.stdout
    again = troop(head, job_dir, "stop", job_id)
    assert again.returncode == 0 and f"job {job_id} had already ended: STOPPED" in again.stdout


def test_an_unknown_job_id_and_a_missing_token_are_one_line(head, job_dir):
    unknown = troop(head, job_dir, "logs", "raysubmit_nope")
    assert unknown.returncode == 2
    [error] = errors(unknown)
    assert "no job raysubmit_nope" in error and "troop jobs" in error
    no_token = troop(head, job_dir, "jobs", env=clean_env())
    assert no_token.returncode == 2
    [error] = errors(no_token)
    assert f"the Ray cluster at {head.address} wants its token" in error and "RAY_AUTH_MODE=token" in error
