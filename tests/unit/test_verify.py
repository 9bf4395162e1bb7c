"""jobs.usecases.verify and jobs.metrics.measure on a hand-made run store: verdict files, increments, metrics."""

import json
import os

import numpy as np
import pyarrow as pa
import pytest

from jobs.errors import ConfigError, StoreError
from jobs.config import MetricsConfig
from jobs.metrics.measure import measure_run, write_metrics
from jobs.store.verified import VerifiedReader
from jobs.store.root import RunStore
from jobs.config import VerifyConfig
from doubles import InlineExecutor
from jobs.usecases.verify import verify_run
from jobs.stages.verification import VerifyWorker, resolve_verifier, verify_settings
from verifiers import VERDICTS_SCHEMA, get_verifier
from workers.samples import SAMPLES_SCHEMA

KEY = get_verifier("numeric").key()


def verify(store, verifier="numeric", **settings):
    return verify_run(store, VerifyConfig(verifier=verifier, **settings), pool=InlineExecutor(VerifyWorker()))
PROBLEMS = pa.table({"problem_id": ["a", "b", "c"], "prompt": ["A?", "B?", "C?"], "answer": ["3", "10", "5"]})
# unit id -> (problem_id, sample_idx, text, num_tokens)
UNITS = {
    "u1": [("a", 0, "#### 3", 1), ("a", 1, "4", 2), ("b", 0, "10", 3), ("b", 1, "The answer is 10.0", 4), ("c", 0, "6", 5)],
    "u2": [("a", 2, "no number here", 6), ("a", 3, "3.0", 7), ("b", 2, "11", 8), ("c", 1, "7", 9), ("c", 2, "nothing", 10)],
}
# a: pass fail no_answer pass (n=4, c=2); b: pass pass fail (n=3, c=2); c: fail fail no_answer (n=3, c=0)


def samples_of(rows) -> pa.Table:
    pids, idxs, texts, tokens = zip(*rows)
    return pa.table(
        {"problem_id": pids, "sample_idx": idxs, "text": texts, "num_tokens": tokens,
         "cumulative_logprob": [None] * len(rows), "finish_reason": ["stop"] * len(rows), "seed": idxs},
        schema=SAMPLES_SCHEMA,
    )


@pytest.fixture
def store(tmp_path) -> RunStore:
    store = RunStore(str(tmp_path / "run"))
    store.write_table(store.problems, PROBLEMS)
    for uid, rows in UNITS.items():
        store.write_table(store.sample_unit(uid), samples_of(rows), SAMPLES_SCHEMA)
    return store


def test_verify_writes_one_verdict_file_per_unit(store):
    summary = verify(store, "numeric")
    assert store.unit_ids(f"verdicts/{KEY}") == {"u1", "u2"}
    assert sorted(os.listdir(store.path("verdicts", KEY))) == ["unit-u1.parquet", "unit-u2.parquet"]
    assert (summary.verifier_key, summary.units, summary.samples, summary.passed) == (KEY, 2, 10, 4)
    assert dict(summary.statuses) == {"pass": 4, "fail": 4, "no_answer": 2}


def test_verdict_rows_are_exact(store):
    verify(store, "numeric")
    table = store.read_table(store.verdict_unit(KEY, "u1"))
    assert table.schema.equals(VERDICTS_SCHEMA)
    assert table.to_pydict() == {
        "problem_id": ["a", "a", "b", "b", "c"],
        "sample_idx": [0, 1, 0, 1, 0],
        "passed": [True, False, True, True, False],
        "status": ["pass", "fail", "pass", "pass", "fail"],
        "answer": ["3", "4", "10", "10", "6"],
        "detail": ["", "expected 3", "", "", "expected 5"],
    }
    assert store.read_table(store.verdict_unit(KEY, "u2"))["status"].to_pylist() == [
        "no_answer", "pass", "fail", "fail", "no_answer"]


def test_second_verify_verifies_nothing_new(store):
    verify(store, "numeric")
    before = {u: os.stat(store.verdict_unit(KEY, u)).st_mtime_ns for u in ("u1", "u2")}
    again = verify(store, "numeric")
    assert (again.units, again.samples, again.passed, dict(again.statuses)) == (0, 0, 0, {})
    assert {u: os.stat(store.verdict_unit(KEY, u)).st_mtime_ns for u in ("u1", "u2")} == before


def test_verify_picks_up_only_new_units(store):
    verify(store, "numeric")
    store.write_table(store.sample_unit("u3"), samples_of([("a", 4, "#### 3", 1), ("b", 3, "#### 9", 1)]), SAMPLES_SCHEMA)
    summary = verify(store, "numeric")
    assert (summary.units, summary.samples, summary.passed) == (1, 2, 1)
    assert store.unit_ids(f"verdicts/{KEY}") == {"u1", "u2", "u3"}


def test_missing_payload_column_is_a_config_error(tmp_path):
    store = RunStore(str(tmp_path / "run"))
    store.write_table(store.problems, PROBLEMS.drop_columns(["answer"]))
    store.write_table(store.sample_unit("u1"), samples_of(UNITS["u1"]), SAMPLES_SCHEMA)
    with pytest.raises(ConfigError) as caught:
        verify(store, "numeric")
    assert "answer" in str(caught.value) and "'numeric'" in str(caught.value)
    assert store.unit_ids(f"verdicts/{KEY}") == set()


def test_no_samples_is_a_store_error(tmp_path):
    store = RunStore(str(tmp_path / "run"))
    store.write_table(store.problems, PROBLEMS)
    with pytest.raises(StoreError, match="samples/unit-"):
        verify(store, "numeric")


def test_unknown_verifier_is_a_config_error_listing_the_names(store):
    with pytest.raises(ConfigError) as caught:
        verify(store, "numerik")
    assert "verify.verifier" in str(caught.value) and "numeric" in str(caught.value)
    with pytest.raises(ConfigError):
        resolve_verifier("")


# Metrics of the run.


def test_the_pool_joins_verdicts_to_samples(store):
    verify(store, "numeric")
    [pool] = list(VerifiedReader(store, KEY, None).batches())
    assert pool.problem_ids == ["a", "b", "c"]
    assert np.bincount(pool.problem).tolist() == [4, 3, 3]
    assert (np.bincount(pool.problem, weights=pool.passed).tolist()) == [2, 2, 0]


def test_measure_gives_exact_pass_at_k_and_counts(store):
    verify(store, "numeric")
    metrics = measure_run(store, KEY, MetricsConfig())[0]
    assert metrics["verifier"] == KEY
    assert list(metrics["pass_at_k"]) == ["1", "2", "3"]  # up to the smallest n
    # pass@1: (2/4 + 2/3 + 0) / 3; pass@2: a 1 - C(2,2)/C(4,2) = 5/6, b 1, c 0; pass@3: a 1, b 1, c 0
    assert metrics["pass_at_k"]["1"] == pytest.approx(7 / 18, rel=1e-12)
    assert metrics["pass_at_k"]["2"] == pytest.approx(11 / 18, rel=1e-12)
    assert metrics["pass_at_k"]["3"] == pytest.approx(2 / 3, rel=1e-12)
    assert metrics["counts"] == {"problems": 3, "samples": 10, "passed": 4, "tokens": 55, "problems_solved": 2, "problems_refused": 0}


def test_measure_without_verdicts_is_a_store_error(store):
    with pytest.raises(StoreError, match=f"verdicts/{KEY}"):
        measure_run(store, KEY, MetricsConfig())


def test_metrics_json_holds_the_metrics(store):
    verify(store, "numeric")
    metrics, problems, curves = measure_run(store, KEY, MetricsConfig())
    write_metrics(store, metrics, problems, curves)
    assert json.loads(store.read_text(store.metrics_json)) == metrics
    assert store.read_table(store.path("metrics", "problems.parquet")).equals(problems)


def test_identical_completions_of_a_problem_are_checked_once(tmp_path):
    store = RunStore(str(tmp_path / "run"))
    store.write_table(store.problems, PROBLEMS)
    rows = [("a", 0, "#### 3", 1), ("a", 1, "#### 3", 1), ("a", 2, "#### 4", 1), ("b", 0, "#### 3", 1), ("a", 3, "#### 3", 1)]
    store.write_table(store.sample_unit("u1"), samples_of(rows), SAMPLES_SCHEMA)
    summary = verify(store)
    assert (summary.samples, summary.checked, summary.passed) == (5, 3, 3)
    assert store.read_table(store.verdict_unit(KEY, "u1"))["passed"].to_pylist() == [True, True, False, False, True]


def test_a_changed_setting_verifies_beside_the_old_verdicts(store):
    verify(store)
    first = {u: os.stat(store.verdict_unit(KEY, u)).st_mtime_ns for u in ("u1", "u2")}
    changed = verify(store, timeout_s=3.0)
    new_key = get_verifier("numeric").key(verify_settings(VerifyConfig(timeout_s=3.0)))
    assert (changed.verifier_key, changed.units) == (new_key, 2)
    assert sorted(os.listdir(store.path("verdicts"))) == sorted([KEY, new_key])
    assert {u: os.stat(store.verdict_unit(KEY, u)).st_mtime_ns for u in ("u1", "u2")} == first
    assert verify(store, timeout_s=3.0).units == 0


@pytest.mark.parametrize("verifier, expected", [("numeric", (2, 3)), ("exact", (3, 3))])
def test_gold_self_check_counts_gold_answers_that_verify_as_themselves(tmp_path, verifier, expected):
    """Each verified unit's problems: their gold answers, written as completions, checked by the
    worker's own checker; a gold answer without a number does not verify as a number."""
    store = RunStore(str(tmp_path / "run"))
    store.write_table(store.problems, pa.table({"problem_id": ["a", "b", "c"], "prompt": ["A?", "B?", "C?"],
                                                "answer": ["3", "$1,000", "no number"]}))
    store.write_table(store.sample_unit("u1"), samples_of([("a", 0, "3", 1), ("b", 0, "1000", 1)]), SAMPLES_SCHEMA)
    store.write_table(store.sample_unit("u2"), samples_of([("c", 0, "x", 1), ("a", 1, "4", 1)]), SAMPLES_SCHEMA)
    summary = verify(store, verifier)
    assert summary.gold_self_check == expected
    assert summary.golds == {"a": True, "b": True, "c": verifier == "exact"}


def test_verify_reports_the_gold_self_check(store):
    assert verify(store).gold_self_check == (3, 3)


def test_metrics_carry_intervals_in_the_curves_shape_and_a_labelled_fit(store):
    verify(store, "numeric")
    metrics = measure_run(store, KEY, MetricsConfig())[0]
    intervals = metrics["ci"]["pass_at_k"]
    assert list(intervals) == list(metrics["pass_at_k"])
    for k, (low, high) in intervals.items():
        assert low <= metrics["pass_at_k"][k] <= high
    fit = metrics["fit"]
    assert fit["points"] == 3 and fit["a"] < 0 and fit["rmse"] < 0.05
    assert list(fit["forecast"]) == ["6", "12", "30"]
    assert metrics["pass_at_k"]["3"] <= fit["forecast"]["6"] <= fit["forecast"]["30"] <= 1.0


def test_coverage_fit_of_a_flat_curve_has_no_parameters():
    from jobs.metrics.measure import coverage_fit

    assert coverage_fit({1: 1.0, 2: 1.0}) == {"a": None, "b": None, "rmse": None, "points": 0}


def test_a_checker_that_raises_gives_that_sample_error_and_checks_the_rest():
    from jobs.stages.verification import verify_samples
    from verifiers.numeric import check_numeric

    class Fragile:
        def check(self, text, payload):
            if text == "boom":
                raise RuntimeError("the checker itself broke\nmore")
            return check_numeric(text, payload["answer"])

    samples = pa.table({"problem_id": ["a", "a", "a"], "sample_idx": [0, 1, 2], "text": ["#### 3", "boom", "#### 4"]})
    table, checked = verify_samples(samples, {"a": {"answer": "3"}}, Fragile())
    assert table["status"].to_pylist() == ["pass", "error", "fail"] and checked == 3
    assert table["detail"].to_pylist()[1] == "checker failed: RuntimeError: the checker itself broke"
