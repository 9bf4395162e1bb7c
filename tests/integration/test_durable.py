"""Durable runs: `troop run` killed with SIGKILL while it generates, then run again with the
same config (through the command's own use case, `jobs.usecases.run.run`, on the session's engine),
ends with the pool and verdicts of an uninterrupted run, row for row and text for text; on a
local root and on S3 (a moto server on loopback).

The killed driver runs in its own session. SIGKILL of its process group takes the driver and
the local Ray it started (GCS, raylet, monitors, agents), but not the Ray worker processes:
each sets its own process group, and the generation actor's vLLM EngineCore and Worker and
its multiprocessing resource tracker live in that group. They notice the raylet is gone and
exit by themselves within seconds; until then the generation actor still runs the units
already in its mailbox (jobs.cluster.executor.UNITS_IN_FLIGHT) and writes them, whole. So the test waits
for every process of the killed session to exit before it resumes, and fails naming any that
remain. Left behind: the session's folder under /tmp/ray (logs), which the next run does not
read, and the killed engine's shared-memory segments (/dev/shm/psm_*: a run that ends normally
shuts its engines down, which removes them)."""

import json
import logging
import os
import re
import signal
import time

import pyarrow as pa
import pytest

from jobs.cli.main import main
from processes import start_troop, wait_until_session_ends
from jobs.usecases.run import run
from jobs.config import merge_config
from jobs.usecases.run import generate_and_follow
from jobs.store.root import RunStore
from verifiers import get_verifier

KEY = get_verifier("numeric").key()
PROBLEMS, N, PER_UNIT = 24, 16, 32  # 2 problems per unit: 12 units of 32 samples
UNITS = PROBLEMS * N // PER_UNIT


@pytest.fixture(scope="module")
def config_file(tmp_path_factory, tiny_model) -> str:
    """One config for every run here; its engine is the shared test engine's (integration
    conftest), so the uninterrupted run needs no engine of its own."""
    path = tmp_path_factory.mktemp("durable") / "job.yaml"
    path.write_text(
        f"model: {{path: {tiny_model}, dtype: float32, max_model_len: 256, enforce_eager: true}}\n"
        f"sampling: {{n: {N}, temperature: 1.0, max_tokens: 12}}\n"
        f"problems: {{source: arithmetic, options: {{num_problems: {PROBLEMS}}}}}\n"
        f"plan: {{samples_per_unit: {PER_UNIT}}}\n"
        "verify: {verifier: numeric}\n"
    )
    return str(path)


@pytest.fixture(scope="module")
def reference(pool, config_file, tmp_path_factory) -> RunStore:
    """The uninterrupted run, on the shared engine, with its metrics."""
    root = str(tmp_path_factory.mktemp("reference") / "run")
    generated, verified, _ = generate_and_follow(merge_config(config_file, [f"run.root={root}"]), pool)
    assert (generated.units_total, len(generated.generated), verified.units) == (UNITS, UNITS, UNITS)
    assert main(["metrics", root]) == 0
    return RunStore(root)


def sorted_rows(store: RunStore, folder: str) -> pa.Table:
    units = sorted(store.unit_ids(folder))
    table = pa.concat_tables([store.read_table(store.path(folder, f"unit-{u}.parquet")) for u in units])
    return table.sort_by([("problem_id", "ascending"), ("sample_idx", "ascending")])


def assert_same_pool(store: RunStore, reference: RunStore) -> None:
    for folder in ("samples", f"verdicts/{KEY}"):
        assert store.unit_ids(folder) == reference.unit_ids(folder) and len(store.unit_ids(folder)) == UNITS
        rows, expected = sorted_rows(store, folder), sorted_rows(reference, folder)
        keys = set(zip(rows["problem_id"].to_pylist(), rows["sample_idx"].to_pylist()))
        assert rows.num_rows == len(keys) == PROBLEMS * N
        assert rows.equals(expected), folder
    assert len(set(sorted_rows(store, f"verdicts/{KEY}")["status"].to_pylist())) >= 2  # not a trivial pool


def kill_after_first_unit(args, env, cwd, store: RunStore) -> set[str]:
    """The sample units there when the driver died."""
    log_path = os.path.join(cwd, "killed.log")
    driver = start_troop(args, env, cwd, log_path)
    try:
        deadline = time.monotonic() + 600
        while not store.unit_ids("samples"):
            assert driver.poll() is None, open(log_path).read()[-3000:]
            assert time.monotonic() < deadline, "no unit after 600 s"
            time.sleep(0.05)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    at_kill = store.unit_ids("samples")
    wait_until_session_ends(driver.pid)
    return at_kill


def resume(pool, config_file: str, root: str, storage: list[str], caplog):
    """The same run again to its end, through `troop run`'s own use case (jobs.usecases.run.run) on
    the session's engine (a second engine start would double the test's time); its summary and log."""
    with caplog.at_level(logging.INFO, logger="troop"):
        summary = run(merge_config(config_file, [f"run.root={root}", *storage]), pool)
    summary.check()
    return summary, caplog.text


def killed_and_resumed(store: RunStore, config_file: str, env: dict, cwd, pool, capsys, caplog,
                       storage: list[str] = ()) -> tuple[dict, dict, str]:
    """Kill `troop run` after its first unit, resume it; what was there before the resume
    (unit id -> last modified) and the resumed run's output. `storage`: run.storage_options
    overrides for the resume (the session's actors do not see this test's environment)."""
    env = {k: v for k, v in env.items() if k != "RAY_ADDRESS"}  # a local Ray of its own, as a user gets
    args = ["run", config_file, f"run.root={store.root}"]
    at_kill = kill_after_first_unit(args, env, cwd, store)
    samples_before = {u: store.fs.modified(store.sample_unit(u)) for u in store.unit_ids("samples")}
    verdicts_before = store.unit_ids(f"verdicts/{KEY}")
    assert at_kill <= set(samples_before)  # the actors may land a unit or two after the driver died
    print(f"{store.root}: {len(at_kill)} units at the kill, {len(samples_before)} when the killed run's "
          f"last process had exited, {len(verdicts_before)} with verdicts")
    assert 1 <= len(samples_before) < UNITS, f"the kill came too late to test a resume: {len(samples_before)} units"
    summary, output = resume(pool, config_file, store.root, list(storage), caplog)
    done = len(samples_before)
    assert re.search(rf"run {re.escape(store.root)}: {UNITS} units, {done} already done", output), output[-3000:]
    generated = summary.generated
    assert (len(generated.generated), generated.units_total, generated.units_skipped) == (UNITS - done, UNITS, done)
    assert (summary.verified.units, summary.verified.verifier_key) == (UNITS - len(verdicts_before), KEY)
    for unit, modified in samples_before.items():  # skipped, not written again
        assert store.fs.modified(store.sample_unit(unit)) == modified
    return samples_before, verdicts_before, output


def test_killed_run_resumes_to_the_uninterrupted_pool(reference, pool, config_file, tmp_path, capsys, caplog):
    store = RunStore(str(tmp_path / "run"))
    killed_and_resumed(store, config_file, dict(os.environ), tmp_path, pool, capsys, caplog)
    assert_same_pool(store, reference)
    assert [p for p in store.fs.find(store.path()) if "/.tmp-" in p] == []
    assert json.loads(store.read_text(store.metrics_json)) == json.loads(reference.read_text(reference.metrics_json))
    assert store.exists(store.path("report", "index.html"))


def test_killed_run_on_s3_resumes_and_the_root_commands_work(
    reference, pool, config_file, tmp_path, s3_bucket, s3_endpoint, monkeypatch, capsys, caplog
):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)  # here, and for the killed run and its actors
    store = RunStore(f"s3://{s3_bucket}/run")
    # The session's actors started before this test set the endpoint and credentials: the resume
    # names them in run.storage_options, which travel with the store to every actor.
    storage = [f"run.storage_options.endpoint_url={s3_endpoint}", f"run.storage_options.key={os.environ['AWS_ACCESS_KEY_ID']}",
               f"run.storage_options.secret={os.environ['AWS_SECRET_ACCESS_KEY']}"]
    killed_and_resumed(store, config_file, dict(os.environ), tmp_path, pool, capsys, caplog, storage)
    assert_same_pool(store, reference)
    assert [p for p in store.fs.find(store.path()) if "/.tmp-" in p] == []

    capsys.readouterr()
    assert main(["verify", store.root]) == 0
    assert "verified 0 units" in capsys.readouterr().out
    store.fs.rm(store.metrics_json)
    assert main(["metrics", store.root]) == 0
    assert json.loads(store.read_text(store.metrics_json)) == json.loads(reference.read_text(reference.metrics_json))
    store.fs.rm(store.path("report"), recursive=True)  # troop run wrote one: the command writes it again
    assert main(["report", store.root]) == 0
    assert store.exists(store.path("report", "index.html")) and store.exists(store.path("report", "coverage.png"))
