"""`troop sweep` with the CPU engine: a 2 x 2 grid loads the model once, each point holds exactly
the samples of the same point run alone, a rerun skips finished points without starting an
engine, a lost unit is regenerated on resume, and `troop report SWEEP_ROOT` compares the points.

The sweep runs as a subprocess with its own local Ray, as a user runs it; the points run alone,
and the rerun, use the session's shared engine (the same engine settings), so they cost no
engine start."""

import os
import subprocess
import sys

import pyarrow as pa
import pytest

from jobs.config import merge_config
from jobs.usecases.generate import generate
from jobs.store.root import RunStore
from doubles import SessionPool
from jobs.store.sweep_root import read_sweep_points
from jobs.usecases.sweep import load_sweep
from verifiers import get_verifier

KEY = get_verifier("numeric").key()
PROBLEMS = 6
AXES = ["sampling.temperature=0.6,1.0", "sampling.n=4,8"]
NAMES = ["temperature=0.6,n=4", "temperature=0.6,n=8", "temperature=1.0,n=4", "temperature=1.0,n=8"]
ENGINE_LINE = "starting 1 generation worker(s)"


@pytest.fixture(scope="module")
def config_file(tmp_path_factory, tiny_model) -> str:
    folder = tmp_path_factory.mktemp("sweep")
    path = folder / "sweep.yaml"
    path.write_text(
        f"run: {{root: {folder / 'grid'}}}\n"
        f"model: {{path: {tiny_model}, dtype: float32, max_model_len: 256, enforce_eager: true}}\n"
        "sampling: {max_tokens: 12}\n"
        f"problems: {{source: arithmetic, options: {{num_problems: {PROBLEMS}}}}}\n"
        "plan: {samples_per_unit: 16}\n"
        "verify: {verifier: numeric}\n"
    )
    return str(path)


def troop(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a local Ray of its own
    return subprocess.run([sys.executable, "-m", "jobs", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def rows(store: RunStore, folder: str) -> pa.Table:
    units = sorted(store.unit_ids(folder))
    table = pa.concat_tables([store.read_table(store.path(folder, f"unit-{u}.parquet")) for u in units])
    return table.sort_by([("problem_id", "ascending"), ("sample_idx", "ascending")])


@pytest.fixture(scope="module")
def swept(config_file, tmp_path_factory):
    result = troop("sweep", config_file, *AXES, cwd=tmp_path_factory.mktemp("cwd"))
    assert result.returncode == 0, result.stderr[-3000:]
    return load_sweep(config_file, AXES), result


def test_a_two_by_two_sweep_loads_the_model_once(swept):
    sweep, result = swept
    assert result.stderr.count(ENGINE_LINE) == 1, result.stderr[-3000:]
    assert "4 point(s) run, 0 already done, 0 failed; 1 engine start(s) in 1 pool(s)" in result.stdout
    assert [p["name"] for p in read_sweep_points(sweep.store)] == NAMES
    for point in sweep.points:
        store = RunStore(point.config.run.root)
        assert store.exists(store.metrics_json) and store.exists(store.path("report", "index.html"))


def test_each_point_equals_the_point_run_alone(swept, pool, tmp_path):
    sweep, _ = swept
    for point in sweep.points:
        alone_root = str(tmp_path / point.name)
        config = merge_config(sweep.config_path, [*point_overrides(point), f"run.root={alone_root}"])
        generate(config, pool)
        store, alone = RunStore(point.config.run.root), RunStore(alone_root)
        got = rows(store, "samples")
        assert got.num_rows == PROBLEMS * point.config.sampling.n
        assert got.equals(rows(alone, "samples")), point.name
        verdicts = rows(store, f"verdicts/{KEY}")
        assert verdicts["sample_idx"].to_pylist() == got["sample_idx"].to_pylist()
    # The points differ from each other: the sweep did not run one point four times.
    texts = {p.name: rows(RunStore(p.config.run.root), "samples")["text"].to_pylist() for p in sweep.points}
    assert texts[NAMES[0]] != texts[NAMES[2]][: len(texts[NAMES[0]])]


def point_overrides(point) -> list[str]:
    return [f"{key}={value}" for key, value in point.values.items()]


def test_the_sweep_report_compares_the_points(swept, config_file, tmp_path):
    sweep, result = swept
    for name in NAMES:
        assert name in result.stdout
    assert "pass@4" in result.stdout  # the largest k all four points measured
    page = open(sweep.store.path("report", "index.html")).read()
    assert "<h2>Sweep points</h2>" in page and all(name in page for name in NAMES)
    rerun = troop("report", sweep.root, "--out", str(tmp_path / "again"), cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert sorted(os.listdir(tmp_path / "again")) == sorted(os.listdir(sweep.store.path("report")))


def test_a_rerun_skips_finished_points_and_regenerates_a_lost_unit(swept, pool):
    """The rerun goes through `troop sweep`'s own code in this process, on the session's engine
    (a second engine start would double the test's time); the sweep's pool count is its own."""
    from jobs.cluster.pools import Cluster
    from jobs.usecases import sweep_run

    sweep, _ = swept
    lost = RunStore(sweep.points[3].config.run.root)
    unit = sorted(lost.unit_ids("samples"))[-1]
    before = lost.read_table(lost.sample_unit(unit))
    others = {p.name: os.path.getmtime(RunStore(p.config.run.root).metrics_json) for p in sweep.points[:3]}
    os.remove(lost.sample_unit(unit))
    os.remove(lost.verdict_unit(KEY, unit))
    session = SessionPool(pool)
    cluster = Cluster(connect=lambda *args: None, generation=session.start)
    summary = sweep_run.run_sweep(load_sweep(sweep.config_path, AXES), cluster=cluster)
    assert (summary.ran, summary.skipped, summary.failed) == ([NAMES[3]], NAMES[:3], {})
    assert session.started == summary.pools_started == 1
    assert lost.read_table(lost.sample_unit(unit)).equals(before)
    assert {p.name: os.path.getmtime(RunStore(p.config.run.root).metrics_json) for p in sweep.points[:3]} == others
    again = sweep_run.run_sweep(load_sweep(sweep.config_path, AXES), cluster=cluster)
    assert (again.ran, again.skipped, again.pools_started, session.started) == ([], NAMES, 0, 1)
