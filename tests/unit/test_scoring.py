"""The scoring stage and `troop score` without a model: a `FakeRewardEngine` stands in for vLLM
(tests/integration/test_score_pool.py runs the real pooling engine). One score file per unit with
the scores contract, identical completions scored once, incremental reruns, a second reward
model beside the first, over-long completions, and the one-line errors."""

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from doubles import FakeRewardEngine, fake_scoring_cluster
from jobs.cli.main import main
from jobs.config import ScoreConfig
from jobs.stages.scoring import SCORES_SCHEMA, score_rows, scorer_key
from jobs.store.root import RunStore
from workers.reward import RewardSpec
from workers.samples import SAMPLES_SCHEMA

PROMPTS = {"p0": "What is 1 + 1?", "p1": "What is 2 + 3?", "p2": "What is 9 - 4?"}
# unit -> rows (problem_id, sample_idx, text); "2\n\nso 2" twice in u0: one check
UNITS = {
    "u0": [("p0", 0, "2\n\nso 2"), ("p0", 1, "2\n\nso 2"), ("p1", 0, "5"), ("p1", 1, "six and then some")],
    "u1": [("p2", 0, "5"), ("p2", 1, "x" * 40), ("p2", 2, "4\n\nno\n\n5")],
}


def write_run(root) -> RunStore:
    store = RunStore(str(root))
    store.write_table(store.problems, pa.table({"problem_id": list(PROMPTS), "prompt": list(PROMPTS.values()),
                                                "answer": ["2", "5", "5"]}))
    for unit, rows in UNITS.items():
        table = pa.table({"problem_id": [r[0] for r in rows], "sample_idx": [r[1] for r in rows], "text": [r[2] for r in rows],
                          "num_tokens": [len(r[2]) for r in rows], "cumulative_logprob": [-1.0] * len(rows),
                          "finish_reason": ["stop"] * len(rows), "seed": [0] * len(rows)}, schema=SAMPLES_SCHEMA)
        store.write_table(store.sample_unit(unit), table, SAMPLES_SCHEMA)
    return store


def reward_model(folder, architecture="LlamaForSequenceClassification", **config) -> str:
    """A model folder whose config.json names `architecture` (all the driver's checks read)."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as handle:
        json.dump({"architectures": [architecture], "num_labels": 1, **config}, handle)
    return str(folder)


@pytest.fixture
def run(tmp_path):
    return write_run(tmp_path / "run")


def test_identical_completions_are_scored_once_and_rows_keep_their_order():
    samples = pa.table({"problem_id": ["a", "a", "b"], "sample_idx": [0, 1, 0], "text": ["yes", "yes", "no"]})
    engine = FakeRewardEngine(RewardSpec(model="m", max_model_len=100))
    table = score_rows(samples, {"a": "Q?", "b": "R?"}, engine, "last")
    assert engine.calls == [[("Q?", "yes"), ("R?", "no")]]
    assert table.schema == SCORES_SCHEMA
    assert table.to_pylist() == [
        {"problem_id": "a", "sample_idx": 0, "reward": 2.8, "step_rewards": None, "detail": None, "num_tokens": 5},
        {"problem_id": "a", "sample_idx": 1, "reward": 2.8, "step_rewards": None, "detail": None, "num_tokens": 5},
        {"problem_id": "b", "sample_idx": 0, "reward": 1.8, "step_rewards": None, "detail": None, "num_tokens": 4},
    ]


@pytest.mark.parametrize("how, expected", [("last", 2 / 3), ("min", 0.5), ("prod", 0.5 * 3 / 4 * 2 / 3), ("mean", (0.5 + 0.75 + 2 / 3) / 3)])
def test_a_process_reward_aggregates_the_step_rewards(how, expected):
    samples = pa.table({"problem_id": ["a"], "sample_idx": [0], "text": ["1\n\n123\n\n12"]})
    engine = FakeRewardEngine(RewardSpec(model="m", kind="process", max_model_len=100))
    [row] = score_rows(samples, {"a": "Q"}, engine, how).to_pylist()
    assert row["step_rewards"] == [0.5, 0.75, 2 / 3]
    assert row["reward"] == pytest.approx(expected, abs=1e-15)


def test_the_scorer_key_names_the_model_and_changes_with_what_changes_scores(tmp_path):
    model = reward_model(tmp_path / "My ORM")
    base = ScoreConfig(model=model)
    key = scorer_key(base)
    assert key.startswith("My_ORM-") and key == scorer_key(ScoreConfig(model=model))
    changed = [ScoreConfig(model=model, label="good"), ScoreConfig(model=model, system="Be strict."),
               ScoreConfig(model=model, max_model_len=128), ScoreConfig(model=model, kind="process"),
               ScoreConfig(model=reward_model(tmp_path / "other"))]
    assert len({key, *(scorer_key(c) for c in changed)}) == 6
    assert scorer_key(ScoreConfig(model=model, aggregate="min")) == key  # an outcome model has no steps to aggregate
    process = ScoreConfig(model=model, kind="process")
    assert scorer_key(ScoreConfig(model=model, kind="process", aggregate="min")) != scorer_key(process)


def score_files(store: RunStore, key: str) -> dict:
    return {u: pq.read_table(store.score_unit(key, u)) for u in sorted(store.unit_ids(f"scores/{key}"))}


def test_troop_score_writes_one_file_per_unit_then_skips_and_a_second_model_writes_beside(run, tmp_path, capsys):
    engines = []
    first = reward_model(tmp_path / "orm-a")
    assert main(["score", run.root, f"score.model={first}", "score.max_model_len=30"], fake_scoring_cluster(engines)) == 0
    key = scorer_key(ScoreConfig(model=first, max_model_len=30))
    files = score_files(run, key)
    assert list(files) == ["u0", "u1"]
    for unit, table in files.items():
        assert table.schema.remove_metadata() == SCORES_SCHEMA and table.schema.metadata == {b"troop.reward": b"logit"}
        assert [(r["problem_id"], r["sample_idx"]) for r in table.to_pylist()] == [(p, i) for p, i, _ in UNITS[unit]]
    assert sum(len(call) for call in engines[0].calls) == 6  # 7 samples, one duplicate
    long = files["u1"].to_pylist()[1]
    assert long["reward"] is None and long["detail"] == "40 tokens, score.max_model_len is 30"
    out = capsys.readouterr().out
    assert f"scored 2 units with {key}: 7 samples (6 distinct), 1 too long (reward null)" in out

    assert main(["score", run.root, f"score.model={first}", "score.max_model_len=30"], fake_scoring_cluster(engines)) == 0
    assert f"scored 0 units with {key}: every unit already has its scores" in capsys.readouterr().out
    assert len(engines) == 1  # nothing to score: no engine started

    second = reward_model(tmp_path / "orm-b")
    assert main(["score", run.root, f"score.model={second}"], fake_scoring_cluster(engines)) == 0
    assert sorted(os.listdir(run.path("scores"))) == sorted([key, scorer_key(ScoreConfig(model=second))])
    assert score_files(run, key) == files  # the first model's scores untouched


@pytest.mark.parametrize("overrides, fragment", [
    (["score.model={missing}"], "score.model={missing} does not exist"),
    (["score.model={causal}"], "is not an outcome reward model"),
    (["score.model={orm}", "score.kind=procces"], "config key 'score.kind' is 'procces': use one of outcome, process"),
    (["score.model={orm}", "score.aggregate=median"], "config key 'score.aggregate' is 'median'"),
    (["score.model={orm}", "score.label=good"], "label"),
    ([], "score.model is not set"),
])
def test_bad_input_is_one_line_and_writes_nothing(run, tmp_path, capsys, overrides, fragment):
    paths = {"missing": tmp_path / "nowhere", "causal": reward_model(tmp_path / "lm", "LlamaForCausalLM"),
             "orm": reward_model(tmp_path / "orm")}
    args = [o.format(**paths) for o in overrides]
    assert main(["score", run.root, *args], fake_scoring_cluster()) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("troop: error: ") and fragment.format(**paths) in line
    assert not os.path.exists(run.path("scores"))


def test_metrics_by_reward_on_a_root_without_scores_is_one_line(run, capsys):
    assert main(["verify", run.root, "verify.verifier=numeric"], fake_scoring_cluster()) == 0
    assert main(["metrics", run.root, "metrics.score=reward"], fake_scoring_cluster()) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("troop: error: metrics.score=reward: ") and f"troop score {run.root} score.model=PATH" in line
    assert not os.path.exists(run.metrics_json)


def test_metrics_after_troop_score_compare_selection_by_reward(run, tmp_path, capsys):
    cluster = fake_scoring_cluster()
    assert main(["verify", run.root, "verify.verifier=numeric"], cluster) == 0
    assert main(["score", run.root, f"score.model={reward_model(tmp_path / 'orm')}"], cluster) == 0
    assert main(["metrics", run.root, "metrics.ks=[1,2]"], cluster) == 0
    metrics = json.loads(open(run.metrics_json).read())
    for name in ("best_of_k_logprob", "best_of_k_reward", "weighted_at_k_reward"):
        assert list(metrics[name]) == ["1", "2"]
    # best-of-2 by reward (the fake reward: longer is better): p0 both right: 1; p1 the longer
    # wrong one wins: 0; p2 "5" (right), 40 x (wrong, longest), "4 no 5" (right): of its three
    # pairs only {"5", "4 no 5"} leaves a right winner: 1/3
    assert metrics["best_of_k_reward"]["2"] == pytest.approx((1 + 0 + 1 / 3) / 3, abs=1e-12)
    assert "best-of-k reward" in capsys.readouterr().out


def test_a_pool_without_its_problems_is_one_line(run, tmp_path, capsys):
    os.remove(run.problems)
    assert main(["score", run.root, f"score.model={reward_model(tmp_path / 'orm')}"], fake_scoring_cluster()) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "has no problems.parquet" in line and not os.path.exists(run.path("scores"))
