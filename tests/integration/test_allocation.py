"""Adaptive allocation end to end on the CPU engine, with the demo model (it solves about a
third of its arithmetic questions per sample, so decisions have something to decide): a
problem's samples stop at the round where it is solved, budgets hold, the same command gives
the same pool, an adaptive run's samples are a prefix of the uniform run's, and a SIGKILLed
adaptive run resumes to the pool of an uninterrupted one.

The demo model gets one engine for the module (half a CPU, so that verification has room
beside the session's engine)."""

import json
import math
import os
from pathlib import Path

import pyarrow as pa
import pytest

from jobs.allocate import leader_confidence
from jobs.cluster.pools import generation_pool
from jobs.config import merge_config
from jobs.stages.generation import engine_spec
from jobs.store.root import RunStore
from jobs.usecases.run import run
from processes import kill_when, start_troop
from verifiers import get_verifier

REPO = Path(__file__).resolve().parents[2]
KEY = get_verifier("numeric").key()
PROBLEMS, CAP, FIRST, STEP = 30, 32, 4, 4


def demo_config(root, *overrides: str):
    return merge_config(str(REPO / "conf" / "demo.yaml"), [
        f"run.root={root}", f"model.path={REPO / 'demo' / 'model'}", "score.model=null", f"sampling.n={CAP}",
        f"problems.options.num_problems={PROBLEMS}", "plan.samples_per_unit=64", f"allocate.first={FIRST}",
        *overrides])


@pytest.fixture(scope="module")
def demo_pool(ray_session, tmp_path_factory):
    spec = engine_spec(demo_config(tmp_path_factory.mktemp("spec")))
    with generation_pool(spec, num_workers=1, cpus_per_worker=0.5) as shared:
        yield shared


def rows(store: RunStore, folder: str) -> pa.Table:
    tables = [store.read_table(store.path(folder, f"unit-{u}.parquet")) for u in sorted(store.unit_ids(folder))]
    return pa.concat_tables(tables).sort_by([("problem_id", "ascending"), ("sample_idx", "ascending")])


def per_problem(store: RunStore) -> dict[str, dict]:
    """problem id -> samples drawn, first passing index, answers in sample order."""
    out: dict[str, dict] = {}
    for r in rows(store, f"verdicts/{KEY}").to_pylist():
        p = out.setdefault(r["problem_id"], {"n": 0, "first_pass": None, "answers": []})
        assert r["sample_idx"] == p["n"]  # a contiguous prefix 0..n-1, each sample once
        p["n"] += 1
        p["answers"].append(r["answer"])
        if r["passed"] and p["first_pass"] is None:
            p["first_pass"] = r["sample_idx"]
    return out


def last_unit_starts(store: RunStore) -> dict[str, int]:
    """problem id -> where its last unit's samples start (a unit id ends in -sSTART-END)."""
    starts: dict[str, int] = {}
    for unit in store.unit_ids("samples"):
        start = int(unit.split("-s")[1].split("-")[0])
        for pid in set(store.read_table(store.sample_unit(unit), columns=["problem_id"])["problem_id"].to_pylist()):
            starts[pid] = max(starts.get(pid, 0), start)
    return starts


def block_end(index: int) -> int:
    """The end of the round that drew sample `index`: round 1 is [0, FIRST), then blocks of STEP."""
    return FIRST if index < FIRST else FIRST + STEP * math.ceil((index + 1 - FIRST) / STEP)


@pytest.fixture(scope="module")
def until_solved(demo_pool, tmp_path_factory) -> RunStore:
    root = tmp_path_factory.mktemp("until") / "run"
    summary = run(demo_config(root, "allocate.policy=until_solved"), demo_pool)
    summary.check()
    assert summary.allocation.finished and summary.allocation.policy == "until_solved"
    return RunStore(str(root))


@pytest.fixture(scope="module")
def uniform(demo_pool, tmp_path_factory) -> RunStore:
    root = tmp_path_factory.mktemp("uniform") / "run"
    run(demo_config(root), demo_pool).check()
    return RunStore(str(root))


def test_until_solved_stops_each_problem_in_the_round_it_is_solved(until_solved):
    problems = per_problem(until_solved)
    assert len(problems) == PROBLEMS
    solved = [p for p in problems.values() if p["first_pass"] is not None]
    assert 0 < len(solved) < PROBLEMS or all(p["n"] < CAP for p in problems.values())
    for p in problems.values():
        assert p["n"] == (block_end(p["first_pass"]) if p["first_pass"] is not None else CAP)
    spent = sum(p["n"] for p in problems.values())
    allocation = json.loads(until_solved.read_text(until_solved.metrics_json))["allocation"]
    assert (allocation["policy"], allocation["samples_spent"], allocation["problems_solved"]) == ("until_solved", spent, len(solved))
    assert allocation["budget"] == PROBLEMS * CAP and spent < PROBLEMS * CAP
    assert allocation["solved_vs_samples"][-1] == {"samples_spent": spent, "problems_solved": len(solved)}
    assert allocation["problems_open"] == 0 and allocation["finished"] is True


def test_the_same_command_gives_the_same_pool(until_solved, demo_pool, tmp_path):
    again = RunStore(str(tmp_path / "again"))
    run(demo_config(again.root, "allocate.policy=until_solved"), demo_pool).check()
    for folder in ("samples", f"verdicts/{KEY}"):
        assert again.unit_ids(folder) == until_solved.unit_ids(folder)
        assert rows(again, folder).equals(rows(until_solved, folder))


def test_an_adaptive_pool_is_a_prefix_of_the_uniform_pool(until_solved, uniform):
    adaptive, full = rows(until_solved, "samples"), rows(uniform, "samples")
    assert full.num_rows == PROBLEMS * CAP
    drawn = {pid: p["n"] for pid, p in per_problem(until_solved).items()}
    keep = [r for r in full.to_pylist() if r["sample_idx"] < drawn[r["problem_id"]]]
    assert adaptive.to_pylist() == keep


@pytest.mark.parametrize("policy, budget", [("until_solved", PROBLEMS * FIRST + 50), ("coverage", PROBLEMS * FIRST + 90)])
def test_a_tight_budget_is_never_exceeded(policy, budget, demo_pool, tmp_path):
    store = RunStore(str(tmp_path / "run"))
    summary = run(demo_config(store.root, f"allocate.policy={policy}", f"allocate.budget={budget}"), demo_pool)
    summary.check()
    problems = per_problem(store)
    spent = sum(p["n"] for p in problems.values())
    assert spent <= budget and summary.generated.samples == spent
    if policy == "until_solved":  # every unsolved problem wanted more: the budget is spent to the sample
        assert spent == budget and any(p["first_pass"] is None and p["n"] < CAP for p in problems.values())
    starts = last_unit_starts(store)
    for pid, p in problems.items():  # nothing drawn after the unit of its first pass
        assert p["first_pass"] is None or p["first_pass"] >= starts[pid]


def test_confidence_stops_once_the_vote_is_settled(demo_pool, tmp_path):
    store = RunStore(str(tmp_path / "run"))
    run(demo_config(store.root, "allocate.policy=confidence", "allocate.step=2"), demo_pool).check()
    for p in per_problem(store).values():
        votes = lambda answers: {a: answers.count(a) for a in set(answers) if a is not None}  # noqa: E731
        settled = leader_confidence(votes(p["answers"])) >= 0.95
        assert settled or p["n"] == CAP
        if p["n"] > FIRST:  # it went on because the vote before its last round was open
            assert leader_confidence(votes(p["answers"][:p["n"] - 2])) < 0.95


@pytest.mark.slow
def test_a_killed_adaptive_run_resumes_to_the_same_pool(until_solved, demo_pool, tmp_path):
    """`troop run` SIGKILLed once a unit of round 2 has landed (decisions were being taken),
    then the same command again (its use case, on the module's engine), ends with the samples
    and verdicts of the uninterrupted run."""
    store = RunStore(str(tmp_path / "run"))
    config_file = tmp_path / "job.yaml"
    config_file.write_text(open(REPO / "conf" / "demo.yaml").read())
    overrides = [f"run.root={store.root}", f"model.path={REPO / 'demo' / 'model'}", "score.model=null",
                 f"sampling.n={CAP}", f"problems.options.num_problems={PROBLEMS}", "plan.samples_per_unit=64",
                 f"allocate.first={FIRST}", "allocate.policy=until_solved"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    driver = start_troop(["run", str(config_file), *overrides], env, tmp_path, tmp_path / "killed.log")
    kill_when(driver, lambda: any(u.startswith("r002") for u in store.unit_ids("samples")), tmp_path / "killed.log",
              "round-2 unit")
    before = store.unit_ids("samples")
    assert before < until_solved.unit_ids("samples"), "the kill came too late to test a resume"
    summary = run(merge_config(str(config_file), overrides), demo_pool)
    summary.check()
    assert summary.generated.units_skipped == len(before)
    for folder in ("samples", f"verdicts/{KEY}"):
        assert store.unit_ids(folder) == until_solved.unit_ids(folder)
        assert rows(store, folder).equals(rows(until_solved, folder))
