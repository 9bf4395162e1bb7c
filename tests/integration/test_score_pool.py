"""Scoring on Ray with a real vLLM pooling engine: `troop score` on a generated pool (scores
equal to transformers' forward pass), a killed scoring actor replaced and its unit redone, and
`troop run` with a `score:` section (units scored as they land, the selection comparison in
metrics.json)."""

import os
import signal

import pyarrow.parquet as pq
import pytest

from doubles import SCORE_KEYS, SessionPool
from jobs.cluster.pools import Cluster, scoring_pool
from jobs.stages.scoring import ScoreTask, ScoreWorker, scorer_key
from jobs.store.root import RunStore
from jobs.usecases.generate import generate
from jobs.usecases.run import run
from jobs.usecases.score import score_run
from tiny_reward import load_reference, reference_logits
from workers.reward import RewardSpec, Scored, encode_input, reward_input


@pytest.fixture(scope="module")
def score_pool(ray_session, reward_models):
    """One scoring actor for this module, holding the one-label outcome model (gone after it, with its
    CPU share)."""
    from jobs.cluster.pools import start_scoring
    from jobs.config import merge_config

    config = merge_config(None, ["run.root=/unused", "model.path=unused", f"score.model={reward_models['orm1']}", *SCORE_KEYS])
    with start_scoring(config.score) as shared:
        yield shared


def score_config(make_config, reward_models, name: str, *overrides):
    return make_config(name, f"score.model={reward_models['orm1']}", *SCORE_KEYS, *overrides)


def test_troop_score_on_a_generated_pool_equals_transformers(make_config, pool, score_pool, reward_models):
    config = score_config(make_config, reward_models, "scored", "problems.options.num_problems=6", "sampling.n=4",
                          "plan.samples_per_unit=8")
    generate(config, pool)
    store = RunStore(config.run.root)
    summary = score_run(store, config.score, pool=score_pool)
    key = scorer_key(config.score)
    assert (summary.scorer_key, summary.units, summary.samples, summary.failed) == (key, 3, 24, {})
    assert store.unit_ids(f"scores/{key}") == store.unit_ids("samples")
    model, tokenizer = load_reference(reward_models["orm1"])
    prompts = dict(zip(*(pq.read_table(store.problems)[c].to_pylist() for c in ("problem_id", "prompt"))))
    for unit in sorted(store.unit_ids("samples")):
        samples = pq.read_table(store.sample_unit(unit)).to_pylist()
        scores = pq.read_table(store.score_unit(key, unit)).to_pylist()
        assert [(s["problem_id"], s["sample_idx"]) for s in scores] == [(s["problem_id"], s["sample_idx"]) for s in samples]
        for sample, scored in list(zip(samples, scores))[:3]:
            text = reward_input(tokenizer, prompts[sample["problem_id"]], sample["text"])
            [expected] = reference_logits(model, encode_input(tokenizer, [text])[0])
            assert scored["reward"] == pytest.approx(expected, abs=1e-4)
    assert score_run(store, config.score, pool=score_pool).units == 0  # every unit already scored


def dying_worker(marker: str) -> type:
    """A scoring worker on a stand-in engine whose process dies on its first unit while `marker`
    exists (it removes the marker first: the replacement finds none)."""

    class Engine:  # here, not tests/doubles.py: the actor cannot import the tests' modules
        reward_is_logit = True

        def __init__(self, spec):
            pass

        def score(self, prompts, completions):
            return [Scored(float(len(text)), None) for text in completions]

        def close(self):
            pass

    class Dying(ScoreWorker):
        def __init__(self, spec):
            super().__init__(spec, engine_factory=Engine)

        def run_unit(self, task):
            if os.path.exists(marker):
                os.remove(marker)
                os.kill(os.getpid(), signal.SIGKILL)
            return super().run_unit(task)

    return Dying


def test_a_killed_scoring_actor_is_replaced_and_its_unit_redone(make_config, pool, tmp_path):
    config = make_config("dying", "problems.options.num_problems=4", "sampling.n=2", "plan.samples_per_unit=2")
    generate(config, pool)
    store = RunStore(config.run.root)
    marker = tmp_path / "die-once"
    marker.touch()
    spec = RewardSpec(model="fake", max_model_len=1000)
    with scoring_pool(spec, num_workers=1, cpus_per_worker=0.1, worker_class=dying_worker(str(marker))) as dying:
        [first_pid] = dying.worker_pids()
        tasks = [ScoreTask(store, unit, "fake-key", "last") for unit in sorted(store.unit_ids("samples"))]
        result = dying.run(tasks, lambda stats: None)
        assert dying.worker_pids() != [first_pid]  # replaced
    assert result.failed == {} and sorted(s.unit_id for s in result.finished) == sorted(store.unit_ids("samples"))
    assert store.unit_ids("scores/fake-key") == store.unit_ids("samples") and not marker.exists()


def test_troop_run_scores_units_as_they_land_and_compares_selection(make_config, pool, score_pool, reward_models):
    config = score_config(make_config, reward_models, "run-scored", "problems.options.num_problems=6", "sampling.n=4",
                          "plan.samples_per_unit=8", "verify.workers=1")
    cluster = Cluster(connect=lambda *args: None, scoring=SessionPool(score_pool).start)
    summary = run(config, pool, cluster=cluster)
    summary.check()
    key = scorer_key(config.score)
    assert (summary.scored.scorer_key, summary.scored.units, summary.scored.samples) == (key, 3, 24)
    store = RunStore(config.run.root)
    assert store.unit_ids(f"scores/{key}") == store.unit_ids(f"verdicts/{summary.verified.verifier_key}")
    metrics = summary.metrics.metrics
    assert metrics["reward"] == {"scorer": key, "vote_weight": "sigmoid(reward)"}
    assert list(metrics["best_of_k_reward"]) == list(metrics["pass_at_k"]) == ["1", "2", "4"]
    assert store.exists(store.path("report", "selection.png"))
