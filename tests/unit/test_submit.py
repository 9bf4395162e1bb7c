"""`troop submit` without a cluster: what it ships (runtime_env, staged files), the command the
cluster runs, the refusal of a local root on several nodes, and the commands' arguments."""

import io
import os
import shlex
import subprocess
import sys
from types import SimpleNamespace

import pytest

from jobs.cli.cluster import follow_log
from jobs.cli.main import build_parser
from jobs.errors import ConfigError, TroopError
from jobs.cluster.reach import check_root_reachable
from jobs.usecases.submit import (
    check_reach,
    check_succeeded,
    connect,
    explicit_address,
    follow,
    job_entrypoint,
    prepare_submission,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(
        "run: {root: /shared/runs/x}\nmodel: {path: org/model}\n"
        "problems: {source: arithmetic, options: {num_problems: 3}}\n"
    )
    return path


@pytest.fixture
def staging(tmp_path):
    folder = tmp_path / "staging"
    folder.mkdir()
    return folder


def test_runtime_env_ships_the_three_packages_and_the_config(config_file, staging):
    submission = prepare_submission(str(config_file), [], staging)
    env = submission.runtime_env
    assert [os.path.basename(p) for p in env["py_modules"]] == ["jobs", "workers", "verifiers"]
    for package in env["py_modules"]:
        assert os.path.isfile(os.path.join(package, "__init__.py"))
    assert env["py_modules"][0] == os.path.join(REPO, "jobs")  # where this process imports it from
    assert env["working_dir"] == str(staging)
    assert (staging / "job.yaml").read_text() == config_file.read_text()
    assert "pip" not in env and env["env_vars"] == {"PYTHONUNBUFFERED": "1"}
    assert submission.overrides == [] and submission.command == "run"  # absolute root, Hub id: nothing to fix


def test_cluster_pip_and_env_vars_go_to_the_runtime_env(config_file, staging):
    overrides = ["cluster.pip=[vllm==0.11.0,math-verify]", "cluster.env_vars={HF_TOKEN: abc, PYTHONUNBUFFERED: '0'}"]
    env = prepare_submission(str(config_file), overrides, staging).runtime_env
    assert env["pip"] == ["vllm==0.11.0", "math-verify"]
    assert env["env_vars"] == {"HF_TOKEN": "abc", "PYTHONUNBUFFERED": "0"}  # the user's value wins


def test_a_local_problems_file_is_staged_and_the_job_reads_the_copy(config_file, staging, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "q, a.jsonl").write_text('{"problem_id": "1", "prompt": "1+1=", "answer": "2"}\n')
    submission = prepare_submission(str(config_file), ["problems.source=jsonl", 'problems.path="data/q, a.jsonl"'], staging)
    assert (staging / "problems" / "q, a.jsonl").read_text() == (tmp_path / "data" / "q, a.jsonl").read_text()
    assert submission.overrides[-1] == 'problems.path="problems/q, a.jsonl"'  # quoted: the comma is the path's
    assert submission.job.command == "run" and submission.job.configs[0].problems.path == "problems/q, a.jsonl"


def test_a_problems_url_stays_as_it_is(config_file, staging):
    submission = prepare_submission(str(config_file), ["problems.source=jsonl", "problems.path=s3://b/q.jsonl"], staging)
    assert submission.job.configs[0].problems.path == "s3://b/q.jsonl"
    assert not (staging / "problems").exists()


def test_relative_local_paths_become_absolute(config_file, staging, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    submission = prepare_submission(str(config_file), ["run.root=runs/a", "model.path=models/tiny"], staging)
    config = submission.job.configs[0]
    assert (config.run.root, config.model.path) == (str(tmp_path / "runs/a"), str(tmp_path / "models/tiny"))
    assert submission.job.root == str(tmp_path / "runs/a")
    # The fixes replace the user's overrides of the same keys: the job's command says each key once.
    assert submission.overrides == [f"run.root={tmp_path}/runs/a", f"model.path={tmp_path}/models/tiny"]


def test_the_job_connects_to_the_cluster_it_runs_on(config_file, staging):
    submission = prepare_submission(str(config_file), ["cluster.address=ray://head:10001"], staging)
    assert submission.overrides[-1] == "cluster.address=null" and submission.job.configs[0].cluster.address is None


def test_a_relative_path_as_a_sweep_axis_is_refused(config_file, staging, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    with pytest.raises(ConfigError, match=r"sweep axis 'model.path' has a relative local path \(a\).*absolute paths"):
        prepare_submission(str(config_file), ["model.path=a,b"], staging)


def test_entrypoint_of_a_run_quotes_every_argument(config_file, staging):
    overrides = ["sampling.stop=['a b', \"c,d\"]", "problems.options.ops='+-'", "run.root=/x/my runs"]
    submission = prepare_submission(str(config_file), overrides, staging)
    assert submission.command == "run"  # the comma is inside quotes: one value, not a sweep axis
    assert shlex.split(submission.entrypoint) == ["python", "-m", "jobs", "run", "job.yaml", *overrides]
    assert submission.job.configs[0].sampling.stop == ["a b", "c,d"]


def test_entrypoint_of_a_sweep(config_file, staging):
    overrides = ["sampling.temperature=0.5,1.0", "sampling.stop=['x y']"]
    submission = prepare_submission(str(config_file), overrides, staging)
    assert submission.command == "sweep" and len(submission.job.configs) == 2
    assert submission.job.root == "/shared/runs/x"
    assert shlex.split(submission.entrypoint) == ["python", "-m", "jobs", "sweep", "job.yaml", *overrides]


def test_a_sweep_section_makes_a_sweep(config_file, staging):
    config_file.write_text(config_file.read_text() + "sweep: {sampling.n: [1, 2, 4]}\n")
    submission = prepare_submission(str(config_file), [], staging)
    assert submission.entrypoint == "python -m jobs sweep job.yaml" and len(submission.job.configs) == 3


def test_cluster_settings_cannot_vary_across_sweep_points(config_file, staging):
    with pytest.raises(ConfigError, match="cannot vary across sweep points"):
        prepare_submission(str(config_file), ["cluster.pip=[a],[b]"], staging)


def test_entrypoint_survives_shell_metacharacters():
    overrides = ["run.root=/x/$HOME;rm -rf", "model.path=a'b"]
    assert shlex.split(job_entrypoint("run", "my job.yaml", overrides))[4:] == ["my job.yaml", *overrides]


@pytest.mark.parametrize("root", ["/data/runs/x", "runs/x", "file:///data/runs/x"])
def test_a_local_root_on_several_nodes_is_refused_and_says_why(root):
    with pytest.raises(ConfigError) as refused:
        check_root_reachable(root, alive_nodes=3, shared_filesystem=False)
    message = str(refused.value)
    assert f"run.root={root} is a local path and the cluster has 3 nodes" in message
    assert "each node would write its units to its own disk" in message
    assert "run.root=s3://bucket/prefix" in message and "run.shared_filesystem=true" in message


@pytest.mark.parametrize(
    "root, nodes, shared",
    [("/data/runs/x", 1, False), ("/data/runs/x", 3, True), ("s3://bucket/x", 3, False), ("gs://b/x", 2, False)],
)
def test_a_root_every_node_reaches_is_accepted(root, nodes, shared):
    check_root_reachable(root, alive_nodes=nodes, shared_filesystem=shared)


def test_a_sweep_is_checked_at_its_root(config_file, staging):
    submission = prepare_submission(str(config_file), ["sampling.n=1,2"], staging)
    with pytest.raises(ConfigError, match=r"run.root=/shared/runs/x is a local path"):
        check_reach(submission, nodes=2)
    shared = prepare_submission(str(config_file), ["sampling.n=1,2", "run.shared_filesystem=true"], staging)
    check_reach(shared, nodes=2)


def test_the_four_commands_parse():
    parser = build_parser()
    submit = parser.parse_args(["submit", "--address", "http://h:8265", "c.yaml", "sampling.n=4", "--no-wait"])
    assert (submit.address, submit.no_wait, submit.config, submit.overrides) == ("http://h:8265", True, "c.yaml", ["sampling.n=4"])
    assert parser.parse_args(["submit", "c.yaml"]).address is None
    assert parser.parse_args(["jobs", "--address", "http://h:8265"]).address == "http://h:8265"
    logs = parser.parse_args(["logs", "raysubmit_1", "--follow"])
    assert (logs.job_id, logs.follow, logs.address) == ("raysubmit_1", True, None)
    assert parser.parse_args(["stop", "raysubmit_1", "--address", "http://h:8265"]).job_id == "raysubmit_1"
    for args in (["logs"], ["stop"], ["submit"]):
        with pytest.raises(SystemExit):
            parser.parse_args(args)


def test_an_explicit_address_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    with explicit_address("http://h:8265"):
        assert "RAY_ADDRESS" not in os.environ
    assert os.environ["RAY_ADDRESS"] == "auto"
    with explicit_address(None):
        assert os.environ["RAY_ADDRESS"] == "auto"


def test_an_unreachable_address_is_one_line_naming_it_and_the_fix():
    with pytest.raises(TroopError, match=r"no Ray job server at http://127.0.0.1:9 .*dashboard"):
        connect("http://127.0.0.1:9")


class ScriptedClient:
    """A stand-in for JobSubmissionClient: a job whose log stream ends (or is interrupted)."""

    def __init__(self, statuses: list[str], message: str = "", interrupt: bool = False):
        self.statuses, self.message, self.interrupt = statuses, message, interrupt

    def get_address(self) -> str:
        return "http://head:8265"

    def get_job_info(self, job_id: str):
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return SimpleNamespace(status=SimpleNamespace(value=status), message=self.message)

    async def tail_job_logs(self, job_id: str):
        yield "line 1\n"
        if self.interrupt:
            raise KeyboardInterrupt
        yield "line 2\n"


def test_follow_writes_the_log_to_the_stream_and_waits_for_the_final_status():
    log = io.StringIO()
    assert follow(ScriptedClient(["RUNNING", "RUNNING", "SUCCEEDED"]), "raysubmit_1", log) == "SUCCEEDED"
    assert log.getvalue() == "line 1\nline 2\n"


def test_the_logs_command_prints_the_log_as_it_comes(capsys):
    assert follow_log(ScriptedClient(["RUNNING", "SUCCEEDED"]), "raysubmit_1") == "SUCCEEDED"
    assert capsys.readouterr().out == "line 1\nline 2\n"


def test_ctrl_c_while_following_leaves_the_job_running_and_says_how_to_stop_it(capsys):
    with pytest.raises(SystemExit) as stopped:
        follow_log(ScriptedClient(["RUNNING"], interrupt=True), "raysubmit_1")
    assert stopped.value.code == 130
    err = capsys.readouterr().err
    assert "job raysubmit_1, which keeps running" in err and "troop stop raysubmit_1" in err


def test_a_job_that_did_not_succeed_is_one_line_with_its_status_and_reason():
    client = ScriptedClient(["FAILED"], message="Job entrypoint command failed with exit code 2, last logs:\nTraceback ...")
    with pytest.raises(TroopError) as failed:
        check_succeeded(client, "raysubmit_1", "FAILED")
    assert str(failed.value) == (
        "job raysubmit_1 FAILED (Job entrypoint command failed with exit code 2, last logs:): "
        "its whole log is in troop logs raysubmit_1"
    )
    check_succeeded(client, "raysubmit_1", "SUCCEEDED")


def troop(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    return subprocess.run([sys.executable, "-m", "jobs", *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)


@pytest.mark.slow  # `troop` subprocesses
def test_the_commands_refuse_an_unreachable_cluster_in_one_line():
    for args in (["jobs"], ["logs", "raysubmit_1"], ["stop", "raysubmit_1"], ["submit", "conf/demo.yaml"]):
        result = troop(*args, "--address", "http://127.0.0.1:9")
        assert result.returncode == 2, result.stderr
        [line] = [line for line in result.stderr.splitlines() if line.startswith("troop: error:")]
        assert "no Ray job server at http://127.0.0.1:9" in line and "Traceback" not in result.stderr


@pytest.mark.slow  # a `troop` subprocess
def test_a_bad_config_fails_before_the_cluster_is_asked():
    result = troop("submit", "--address", "http://127.0.0.1:9", "conf/demo.yaml", "sampling.temprature=0.5")
    assert result.returncode == 2
    assert "did you mean 'sampling.temperature'" in result.stderr and "127.0.0.1:9" not in result.stderr


def test_the_driver_refuses_a_local_root_on_several_nodes(tmp_path):
    """The same check where the driver joins the cluster (a run started on a head by hand)."""
    from jobs.cluster.session import check_driver_reach

    two_nodes = lambda: 2  # noqa: E731
    with pytest.raises(ConfigError, match="the cluster has 2 nodes"):
        check_driver_reach(str(tmp_path / "run"), False, two_nodes)
    check_driver_reach(str(tmp_path / "run"), True, two_nodes)
    check_driver_reach("s3://bucket/run", False, two_nodes)
