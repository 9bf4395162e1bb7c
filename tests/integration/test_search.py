"""Step-level search end to end on the CPU engines, with the session's tiny random policy and a
tiny random PRM in one actor: N trajectories per problem, a tree file that matches the samples
and scores, the same trees from the same config, a SIGKILLed run that resumes to the same
result, and a separator the policy never writes refused before anything is written.

The random policy writes spaces often and "\\n\\n" never: the tests search with steps that end
at a space."""

import os

import pyarrow as pa
import pytest

from jobs.cluster.pools import search_pool
from jobs.config import merge_config
from jobs.errors import ConfigError
from jobs.stages.scoring import scorer_key
from jobs.stages.search import search_engines
from jobs.store.root import RunStore
from jobs.usecases.run import run
from processes import kill_when, start_troop
from verifiers import get_verifier

WIDTH, PROBLEMS, MAX_STEPS = 4, 6, 3
KEY = get_verifier("numeric").key()


def overrides(root, tiny_model, prm, *more: str) -> list[str]:
    return [f"run.root={root}", f"model.path={tiny_model}", "model.dtype=float32", "model.max_model_len=256",
            "model.enforce_eager=true", "problems.source=arithmetic", f"problems.options.num_problems={PROBLEMS}",
            "sampling.max_tokens=12", "plan.samples_per_unit=8", f"score.model={prm}", "score.kind=process",
            "score.dtype=float32", "score.max_model_len=256", "score.enforce_eager=true", "strategy.kind=beam",
            f"strategy.width={WIDTH}", "strategy.beam=2", f"strategy.max_steps={MAX_STEPS}",
            "strategy.step_separator=' '", *more]


@pytest.fixture(scope="module")
def models(tiny_model, reward_models):
    return tiny_model, reward_models["prm"]


@pytest.fixture(scope="module")
def engines(ray_session, models, tmp_path_factory):
    config = merge_config(None, overrides(tmp_path_factory.mktemp("spec"), *models))
    with search_pool(search_engines(config), num_workers=1, cpus_per_worker=0.5) as shared:
        yield shared


def search_run(engines, models, root, *more: str) -> RunStore:
    run(merge_config(None, overrides(root, *models, *more)), engines).check()
    return RunStore(str(root))


@pytest.fixture(scope="module")
def beam(engines, models, tmp_path_factory) -> RunStore:
    return search_run(engines, models, tmp_path_factory.mktemp("beam") / "run")


def rows(store: RunStore, folder: str, keys=("problem_id", "sample_idx")) -> pa.Table:
    tables = [store.read_table(store.path(folder, f"unit-{u}.parquet")) for u in sorted(store.unit_ids(folder))]
    return pa.concat_tables(tables).sort_by([(k, "ascending") for k in keys])


def tree_of(store: RunStore) -> dict:
    return {(r["problem_id"], r["node"]): r for r in rows(store, "search", ("problem_id", "step", "node")).to_pylist()}


def path_nodes(tree: dict, problem_id: str, node: str) -> list[dict]:
    parts = node.split(".")
    return [tree[(problem_id, ".".join(parts[:i]))] for i in range(2, len(parts) + 1)]


def test_every_problem_gets_n_trajectories_that_the_tree_and_the_scores_explain(beam, models):
    samples = rows(beam, "samples").to_pylist()
    assert len(samples) == PROBLEMS * WIDTH
    assert sorted({s["problem_id"] for s in samples}) == [f"arithmetic-{i:05d}" for i in range(PROBLEMS)]
    for pid in {s["problem_id"] for s in samples}:
        assert [s["sample_idx"] for s in samples if s["problem_id"] == pid] == list(range(WIDTH))
    tree = tree_of(beam)
    key = scorer_key(merge_config(None, overrides(beam.root, *models)).score)
    scores = {(r["problem_id"], r["sample_idx"]): r for r in rows(beam, f"scores/{key}").to_pylist()}
    for s in samples:
        (node,) = [r for r in tree.values() if r["problem_id"] == s["problem_id"] and s["sample_idx"] in r["sample_idx"]]
        assert node["status"] == "finished" and node["finish_reason"] == s["finish_reason"]
        path = path_nodes(tree, s["problem_id"], node["node"])
        assert "".join(n["text"] for n in path) == s["text"]
        assert sum(n["num_tokens"] for n in path) == s["num_tokens"]
        assert node["seed"] == s["seed"] and len(path) <= MAX_STEPS
        assert all(n["status"] == "kept" for n in path[:-1])
        score = scores[(s["problem_id"], s["sample_idx"])]
        assert score["step_rewards"][-1] == pytest.approx(node["step_reward"], abs=1e-6)
        assert score["reward"] == pytest.approx(node["score"], abs=1e-6)  # score.aggregate=last, no lookahead
    for pid in {s["problem_id"] for s in samples}:  # sample 0 is the best-scored trajectory
        rewards = [scores[(pid, i)]["reward"] for i in range(WIDTH)]
        assert rewards[0] == max(rewards)


def test_each_step_makes_n_children_per_problem_and_keeps_at_most_m(beam):
    tree = tree_of(beam)
    for pid in {p for p, _ in tree}:
        for step in range(1, MAX_STEPS + 1):
            made = [r for r in tree.values() if r["problem_id"] == pid and r["step"] == step]
            kept_before = [r for r in tree.values() if r["problem_id"] == pid and r["step"] == step - 1 and r["status"] == "kept"]
            if step == 1 or kept_before:
                assert len(made) == WIDTH
                assert {r["parent"] for r in made} == ({"0"} if step == 1 else {r["node"] for r in kept_before})
            else:
                assert made == []
            assert sum(r["status"] == "kept" for r in made) <= 2


def test_the_samples_are_verified_and_measured_as_any_run(beam):
    verdicts = rows(beam, f"verdicts/{KEY}")
    assert verdicts.num_rows == PROBLEMS * WIDTH
    assert beam.exists(beam.metrics_json)


def test_the_same_config_gives_the_same_trees(beam, engines, models, tmp_path):
    again = search_run(engines, models, tmp_path / "again")
    for folder in ("samples", "search"):
        keys = ("problem_id", "sample_idx") if folder == "samples" else ("problem_id", "step", "node")
        assert rows(again, folder, keys).equals(rows(beam, folder, keys))


def test_dvts_runs_n_over_m_subtrees_each_with_its_share(engines, models, tmp_path):
    store = search_run(engines, models, tmp_path / "dvts", "strategy.kind=dvts")
    tree = tree_of(store)
    for pid in {p for p, _ in tree}:
        nodes = [r for r in tree.values() if r["problem_id"] == pid]
        assert {r["group"] for r in nodes} == {0, 1}  # N/M = 2 subtrees
        assert sorted(r["parent"] for r in nodes if r["step"] == 1) == ["0", "0", "1", "1"]  # M = 2 children each
        for group in (0, 1):
            assert sum(len(r["sample_idx"]) for r in nodes if r["group"] == group) == 2
            for step in range(1, MAX_STEPS + 1):
                assert sum(r["status"] == "kept" for r in nodes if r["group"] == group and r["step"] == step) <= 1


def test_a_separator_the_policy_never_writes_is_refused_before_anything_is_written(engines, models, tmp_path):
    root = tmp_path / "never"
    with pytest.raises(ConfigError, match=r"strategy.step_separator='@@@' never occurred in the first step"):
        run(merge_config(None, overrides(root, *models, "strategy.step_separator='@@@'")), engines)
    assert not root.exists() or list(root.rglob("*")) == []


@pytest.mark.slow
def test_a_killed_search_resumes_to_the_same_result(engines, models, tmp_path):
    """`troop run` SIGKILLed once its first unit has landed, then the same config again (its use
    case, on the module's engines), ends with the uninterrupted run's samples, scores and tree."""
    many = ("problems.options.num_problems=40", "plan.samples_per_unit=4")  # 40 units: the kill lands among them
    whole = search_run(engines, models, tmp_path / "whole", *many)
    store = RunStore(str(tmp_path / "run"))
    args = overrides(store.root, *models, *many)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    config_file = tmp_path / "search.yaml"
    config_file.write_text("run: {seed: 0}\n")
    driver = start_troop(["run", str(config_file), *args], env, tmp_path, tmp_path / "killed.log")
    kill_when(driver, lambda: store.unit_ids("samples"), tmp_path / "killed.log", "unit")
    before = store.unit_ids("samples")
    assert before < whole.unit_ids("samples"), "the kill came too late to test a resume"
    summary = run(merge_config(None, args), engines)
    summary.check()
    assert summary.generated.units_skipped == len(before)
    key = scorer_key(merge_config(None, args).score)
    for folder, keys in (("samples", ("problem_id", "sample_idx")), (f"scores/{key}", ("problem_id", "sample_idx")),
                         ("search", ("problem_id", "step", "node"))):
        assert rows(store, folder, keys).equals(rows(whole, folder, keys))
