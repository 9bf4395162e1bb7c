"""`troop` refuses bad input with one line that names the problem, exit 2, and no output.

These fail before Ray or vLLM start, so they run as unit tests (subprocesses of the CLI)."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # each test runs `troop` as a subprocess

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def troop(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jobs", *args], capture_output=True, text=True, cwd=cwd or REPO, timeout=120
    )


@pytest.fixture
def base(tmp_path, tiny_model):
    config = tmp_path / "job.yaml"
    config.write_text(
        f"run:\n  root: {tmp_path / 'root'}\nmodel:\n  path: {tiny_model}\n"
        "problems:\n  source: arithmetic\n  options: {num_problems: 3}\n"
    )
    return config


def assert_refused(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    error_lines = [line for line in result.stderr.splitlines() if "troop: error:" in line]
    assert len(error_lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in error_lines[0], error_lines[0]


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize(
    "overrides, fragments",
    [
        (["sampling.temprature=0.5"], ["sampling.temprature", "did you mean 'sampling.temperature'"]),
        (["sampling.n=abc"], ["sampling.n", "abc"]),
        (["sampling.n=0"], ["sampling.n", "at least 1"]),
        (["model.path=/nonexistent/model"], ["model.path=/nonexistent/model", "does not exist"]),
        (["verify.verifier=nope"], ["unknown verifier 'nope'", "numeric"]),
        (["problems.source=nope"], ["unknown problems.source 'nope'", "arithmetic"]),
    ],
)
def test_bad_config_is_one_line_and_leaves_no_root(base, tmp_path, overrides, fragments):
    assert_refused(troop("run", str(base), *overrides), *fragments)
    assert not (tmp_path / "root").exists()


def test_missing_config_file(tmp_path):
    assert_refused(troop("run", str(tmp_path / "absent.yaml")), "absent.yaml", "does not exist")


@pytest.mark.parametrize(
    "content, fragments",
    [
        ("not json at all\n", ["line 1 is not valid JSON"]),
        ('{"problem_id": "a", "prompt": "x", "answer": "1"}\n{"prompt": "y", "answer": "2"}\n', ["row 2 has no problem_id"]),
        ('{"problem_id": "a", "prompt": "x", "answer": "1"}\n{"problem_id": "a", "prompt": "y", "answer": "2"}\n', ["duplicate problem_id 'a' at rows 1 and 2"]),
        ('{"problem_id": "a", "prompt": "x"}\n', ["verify.verifier=numeric needs the problem column 'answer'"]),
    ],
)
def test_bad_problem_file(tmp_path, tiny_model, content, fragments):
    path = tmp_path / "problems.jsonl"
    path.write_text(content)
    config = tmp_path / "job.yaml"
    config.write_text(
        f"run:\n  root: {tmp_path / 'root'}\nmodel:\n  path: {tiny_model}\n"
        f"problems:\n  source: jsonl\n  path: {path}\n"
    )
    result = troop("run", str(config))
    assert_refused(result, *fragments)
    assert not (tmp_path / "root").exists()


def test_unwritable_root(base, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert_refused(troop("run", str(base), f"run.root={blocker}/root"), f"run.root={blocker}/root", "not writable")


def test_verify_on_a_root_without_samples(tmp_path):
    assert_refused(troop("verify", str(tmp_path)), "no samples/unit-*.parquet")


def test_resume_with_other_sampling_settings_names_the_keys(base, tmp_path):
    from jobs.config import merge_config
    from jobs.usecases.generate import open_run
    from jobs.store.runinfo import record_run

    store, problems, _ = open_run(merge_config(str(base)))
    record_run(store, merge_config(str(base)), problems)
    result = troop("run", str(base), "sampling.temperature=0.5", "sampling.max_tokens=100")
    assert_refused(result, "sampling.max_tokens: 256 -> 100", "sampling.temperature: 1.0 -> 0.5", "use a new run.root")
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == ["job.yaml", "problems.parquet"]


def test_a_resume_may_raise_n_but_not_lower_it(base, tmp_path):
    from jobs.config import merge_config
    from jobs.usecases.generate import open_run
    from jobs.problems.units import plan_units
    from jobs.store.runinfo import record_run

    config = merge_config(str(base), ["sampling.n=8", "plan.samples_per_unit=32"])
    store, problems, segments = open_run(config)
    assert segments == [(0, 8)]
    record_run(store, config, problems, segments)
    raised = merge_config(str(base), ["sampling.n=20", "plan.samples_per_unit=32", "verify.timeout_s=3"])
    _, _, segments = open_run(raised)
    assert segments == [(0, 8), (8, 20)]
    ids = problems["problem_id"].to_pylist()
    old = {u.unit_id for u in plan_units(ids, 8, 32)}
    new = plan_units(ids, 20, 32, segments)
    assert old <= {u.unit_id for u in new}  # the first 8 samples keep their units
    assert sum(u.num_samples for u in new) == 20 * len(ids)
    assert all(u.sample_start >= 8 for u in new if u.unit_id not in old)
    assert_refused(troop("run", str(base), "sampling.n=4", "plan.samples_per_unit=32"), "holds sampling.n=8", "not lower it to 4")


def test_metrics_on_a_root_whose_verifier_is_null(tmp_path):
    (tmp_path / "job.yaml").write_text("verify:\n  verifier: null\n")
    assert_refused(troop("metrics", str(tmp_path)), "verify.verifier is null", "verify.verifier=numeric")


def test_unreadable_config_file(tmp_path):
    (tmp_path / "folder.yaml").mkdir()
    assert_refused(troop("run", str(tmp_path / "folder.yaml")), "folder.yaml")
    (tmp_path / "broken.yaml").write_text("run: [unclosed\n")
    assert_refused(troop("run", str(tmp_path / "broken.yaml")), "broken.yaml")


@pytest.mark.parametrize(
    "name, content, fragments",
    [
        ("problems.jsonl", '{"problem_id": "a", "answer": "1"}\n', ["no 'prompt' column", "problems.columns.prompt=COLUMN"]),
        ("problems.csv", "problem_id,prompt\na,x\n", ["problems.csv", "is it JSONL?"]),
        ("problems.parquet", "this is not parquet", ["problems.parquet"]),
    ],
)
def test_problem_files_that_are_not_problem_sets(tmp_path, tiny_model, name, content, fragments):
    path = tmp_path / name
    path.write_text(content)
    source = "parquet" if name.endswith(".parquet") else "jsonl"
    config = tmp_path / "job.yaml"
    config.write_text(
        f"run:\n  root: {tmp_path / 'root'}\nmodel:\n  path: {tiny_model}\n"
        f"problems:\n  source: {source}\n  path: {path}\n"
    )
    assert_refused(troop("run", str(config)), *fragments)
    assert not (tmp_path / "root").exists()


def test_the_cli_does_not_load_the_report_writers_until_it_draws():
    """matplotlib is half a second of every command's start: only `troop report` (and `troop
    run`'s report at its end) loads it. `python -m jobs` imports the CLI only when run."""
    code = ("import sys, jobs.__main__, jobs.cli; assert 'jobs.cli.main' not in sys.modules, 'CLI imported'; "
            "import jobs.cli.main; assert 'matplotlib' not in sys.modules, 'matplotlib imported'; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.stdout.strip() == "ok", done.stderr
