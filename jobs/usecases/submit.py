"""A config as a job on a Ray cluster, through the cluster's Ray Jobs API (its dashboard,
http://HEAD:8265): checking and staging it, connecting, submitting, following its log, stopping it.
The `troop submit`, `jobs`, `logs` and `stop` commands are a thin command-line layer over this.

A submission checks the config here first, so that a typo fails before anything is uploaded,
then submits `python -m jobs run CONFIG [...]` (or `sweep`, when the arguments describe one)
with a runtime_env that ships what the cluster cannot read from this machine:
- the code: the packages `jobs`, `workers` and `verifiers`, from wherever this process imports
  them (a checkout or an installed troop), as `py_modules`;
- a `working_dir` holding the config file, and the problems file when `problems.path` is a local
  file (the job reads the staged copy);
- `cluster.pip` (packages the cluster lacks, installed by Ray for this job) and `cluster.env_vars`.

The job's working directory is the staged folder on the cluster, so paths the user wrote relative
to their own directory are made absolute here: `run.root`, and `model.path` where it names a local
folder. The model itself is not shipped: `model.path` must be a Hub id or a path on the cluster's
nodes. The run's root must be reachable from every node (jobs.cluster.reach).

An explicit address (`--address`) wins over RAY_ADDRESS and RAY_API_SERVER_ADDRESS (Ray itself
lets those override an address given in code); without one, Ray resolves the address as `ray job` does.
"""

import asyncio
import json
import os
import re
import shlex
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from jobs.config import ClusterConfig, JobConfig, merge_config
from jobs.errors import ConfigError, TroopError
from jobs.cluster.reach import check_root_reachable

STAGED_PROBLEMS = "problems"  # folder of the working_dir holding a local problems file
# Set before the user's env_vars (which may override it): a driver whose stdout is not a
# terminal buffers its output in blocks, and `troop submit` would show it only at the end.
JOB_ENV_DEFAULTS = {"PYTHONUNBUFFERED": "1"}
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


@dataclass
class Job:
    """What a config and its overrides run, as checked here."""

    command: str  # "run" or "sweep"
    root: str  # the run's root, or the sweep's root (one folder per point under it)
    configs: list[JobConfig]  # the run's config, or each sweep point's
    axes: dict  # a sweep's axis key -> values; {} for a run


@dataclass
class Submission:
    command: str
    config_name: str  # the config file's name in the working_dir
    overrides: list[str]  # the user's, then the path fixes (which replace the user's value of their key)
    runtime_env: dict
    job: Job  # as the cluster will read the arguments

    @property
    def entrypoint(self) -> str:
        return job_entrypoint(self.command, self.config_name, self.overrides)


def load_job(config_path: str, overrides: list[str]) -> Job:
    """Merge and check the config as `troop run` or `troop sweep` would (ConfigError if not)."""
    from jobs.usecases.sweep import is_sweep, load_sweep

    if is_sweep(config_path, overrides):
        sweep = load_sweep(config_path, overrides)
        return Job("sweep", sweep.root, [p.config for p in sweep.points], sweep.axes)
    config = merge_config(config_path, overrides)
    return Job("run", config.run.root, [config], {})


def job_entrypoint(command: str, config_name: str, overrides: list[str]) -> str:
    """The shell command the cluster runs; every argument quoted (values may hold spaces, quotes, $)."""
    return shlex.join(["python", "-m", "jobs", command, config_name, *overrides])


def _override(key: str, value: str) -> str:
    """`key=value`, the value quoted unless it is plain (a comma would make a sweep axis of it,
    and OmegaConf would read brackets, quotes or `${` as more than a string)."""
    return f"{key}={value}" if re.fullmatch(r"[\w./@+-]+", value) else f"{key}={json.dumps(value)}"


def _relative_local(path) -> bool:
    return isinstance(path, str) and "://" not in path and not os.path.isabs(path) and os.path.exists(path)


def _refuse_relative_axis(job: Job, key: str) -> None:
    """An axis value relative to this directory would be read relative to the job's folder."""
    values = [v for v in job.axes.get(key, []) if _relative_local(v)]
    if values:
        raise ConfigError(
            f"sweep axis '{key}' has a relative local path ({values[0]}): the job runs in another folder "
            f"on the cluster; give absolute paths or URLs, e.g. {key}={os.path.abspath(values[0])}"
        )


def _stage_problems(path: str, staging: Path) -> str:
    """Copy a local problems file into the working_dir; its path there, relative to the job's folder."""
    target = staging / STAGED_PROBLEMS / os.path.basename(path)
    target.parent.mkdir(exist_ok=True)
    shutil.copyfile(path, target)
    return f"{STAGED_PROBLEMS}/{target.name}"


def path_overrides(job: Job, staging: Path) -> list[str]:
    """Overrides that make the job read and write what these arguments mean here."""
    config = job.configs[0]
    fixes = []
    if "://" not in job.root and not os.path.isabs(job.root):
        fixes.append(_override("run.root", os.path.abspath(job.root)))  # run.root is never an axis
    if config.cluster.address is not None:
        # The driver runs on the cluster: the job supervisor gives it the address (RAY_ADDRESS);
        # an address meant for a driver elsewhere (ray://HEAD:10001) would only add a detour.
        fixes.append("cluster.address=null")
    for key in ("model.path", "problems.path"):
        _refuse_relative_axis(job, key)
    if "model.path" not in job.axes and _relative_local(config.model.path):
        fixes.append(_override("model.path", os.path.abspath(config.model.path)))
    problems = config.problems.path
    if "problems.path" not in job.axes and problems and "://" not in problems and os.path.isfile(problems):
        fixes.append(_override("problems.path", _stage_problems(problems, staging)))
    return fixes


def package_dirs() -> list[str]:
    """The folders of the packages the job imports, wherever this process imports them from."""
    import jobs
    import verifiers
    import workers

    return [os.path.dirname(os.path.abspath(package.__file__)) for package in (jobs, workers, verifiers)]


def _job_cluster(job: Job) -> ClusterConfig:
    """The cluster settings, the same for every point: a job has one runtime_env."""
    first = job.configs[0].cluster
    for config in job.configs[1:]:
        if (config.cluster.pip, config.cluster.env_vars) != (first.pip, first.env_vars):
            raise ConfigError("cluster.pip and cluster.env_vars cannot vary across sweep points: a job has one runtime_env")
    return first


def build_runtime_env(cluster: ClusterConfig, staging: Path) -> dict:
    env = {
        "working_dir": str(staging),
        "py_modules": package_dirs(),
        "excludes": ["__pycache__/"],  # this machine's bytecode; the cluster's Python compiles its own
        "env_vars": {**JOB_ENV_DEFAULTS, **{str(k): str(v) for k, v in cluster.env_vars.items()}},
    }
    if cluster.pip:
        env["pip"] = list(cluster.pip)
    return env


def prepare_submission(config_path: str, overrides: list[str], staging: Path) -> Submission:
    """Check the arguments, stage the files the job reads in `staging`, and build the job's
    command and runtime_env; the final arguments are checked again as the cluster will read them."""
    job = load_job(config_path, overrides)
    config_name = os.path.basename(config_path)
    shutil.copyfile(config_path, staging / config_name)
    fixes = path_overrides(job, staging)
    fixed = {fix.split("=", 1)[0] for fix in fixes}
    final = [o for o in overrides if o.split("=", 1)[0].strip() not in fixed] + fixes  # a fix replaces the user's value
    job = load_job(str(staging / config_name), final)
    return Submission(job.command, config_name, final, build_runtime_env(_job_cluster(job), staging), job)


# The cluster side: every call below talks to the cluster's dashboard.


@contextmanager
def explicit_address(address: str | None):
    """Let `address`, when given, win over RAY_API_SERVER_ADDRESS and RAY_ADDRESS, which Ray's
    clients otherwise prefer to the address they are given."""
    if address is None:
        yield
        return
    saved = {name: os.environ.pop(name, None) for name in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")}
    try:
        yield
    finally:
        os.environ.update({name: value for name, value in saved.items() if value is not None})


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def connect(address: str | None):
    """A JobSubmissionClient for `address` (None: RAY_ADDRESS, else a local Ray), or a TroopError."""
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    where = address or "RAY_ADDRESS or a local Ray"
    try:
        with explicit_address(address):
            return JobSubmissionClient(address)
    except AuthenticationError as err:
        # Ray's clients send the cluster's token only when RAY_AUTH_MODE=token is set here too.
        raise TroopError(
            f"the Ray cluster at {where} wants its token ({_first_line(err)}): set RAY_AUTH_MODE=token "
            "and the cluster's token in RAY_AUTH_TOKEN (or ~/.ray/auth_token)"
        ) from None
    except Exception as err:  # noqa: BLE001 - connection and address-format errors have one fix
        raise TroopError(
            f"no Ray job server at {where} ({_first_line(err)}): is the Ray head running with its dashboard "
            "(ray start --head --dashboard-host 0.0.0.0)? give --address http://HEAD:8265"
        ) from None


def alive_nodes(address: str) -> int:
    """How many nodes of the cluster are alive, from its dashboard's state API."""
    from ray.util.state import list_nodes

    try:
        with explicit_address(address):
            return len(list_nodes(address=address, filters=[("state", "=", "ALIVE")]))
    except Exception as err:  # noqa: BLE001 - the state API's errors vary by version
        raise TroopError(f"the cluster at {address} did not list its nodes ({_first_line(err)}): check the dashboard") from None


def check_reach(submission: Submission, nodes: int) -> None:
    job = submission.job
    check_root_reachable(job.root, nodes, all(c.run.shared_filesystem for c in job.configs))


def submit(config_path: str, overrides: list[str], address: str | None) -> tuple[object, str, Submission]:
    """Check the arguments (before the cluster is asked), connect, check that every node reaches
    the root, and submit the job: (the JobSubmissionClient, the job's submission id, the submission)."""
    with tempfile.TemporaryDirectory(prefix="troop-submit-") as staging:
        submission = prepare_submission(config_path, overrides, Path(staging))
        client = connect(address)
        check_reach(submission, alive_nodes(client.get_address()))
        try:  # uploads the working_dir and py_modules before it returns
            job_id = client.submit_job(
                entrypoint=submission.entrypoint,
                runtime_env=submission.runtime_env,
                metadata={"troop": submission.command, "config": config_path},
            )
        except RuntimeError as err:
            raise TroopError(f"{client.get_address()} refused the job ({_first_line(err)})") from None
    return client, job_id, submission


def job_info(client, job_id: str):
    try:
        return client.get_job_info(job_id)
    except RuntimeError as err:  # the job server answers 404 for an unknown id
        raise TroopError(f"no job {job_id} on {client.get_address()} ({_first_line(err)}): troop jobs lists them") from None


def wait_for_end(client, job_id: str, timeout: float = 60.0) -> str:
    """The job's status once it is terminal (the log stream can close just before it is)."""
    deadline = time.monotonic() + timeout
    status = str(job_info(client, job_id).status.value)
    while status not in TERMINAL and time.monotonic() < deadline:
        time.sleep(0.5)
        status = str(job_info(client, job_id).status.value)
    return status


async def _copy_log_stream(client, job_id: str, log: TextIO) -> None:
    async for chunk in client.tail_job_logs(job_id):
        log.write(chunk)
        log.flush()


def follow(client, job_id: str, log: TextIO) -> str:
    """Write the job's log to `log` as it comes until the job ends; its final status. A Ctrl-C
    (KeyboardInterrupt) goes to the caller: it stops following, not the job."""
    job_info(client, job_id)  # an unknown id fails here, in one line
    try:
        asyncio.run(_copy_log_stream(client, job_id, log))
    except RuntimeError as err:  # the stream closed before the job ended (a restarted dashboard, a network cut)
        raise TroopError(
            f"the log of job {job_id} stopped coming ({_first_line(err)}); the job may still run: "
            f"troop logs {job_id} --follow to follow it again"
        ) from None
    return wait_for_end(client, job_id)


def check_succeeded(client, job_id: str, status: str) -> None:
    """A job that did not succeed fails the command, naming its status and Ray's reason."""
    if status == "SUCCEEDED":
        return
    info = job_info(client, job_id)
    reason = f" ({info.message.strip().splitlines()[0]})" if info.message and info.message.strip() else ""
    raise TroopError(f"job {job_id} {status}{reason}: its whole log is in troop logs {job_id}")


def job_log(client, job_id: str) -> str:
    """The job's whole log so far."""
    job_info(client, job_id)  # an unknown id fails here, in one line
    return client.get_job_logs(job_id)


def submitted_jobs(client) -> list:
    """The cluster's submitted jobs, oldest first. Drivers that were not submitted (a plain
    `troop run` on the cluster) have no submission id: logs and stop do not apply to them."""
    return sorted((j for j in client.list_jobs() if j.submission_id), key=lambda j: j.start_time or 0)


def stop(client, job_id: str) -> tuple[bool, str]:
    """Stop the job unless it has ended: (whether it was still running, its status then, waiting
    up to a minute for a stopped job to end)."""
    status = str(job_info(client, job_id).status.value)
    if status in TERMINAL:
        return False, status
    client.stop_job(job_id)
    return True, wait_for_end(client, job_id)
