"""Failures during generation: a generation actor's process killed mid-run, a unit that kills
every worker it meets, a unit whose task raises, prompts the engine refuses. Workers without
an engine (Ray only) where the engine is beside the point; the real CPU engine otherwise."""

import os
import signal
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.stages.generation import GenerationWorker, UnitStats, UnitTask
from jobs.store.failures import read_failures
from jobs.usecases.generate import generate
from jobs.problems.units import WorkUnit
from jobs.cluster.pools import generation_pool
from jobs.store.root import RunStore
from workers.engine import EngineSpec
from workers.sampling import SamplingSpec


def tasks_for(store: RunStore, count: int) -> list[UnitTask]:
    units = [WorkUnit(f"u{i}", i, (f"p{i}",), 0, 1) for i in range(count)]
    return [UnitTask(store, unit, SamplingSpec(), 0) for unit in units]


def scripted(base: type, marker_dir: str, result):
    """A worker class without an engine or checker whose fate per unit is read from files: a
    unit named in `die-<unit>` kills its process, in `die-once-<unit>` the first time only, in
    `raise-<unit>` raises; else it returns result(unit). Built in a function so that Ray ships
    the class by value."""

    class Scripted(base):
        def __init__(self, *args):
            self.engine = None

        def run_unit(self, task):
            unit = task.unit_id if hasattr(task, "unit_id") else task.unit.unit_id
            once = os.path.join(marker_dir, f"die-once-{unit}")
            if os.path.exists(os.path.join(marker_dir, f"die-{unit}")):
                os._exit(1)
            if os.path.exists(once):
                os.remove(once)
                os._exit(1)
            if os.path.exists(os.path.join(marker_dir, f"raise-{unit}")):
                raise RuntimeError(f"scripted failure of {unit}")
            return result(unit)

    return Scripted


@pytest.fixture
def scripted_pool(ray_session, tmp_path):
    def make(retries: int = 2, workers: int = 2):
        # A sliver of a CPU each: the session's engine actor may hold one of the two.
        return generation_pool(EngineSpec(model="scripted"), num_workers=workers, cpus_per_worker=0.01,
                              max_unit_retries=retries,
                              worker_class=scripted(GenerationWorker, str(tmp_path), lambda unit: UnitStats(unit, 1, 1, 0.0)))

    return make


def test_a_unit_that_kills_every_worker_fails_alone_after_its_retries(scripted_pool, tmp_path):
    (tmp_path / "die-u3").touch()
    with scripted_pool(retries=2) as pool:
        result = pool.run(tasks_for(RunStore(str(tmp_path / "run")), 8), lambda stats: None)
        assert sorted(s.unit_id for s in result.finished) == [f"u{i}" for i in range(8) if i != 3]
        assert list(result.failed) == ["u3"] and result.failed["u3"][0] == "worker_died"
        assert len(pool.actors) == 2  # every dead worker was replaced


def test_a_worker_killed_once_costs_only_a_retry(scripted_pool, tmp_path):
    (tmp_path / "die-once-u1").touch()
    with scripted_pool(retries=1, workers=1) as pool:
        result = pool.run(tasks_for(RunStore(str(tmp_path / "run")), 4), lambda stats: None)
    assert sorted(s.unit_id for s in result.finished) == ["u0", "u1", "u2", "u3"] and result.failed == {}


def test_a_unit_whose_task_raises_is_retried_then_failed_with_the_reason(scripted_pool, tmp_path):
    (tmp_path / "raise-u0").touch()
    with scripted_pool(retries=1) as pool:
        result = pool.run(tasks_for(RunStore(str(tmp_path / "run")), 3), lambda stats: None)
    assert result.failed == {"u0": ("error", "RuntimeError: scripted failure of u0")}
    assert sorted(s.unit_id for s in result.finished) == ["u1", "u2"]


def read_samples(root) -> pa.Table:
    table = pq.read_table(os.path.join(root, "samples"))
    return table.sort_by([("problem_id", "ascending"), ("sample_idx", "ascending")])


def test_killing_a_generation_actor_mid_run_loses_nothing(make_config, pool):
    settings = ("problems.options.num_problems=40", "sampling.n=8", "plan.samples_per_unit=16")
    reference = make_config("reference", *settings)
    generate(reference, pool=pool)
    config = make_config("killed", *settings)
    [victim] = pool.worker_pids()  # the session's worker: the pool replaces it for the next tests
    samples = os.path.join(config.run.root, "samples")

    def kill_after_first_unit():
        while not (os.path.isdir(samples) and any(n.endswith(".parquet") for n in os.listdir(samples))):
            time.sleep(0.05)
        os.kill(victim, signal.SIGKILL)

    killer = threading.Thread(target=kill_after_first_unit)
    killer.start()
    summary = generate(config, pool=pool)
    killer.join()
    assert pool.worker_pids() != [victim]  # a new worker took its place
    assert summary.failed == {} and len(summary.generated) == 20
    table = read_samples(config.run.root)
    assert table.num_rows == 40 * 8
    assert len(set(zip(table["problem_id"].to_pylist(), table["sample_idx"].to_pylist()))) == 40 * 8
    assert table.equals(read_samples(reference.run.root))


def test_prompts_the_engine_refuses_are_recorded_and_the_rest_sampled(pool, make_config, tmp_path):
    import json

    problems = tmp_path / "problems.jsonl"
    rows = [{"problem_id": "ok-1", "prompt": "1+1="}, {"problem_id": "long", "prompt": "1+1= " * 400},
            {"problem_id": "ok-2", "prompt": "2+3="}]
    problems.write_text("".join(json.dumps(r) + "\n" for r in rows))
    source = ("problems.source=jsonl", f"problems.path={problems}", "sampling.n=4", "plan.samples_per_unit=12")
    config = make_config("refused", *source)
    summary = generate(config, pool=pool)
    assert (summary.rejected, summary.samples, summary.failed) == (1, 8, {})
    table = read_samples(config.run.root)
    assert sorted(set(table["problem_id"].to_pylist())) == ["ok-1", "ok-2"]
    failures = read_failures(RunStore(config.run.root)).to_pylist()
    assert [(f["problem_id"], f["status"]) for f in failures] == [("long", "prompt_too_long")]
    assert "model.max_model_len is 256" in failures[0]["reason"]
    # The others' samples are those of a run without the refused problem (seeds are per problem).
    problems.write_text("".join(json.dumps(r) + "\n" for r in rows if r["problem_id"] != "long"))
    alone = make_config("alone", *source)
    generate(alone, pool=pool)
    assert table.equals(read_samples(alone.run.root))


def test_a_dead_verification_worker_is_replaced_and_its_unit_redone(ray_session, tmp_path):
    from jobs.stages.verification import VerifyStats, VerifyTask, VerifyWorker
    from jobs.cluster.pools import verification_pool

    worker = scripted(VerifyWorker, str(tmp_path), lambda unit: VerifyStats(unit, 1, 1, {"pass": 1}, 1))
    (tmp_path / "die-once-u1").touch()
    (tmp_path / "die-u2").touch()
    store = RunStore(str(tmp_path / "run"))
    tasks = [VerifyTask(store, f"u{i}", "numeric", None) for i in range(4)]
    done = []
    with verification_pool(workers=1, worker_class=worker) as pool:
        failed = pool.run(tasks, lambda stats: done.append(stats.unit_id)).failed
    assert sorted(done) == ["u0", "u1", "u3"]
    assert list(failed) == ["u2"] and failed["u2"][0] == "worker_died"
