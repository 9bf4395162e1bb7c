"""Selection by a reward model's scores: best-of-k and the weighted vote by reward equal brute
force over every k-subset; the selection comparison in metrics.json; which scores are read."""

from math import exp

import numpy as np
import pyarrow as pa
import pytest

from jobs.config import MetricsConfig
from jobs.errors import ConfigError, StoreError
from jobs.metrics.measure import measure_run
from jobs.store.root import RunStore
from doubles import KEY, POOL, RIGHT, brute, write_pool

SCORER = "tiny-orm-0123456789"
# problem -> the reward of each of its samples (same order as POOL), ties included, one null
REWARDS = {
    "a": [0.5, 2.0, -1.0, 2.0, 0.1, None],
    "b": [-0.3, 1.2, 1.2, 0.9, -2.0, 0.0],
    "c": [3.0, -3.0, 0.2, 0.2, 0.2, 1.0],
}


def write_scores(store: RunStore, rewards=REWARDS, key=SCORER, logit=True) -> None:
    """Score files beside write_pool's two units (the halves of each problem's samples)."""
    schema = pa.schema([("problem_id", pa.string()), ("sample_idx", pa.int32()), ("reward", pa.float64()),
                        ("step_rewards", pa.list_(pa.float64())), ("detail", pa.string())],
                       metadata={"troop.reward": "logit" if logit else "probability"})
    for unit, first in (("u0", True), ("u1", False)):
        rows = [(p, i, r) for p in POOL for i, r in enumerate(rewards[p]) if (i < len(POOL[p]) // 2) == first]
        table = pa.table({"problem_id": [r[0] for r in rows], "sample_idx": [r[1] for r in rows],
                          "reward": [r[2] for r in rows], "step_rewards": [None] * len(rows),
                          "detail": [None if r[2] is not None else "too long" for r in rows]}, schema=schema)
        store.write_table(store.score_unit(key, unit), table, schema)


@pytest.fixture
def store(tmp_path):
    store = RunStore(str(tmp_path / "run"))
    write_pool(store)
    write_scores(store)
    return store


def pick_best(problem, subset):
    """The right share among the highest-reward samples of the subset (a null reward ranks last)."""
    rewards = [r if r is not None else -np.inf for _, r in subset]
    top = max(rewards)
    tied = [s for s, r in zip(subset, rewards) if r == top]
    return sum(answer == RIGHT[problem] for (answer, _, _), _ in tied) / len(tied)


def weighted(problem, subset, weigh):
    tally = {}
    for (answer, _, _), reward in subset:
        if answer is not None:
            tally[answer] = tally.get(answer, 0.0) + (weigh(reward) if reward is not None else 0.0)
    if not tally:
        return 0.0
    top = max(tally.values())
    winners = [a for a, v in tally.items() if v == top]
    return sum(a == RIGHT[problem] for a in winners) / len(winners)


def with_rewards() -> dict:
    return {p: list(zip(POOL[p], REWARDS[p])) for p in POOL}


def test_best_of_k_and_weighted_vote_by_reward_equal_brute_force(store):
    metrics, _, _ = measure_run(store, KEY, MetricsConfig(ks=[1, 2, 3, 4, 5, 6]), scorer_key=SCORER)
    sigmoid = lambda r: float(1.0 / (1.0 + np.exp(-np.array([r]))[0]))  # noqa: E731 - as the product computes it
    for k in range(1, 7):
        expected = {
            "best_of_k_reward": brute(with_rewards(), k, pick_best),
            "weighted_at_k_reward": brute(with_rewards(), k, lambda p, sub: weighted(p, sub, sigmoid)),
            "best_of_k_logprob": metrics["best_of_k"][str(k)],  # the default score is the log-prob
        }
        for name, value in expected.items():
            assert metrics[name][str(k)] == pytest.approx(value, abs=1e-12), (name, k)
    assert metrics["reward"] == {"scorer": SCORER, "vote_weight": "sigmoid(reward)"}


def test_metrics_score_reward_ranks_and_weighs_by_the_reward(store):
    metrics, _, _ = measure_run(store, KEY, MetricsConfig(ks=[1, 2, 3], score="reward"), scorer_key=SCORER)
    assert metrics["score"] == "reward"
    for k in ("1", "2", "3"):
        assert metrics["best_of_k"][k] == metrics["best_of_k_reward"][k]
        assert metrics["weighted_at_k"][k] == pytest.approx(metrics["weighted_at_k_reward"][k], abs=1e-12)


def test_probability_rewards_weigh_as_they_are(tmp_path):
    store = RunStore(str(tmp_path / "run"))
    write_pool(store)
    probabilities = {p: [None if r is None else 1 / (1 + exp(-r)) for r in rs] for p, rs in REWARDS.items()}
    write_scores(store, probabilities, logit=False)
    metrics, _, _ = measure_run(store, KEY, MetricsConfig(ks=[2, 3]), scorer_key=SCORER)
    assert metrics["reward"]["vote_weight"] == "reward"
    for k in (2, 3):
        expected = brute({p: list(zip(POOL[p], probabilities[p])) for p in POOL}, k,
                         lambda p, sub: weighted(p, sub, lambda r: r))
        assert metrics["weighted_at_k_reward"][str(k)] == pytest.approx(expected, abs=1e-12)


def test_a_verified_unit_without_scores_is_one_line(store):
    store.fs.rm(store.score_unit(SCORER, "u1"))
    message = str(pytest.raises(StoreError, measure_run, store, KEY, MetricsConfig(), scorer_key=SCORER).value)
    assert "have no scores/" in message and "troop score" in message and "\n" not in message


def test_metrics_score_reward_without_scores_is_a_config_error(tmp_path):
    store = RunStore(str(tmp_path / "run"))
    write_pool(store)
    message = str(pytest.raises(ConfigError, measure_run, store, KEY, MetricsConfig(score="reward")).value)
    assert "troop score" in message and "score.model=PATH" in message and "\n" not in message
