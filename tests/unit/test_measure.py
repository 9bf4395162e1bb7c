"""`troop metrics` on small stored pools: every number of metrics.json against brute force over
all k-subsets, the per-problem files, the metrics.* settings and their errors."""

import json

import numpy as np
import pytest

from doubles import KEY, POOL, RIGHT, brute, write_pool
from jobs.cli.main import main
from jobs.config import MetricsConfig
from jobs.errors import ConfigError, StoreError
from jobs.metrics.measure import measure_run, model_parameters, write_metrics
from jobs.store.root import RunStore
from jobs.usecases.verify import stored_verifier_key
from jobs.config import VerifyConfig

def vote(problem, subset, weigh):
    tally = {}
    for answer, tokens, logprob in subset:
        if answer is not None:
            tally[answer] = tally.get(answer, 0.0) + weigh(tokens, logprob)
    if not tally:
        return 0.0
    top = max(tally.values())
    winners = [a for a, v in tally.items() if v == top]
    return sum(a == RIGHT[problem] for a in winners) / len(winners)


def best(problem, subset):
    scores = [logprob / tokens for _, tokens, logprob in subset]
    top = max(scores)
    tied = [s[0] for s, score in zip(subset, scores) if score == top]
    return sum(a == RIGHT[problem] for a in tied) / len(tied)


@pytest.fixture
def store(tmp_path):
    store = RunStore(str(tmp_path / "run"))
    write_pool(store)
    return store


def test_every_curve_equals_brute_force_over_all_subsets(store):
    metrics, _, _ = measure_run(store, KEY, MetricsConfig(ks=[1, 2, 3, 4, 5, 6]))
    for k in range(1, 7):
        expected = {
            "pass_at_k": brute(POOL, k, lambda p, sub: float(any(a == RIGHT[p] for a, _, _ in sub))),
            "majority_at_k": brute(POOL, k, lambda p, sub: vote(p, sub, lambda t, lp: 1.0)),
            "best_of_k": brute(POOL, k, best),
            # np.exp as the product weighs: libm's exp (math.exp) differs from numpy's in the last
            # bit at -0.6/6, which turns an exact tie of problem b into a win.
            "weighted_at_k": brute(POOL, k, lambda p, sub: vote(p, sub, lambda t, lp: float(np.exp(np.array([lp / t]))[0]))),
        }
        for name, value in expected.items():
            assert metrics[name][str(k)] == pytest.approx(value, abs=1e-12), (name, k)
            assert metrics["ci"]["stderr"].get(name, {}).get(str(k), 0.0) == 0.0  # n = 6: exact
            low, high = metrics["ci"][name][str(k)]
            assert low <= metrics[name][str(k)] <= high


def test_metrics_json_has_the_contract_keys_with_string_ks(store):
    metrics, _, _ = measure_run(store, KEY, MetricsConfig())
    assert metrics["ks"] == [1, 2, 4, 6]  # default: powers of two up to the smallest n
    for name in ("pass_at_k", "majority_at_k", "best_of_k", "weighted_at_k"):
        assert list(metrics[name]) == ["1", "2", "4", "6"]
        assert all(isinstance(v, float) for v in metrics[name].values())
        assert list(metrics["ci"][name]) == ["1", "2", "4", "6"]
    assert metrics["score"] == "mean_logprob" and metrics["verifier"] == KEY
    assert metrics["counts"] == {"problems": 3, "samples": 18, "passed": 5, "tokens": 134, "problems_solved": 2,
                                 "problems_refused": 0}


def test_cost_and_difficulty(store):
    metrics, problems, _ = measure_run(store, KEY, MetricsConfig(model_params=1000))
    cost = metrics["cost"]
    assert (cost["tokens"], cost["tokens_per_problem"], cost["tokens_per_sample"]) == (134, 134 / 3, 134 / 18)
    assert cost["tokens_per_solved_problem"] == 67.0 and cost["flops_per_token"] == 2000
    # pass rates: a 2/6, b 3/6, c 0
    difficulty = metrics["difficulty"]
    assert (difficulty["never_solved"], difficulty["always_solved"]) == (1 / 3, 0.0)
    assert {b["label"]: b["problems"] for b in difficulty["bins"]} == {
        "0": 1, "(0, 0.1]": 0, "(0.1, 0.3]": 0, "(0.3, 0.6]": 2, "(0.6, 1)": 0, "1": 0}
    assert problems.to_pydict() == {
        "problem_id": ["a", "b", "c"], "n": [6, 6, 6], "passed": [2, 3, 0], "pass_rate": [2 / 6, 0.5, 0.0],
        "tokens": [65, 39, 30], "difficulty": ["(0.3, 0.6]", "(0.3, 0.6]", "0"]}


def test_per_problem_curves_are_written_long(store):
    metrics, problems, curves = measure_run(store, KEY, MetricsConfig(ks=[1, 6]))
    write_metrics(store, metrics, problems, curves)
    table = store.read_table(store.path("metrics", "curves.parquet"))
    assert table.num_rows == 3 * 4 * 2
    rows = {(r["problem_id"], r["metric"], r["k"]): r["value"] for r in table.to_pylist()}
    assert rows[("a", "pass_at_k", 1)] == pytest.approx(2 / 6)
    assert rows[("b", "majority_at_k", 6)] == 1.0  # all six: "7" x3 beats "2" x2
    assert rows[("c", "best_of_k", 6)] == 0.0
    assert json.loads(store.read_text(store.metrics_json)) == metrics


def test_a_named_score_column_ranks_best_of_k(tmp_path):
    store = RunStore(str(tmp_path / "run"))
    write_pool(store, extra="reward")
    metrics, _, _ = measure_run(store, KEY, MetricsConfig(score="reward", ks=[6]))
    # the highest reward is the last sample: a None (wrong), b "3" (wrong), c "0" (wrong)
    assert metrics["score"] == "reward" and metrics["best_of_k"]["6"] == 0.0
    # weights = rewards: a "5" 1+3 ties "6" 4 (both wrong), b "2" 3+4 beats "7" 0+1+2; votes: a tie, b "7"
    assert metrics["weighted_at_k"]["6"] == 0.0 and metrics["majority_at_k"]["6"] == pytest.approx(0.5)


def test_an_unknown_score_column_is_a_config_error_listing_the_columns(store):
    with pytest.raises(ConfigError, match="metrics.score=reward: .*numeric columns: cumulative_logprob, num_tokens, sample_idx, seed"):
        measure_run(store, KEY, MetricsConfig(score="reward"))


def test_negative_scores_leave_the_weighted_vote_out(tmp_path, caplog):
    store = RunStore(str(tmp_path / "run"))
    write_pool(store)
    metrics, _, _ = measure_run(store, KEY, MetricsConfig(score="cumulative_logprob", ks=[1]))
    assert "weighted_at_k" not in metrics and "majority_at_k" in metrics
    assert "negative values" in caplog.text


def test_ks_beyond_every_n_are_dropped_and_none_left_is_an_error(store):
    metrics, _, _ = measure_run(store, KEY, MetricsConfig(ks=[3, 1, 100]))
    assert list(metrics["pass_at_k"]) == ["1", "3"]
    with pytest.raises(ConfigError, match=r"metrics.ks=\[100\]: no problem has that many samples"):
        measure_run(store, KEY, MetricsConfig(ks=[100]))


def test_a_verifier_without_answers_has_no_votes(tmp_path):
    store = RunStore(str(tmp_path / "run"))
    write_pool(store, {p: [(None, t, lp) for _, t, lp in s] for p, s in POOL.items()})
    metrics, _, _ = measure_run(store, KEY, MetricsConfig())
    assert "majority_at_k" not in metrics and "best_of_k" in metrics


def test_monte_carlo_votes_report_their_standard_error(tmp_path):
    rng = np.random.default_rng(0)
    big = {f"p{i}": [(str(rng.integers(0, 4)), 5, float(-rng.random())) for _ in range(40)] for i in range(3)}
    store = RunStore(str(tmp_path / "run"))
    write_pool(store, big)
    metrics, _, _ = measure_run(store, KEY, MetricsConfig(ks=[1, 20, 40], draws=500))
    stderr = metrics["ci"]["stderr"]
    assert stderr["majority_at_k"]["1"] == 0.0 and stderr["majority_at_k"]["40"] == 0.0  # exact ends
    assert stderr["weighted_at_k"]["20"] > 0.0  # C(40, 20) subsets: estimated
    assert metrics["draws"] == 500


def test_verdicts_made_under_other_settings_are_found(tmp_path):
    store = RunStore(str(tmp_path / "run"))
    write_pool(store, key="exact-0123456789")
    assert stored_verifier_key(store, "exact", VerifyConfig(verifier="exact")) == "exact-0123456789"
    write_pool(store, key="exact-9876543210")
    with pytest.raises(StoreError, match="several settings"):
        stored_verifier_key(store, "exact", VerifyConfig(verifier="exact"))
    with pytest.raises(StoreError, match="no verdicts by math: run troop verify"):
        stored_verifier_key(store, "math", VerifyConfig(verifier="math"))


def test_model_parameters_are_summed_from_safetensors_headers(tmp_path):
    header = json.dumps({"__metadata__": {}, "w": {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 48]},
                         "b": {"dtype": "F32", "shape": [4], "data_offsets": [48, 64]}}).encode()
    (tmp_path / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + bytes(64))
    assert model_parameters(str(tmp_path)) == 16
    assert model_parameters(str(tmp_path / "missing")) is None


def test_troop_metrics_prints_the_table_and_troop_report_renders(store, capsys):
    root = store.root
    assert main(["metrics", root, "verify.verifier=exact", "metrics.ks=[1,6]"]) == 0
    printed = capsys.readouterr().out
    assert "maj@k" in printed and "weighted@k" in printed and "best-of-k" in printed
    assert json.loads(store.read_text(store.metrics_json))["ks"] == [1, 6]
    assert main(["report", root]) == 0
    assert store.exists(store.path("report", "index.html")) and store.exists(store.path("report", "coverage.png"))


def test_troop_metrics_with_a_bad_ks_exits_nonzero_and_writes_nothing(store, capsys):
    assert main(["metrics", store.root, "verify.verifier=exact", "metrics.ks=[0]"]) == 2
    assert "metrics.ks" in capsys.readouterr().err
    assert not store.exists(store.metrics_json)


def test_troop_report_of_a_root_without_metrics_names_the_fix(store, capsys):
    assert main(["report", store.root]) == 2
    assert "run troop metrics" in capsys.readouterr().err


def test_metrics_and_report_work_on_a_foreign_pool_at_a_store_url(capsys):
    import uuid

    store = RunStore(f"memory://foreign-{uuid.uuid4().hex}")
    write_pool(store)  # no job.yaml, no problems.parquet: only the contract's columns
    assert main(["metrics", store.root, "verify.verifier=exact"]) == 0
    assert json.loads(store.read_text(store.metrics_json))["counts"]["samples"] == 18
    assert main(["report", store.root, "--out", f"{store.root}/elsewhere"]) == 0
    assert store.exists(store.path("elsewhere", "index.html")) and store.exists(store.path("elsewhere", "tokens.png"))
    assert store.url(store.path("elsewhere", "index.html")) in capsys.readouterr().out


def test_units_batch_by_whole_problems():
    from jobs.store.verified import unit_batches

    units = ["p000000-000002-s000000-000004", "p000000-000002-s000004-000008",  # 2 problems x 8
             "p000002-000003-s000000-000008", "p000003-000005-s000000-000004",
             "p000004-000005-s000004-000008"]  # overlaps the previous range: same batch
    assert unit_batches(units, max_rows=1) == [units[:2], units[2:3], units[3:]]
    assert unit_batches(units, max_rows=100) == [units]
    assert unit_batches(["b", "a"], max_rows=1) == [["a", "b"]]  # not troop's names: one batch


def test_metrics_do_not_depend_on_batching_or_row_order(tmp_path):
    from jobs.store.verified import VerifiedReader

    rng = np.random.default_rng(1)
    big = {f"p{i}": [(str(rng.integers(0, 4)), 5, float(-rng.random())) for _ in range(40)] for i in range(3)}
    store = RunStore(str(tmp_path / "run"))
    write_pool(store, big, troop_units=True)
    settings = MetricsConfig(ks=[1, 7, 40], draws=300)
    whole, _, _ = measure_run(store, KEY, settings)
    assert whole["ci"]["stderr"]["weighted_at_k"]["7"] > 0  # Monte Carlo values: seeds must match too
    assert len(list(VerifiedReader(store, KEY, None, batch_rows=1).batches())) == 3  # one batch per problem
    assert measure_run(store, KEY, settings, batch_rows=1)[0] == whole
    for unit in store.unit_ids(f"verdicts/{KEY}"):  # verdict rows in another order than samples: a real join
        table = store.read_table(store.verdict_unit(KEY, unit))
        store.write_table(store.verdict_unit(KEY, unit), table.take(rng.permutation(table.num_rows)))
    assert measure_run(store, KEY, settings)[0] == whole


def test_problems_without_samples_are_counted_apart(store):
    from jobs.store.failures import record_failures

    record_failures(store, "u0", [("d", "prompt_too_long", "300 prompt tokens"), ("e", "rejected", "bad")])
    metrics, _, _ = measure_run(store, KEY, MetricsConfig())
    assert metrics["counts"]["problems_refused"] == 2 and metrics["counts"]["problems"] == 3
