"""An adaptive run in the report, the CLI's lines and `troop status`: problems solved against
samples spent beside uniform sampling, the samples uniform needs for as many problems solved,
and an adaptive root's units and allocation replayed from its stored verdicts.

The adaptive metrics.json below has a hand-made `allocation` section (100 problems) in which the
equal-coverage numbers are easy to compute by hand; the other sections come from `fake_metrics`
and only feed the five usual plots."""

import json

import numpy as np
import pyarrow as pa
import pytest

from jobs import api
from jobs.cli.main import main
from jobs.cli.output import allocation_line, equal_coverage_line, print_metrics
from jobs.config import merge_config
from jobs.errors import ConfigError
from jobs.report.allocation import EXPECTED_LABEL, EqualCoverage, SolvedCurve, samples_to_reach
from jobs.report.plots import PLOTS
from jobs.store.failures import record_failures
from jobs.store.progress import ProgressFile
from jobs.store.root import RunStore
from jobs.store.runinfo import record_run
from jobs.usecases.measure import MetricsResult
from jobs.usecases.status import run_status
from verifiers import VERDICTS_SCHEMA
from workers.samples import SAMPLES_SCHEMA

from doubles import KEY, fake_counts, fake_metrics

# Uniform sampling is expected to solve 25, 50, 62.5, 87.5 of 100 problems with 1..4 samples
# each; the adaptive run solved 75 with 250 samples. Uniform reaches 75% between 300 samples
# (62.5%) and 400 (87.5%): at 300 + (0.75 - 0.625) / 0.25 x 100 = 350, 1.4 times 250.
ALLOCATION = {
    "policy": "until_solved", "budget": 400, "first": 2, "step": 1, "samples_spent": 250, "tokens_spent": 9_876,
    "problems": 100, "problems_solved": 75, "samples_per_problem": {"min": 2, "median": 2.5, "max": 4},
    "solved_vs_samples": [{"samples_spent": 200, "problems_solved": 50}, {"samples_spent": 250, "problems_solved": 75}],
    "problems_open": 0, "rounds": 2, "finished": True, "engine_idle_share": 0.0125,
    "uniform_expected": [{"samples_per_problem": k, "samples_spent": 100 * k, "problems_solved": solved}
                         for k, solved in zip(range(1, 5), (25.0, 50.0, 62.5, 87.5))],
}
# A uniform run of 100 problems: pass@4 0.625 at 400 samples, pass@8 0.875 at 800, so 75% at
# 400 + 0.5 x 400 = 600 samples, 2.4 times 250.
UNIFORM_PASS_AT_K = {"1": 0.25, "2": 0.5, "4": 0.625, "8": 0.875}


def write_metrics(path, allocation: dict | None) -> str:
    path.mkdir(parents=True)
    metrics = fake_metrics(fake_counts(0.5, problems=100), 16, 0.5)
    if allocation is not None:
        metrics["allocation"] = allocation
    (path / "metrics.json").write_text(json.dumps(metrics))
    return str(path)


def uniform_root(path) -> str:
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps({"pass_at_k": UNIFORM_PASS_AT_K, "counts": {"problems": 100}}))
    return str(path)


# The equal-coverage number.


def test_samples_to_reach_interpolates_between_the_points_of_the_curve():
    curve = SolvedCurve("u", np.array([100.0, 200.0, 300.0, 400.0]), np.array([0.25, 0.5, 0.625, 0.875]))
    assert samples_to_reach(curve, 0.75) == 350.0
    assert samples_to_reach(curve, 0.5) == 200.0  # on a point: that point, not the next
    assert samples_to_reach(curve, 0.125) == 50.0  # before the first point: from (0, 0)
    assert samples_to_reach(curve, 0.875) == 400.0
    assert samples_to_reach(curve, 0.9) is None
    assert samples_to_reach(curve, 0.0) == 0.0


# The report.


def test_an_adaptive_run_gets_the_plot_and_the_table_against_its_expected_uniform_curve(tmp_path):
    root = write_metrics(tmp_path / "adaptive", ALLOCATION)
    result = api.report([root])
    (equal,) = result.equal_coverage
    assert (equal.run, equal.policy, equal.solved, equal.adaptive_samples) == ("adaptive", "until_solved", 0.75, 250)
    assert (equal.uniform, equal.uniform_samples, equal.ratio) == (EXPECTED_LABEL, 350.0, 1.4)
    out = RunStore(str(tmp_path / "adaptive" / "report"))
    assert out.fs.cat_file(out.path("allocation.png"))[:8] == b"\x89PNG\r\n\x1a\n"
    page = out.read_text(result.index)
    for fact, value in [("policy", "until_solved"), ("budget (samples)", "400"), ("samples spent", "250"),
                        ("tokens spent", "9,876"), ("problems solved", "75 of 100"),
                        ("samples per problem (min / median / max)", "2 / 2.5 / 4"), ("rounds", "2"),
                        ("engine idle share", "1.2%"), ("uniform curve", EXPECTED_LABEL),
                        ("samples for equal coverage", "350 (to solve 75.0%)"), ("uniform / adaptive samples", "1.40x")]:
        assert f"<tr><th class=l>{fact}</th><td>{value}</td></tr>" in page
    assert '<img src="allocation.png"' in page and "<h2>Adaptive allocation</h2>" in page


def test_a_uniform_run_gets_neither(tmp_path):
    uniform = dict(ALLOCATION, policy="uniform")
    for name, allocation in [("plain", None), ("uniform", uniform)]:
        result = api.report([write_metrics(tmp_path / name, allocation)])
        out = RunStore(str(tmp_path / name / "report"))
        assert result.equal_coverage == []
        assert not out.exists(out.path("allocation.png"))
        assert "Adaptive allocation" not in out.read_text(result.index)
        assert all(out.exists(out.path(png)) for png, _, _ in PLOTS)


def test_against_a_uniform_run_uses_its_measured_pass_at_k(tmp_path):
    against = uniform_root(tmp_path / "uniform")
    result = api.report([write_metrics(tmp_path / "adaptive", ALLOCATION)], against=against)
    (equal,) = result.equal_coverage
    assert (equal.uniform, equal.uniform_samples, equal.ratio) == (f"uniform run: {against}", 600.0, 2.4)
    page = RunStore(str(tmp_path / "adaptive" / "report")).read_text(result.index)
    assert "<td>600 (to solve 75.0%)</td>" in page and "<td>2.40x</td>" in page


def test_a_uniform_curve_that_never_gets_there_says_so(tmp_path, capsys):
    short = dict(ALLOCATION, uniform_expected=ALLOCATION["uniform_expected"][:3])  # 62.5% at most
    root = write_metrics(tmp_path / "adaptive", short)
    assert main(["report", root]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        f"equal coverage: until_solved (adaptive) solved 75.0% of problems with 250 samples; {EXPECTED_LABEL}: not reached")
    page = (tmp_path / "adaptive" / "report" / "index.html").read_text()
    assert "<td>not reached (to solve 75.0%)</td>" in page


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("troop: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_against_a_root_without_metrics_or_pass_at_k_is_one_line_naming_it(tmp_path, capsys):
    adaptive = write_metrics(tmp_path / "adaptive", ALLOCATION)
    bare = tmp_path / "bare"
    bare.mkdir()
    assert main(["report", adaptive, "--against", str(bare)]) == 2
    assert one_error_line(capsys) == f"troop: error: {bare} has no metrics.json: run troop metrics {bare} first"
    no_curve = tmp_path / "no-curve"
    no_curve.mkdir()
    (no_curve / "metrics.json").write_text(json.dumps({"counts": {"problems": 100}}))
    assert main(["report", adaptive, "--against", str(no_curve)]) == 2
    assert one_error_line(capsys) == (f"troop: error: {no_curve} has no pass_at_k in metrics.json: "
                                      f"run troop metrics {no_curve} first")
    assert not (tmp_path / "adaptive" / "report").exists()  # refused before anything was written


def test_against_needs_an_adaptive_run_to_compare_and_a_uniform_one_to_compare_with(tmp_path):
    adaptive = write_metrics(tmp_path / "adaptive", ALLOCATION)
    with pytest.raises(ConfigError, match=r"adaptive is an adaptive run \(allocate.policy=until_solved\): --against needs"):
        api.report([adaptive], against=adaptive)
    with pytest.raises(ConfigError, match=r"no root given has an adaptive allocate.policy .*plain"):
        api.report([write_metrics(tmp_path / "plain", None)], against=uniform_root(tmp_path / "uniform"))
    assert not (tmp_path / "plain" / "report").exists()


# What the CLI prints.


def test_allocation_line():
    assert allocation_line(ALLOCATION) == (
        "allocation until_solved: 250 of 400 budget samples spent, 75/100 problems solved, "
        "samples per problem 2/2.5/4 (min/median/max), 2 rounds, engines idle 1.2%")
    stopped = dict(ALLOCATION, finished=False, problems_open=3, engine_idle_share=None, budget=6400)
    assert allocation_line(stopped) == (
        "allocation until_solved: 250 of 6,400 budget samples spent, 75/100 problems solved, samples per problem "
        "2/2.5/4 (min/median/max), 2 rounds; not finished: 3 problem(s) still open, rerun the same command to go on")


def test_metrics_print_the_allocation_line_of_an_adaptive_run_only(capsys):
    metrics = fake_metrics(fake_counts(0.5, problems=100), 16, 0.5)
    print_metrics(MetricsResult(dict(metrics, allocation=dict(ALLOCATION, policy="uniform")), "m.json"))
    assert "allocation" not in capsys.readouterr().out
    print_metrics(MetricsResult(dict(metrics, allocation=ALLOCATION), "m.json"))
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2:] == [allocation_line(ALLOCATION), "metrics: m.json"]


def test_equal_coverage_line():
    equal = EqualCoverage("adaptive", "until_solved", 0.75, 1_250, "uniform run: runs/u", 3_500.0)
    assert equal_coverage_line(equal) == ("equal coverage: until_solved (adaptive) solved 75.0% of problems with 1,250 "
                                          "samples; uniform run: runs/u: 3,500 samples (2.80x)")


# troop status of an adaptive root.


def sample_rows(problem: str, start: int, end: int) -> pa.Table:
    count = end - start
    return pa.table({"problem_id": [problem] * count, "sample_idx": list(range(start, end)), "text": ["t"] * count,
                     "num_tokens": [3] * count, "cumulative_logprob": [0.0] * count,
                     "finish_reason": ["stop"] * count, "seed": [0] * count})


def write_unit(store: RunStore, unit_id: str, problem: str, start: int, passed: list[bool] | None) -> None:
    """A unit's samples and, unless `passed` is None, its verdicts."""
    end = start + 2
    store.write_table(store.sample_unit(unit_id), sample_rows(problem, start, end), SAMPLES_SCHEMA)
    if passed is not None:
        verdicts = pa.table({"problem_id": [problem] * 2, "sample_idx": list(range(start, end)), "passed": passed,
                             "status": ["pass" if ok else "fail" for ok in passed], "answer": ["1", "1"],
                             "detail": ["", ""]}).cast(VERDICTS_SCHEMA)
        store.write_table(store.verdict_unit(KEY, unit_id), verdicts)


@pytest.fixture
def adaptive_root(tmp_path) -> RunStore:
    """5 problems, until_solved, 2 samples per problem per round (one unit per problem and round)."""
    config = merge_config(None, [f"run.root={tmp_path / 'run'}", "model.path=m", "problems.source=arithmetic",
                                 "sampling.n=8", "plan.samples_per_unit=64", "verify.verifier=exact",
                                 "allocate.policy=until_solved", "allocate.first=2", "allocate.step=2"])
    store = RunStore(config.run.root)
    problems = pa.table({"problem_id": [f"p{i}" for i in range(5)], "prompt": ["q"] * 5, "answer": ["1"] * 5})
    record_run(store, config, problems)
    return store


def test_status_of_an_adaptive_root_replays_its_rounds(adaptive_root):
    store = adaptive_root
    # Round 1: p0 passes and stops; p1..p4 fail and get 2 more samples each in round 2.
    for i in range(5):
        write_unit(store, f"r001-p00000{i}-00000{i + 1}-s000000-000002", f"p{i}", 0, [i == 0, False])
    # Round 2: p1 verified (solved at its 4th sample), p2 generated but not verified yet, p3 in
    # flight, p4 failed every attempt.
    write_unit(store, "r002-p000001-000002-s000002-000004", "p1", 2, [False, True])
    write_unit(store, "r002-p000002-000003-s000002-000004", "p2", 2, None)
    ProgressFile(store, every_s=0.0).dispatched("r002-p000003-000004-s000002-000004")
    record_failures(store, "r002-p000004-000005-s000002-000004", [(None, "worker_died", "killed")])
    lines = run_status(store)
    assert lines[1:3] == [
        "units: 7 done of 9 released so far, 1 in flight, 1 failed",
        "allocation until_solved: 14 of 40 budget samples spent so far, 2/5 problems solved, 3 still open, 2 rounds so far",
    ]
    assert lines[3].startswith("in flight as of ")
    assert lines[4:] == [
        "failed units (rerun to retry): r002-p000004-000005-s000002-000004",
        "so far: 14 samples, 42 tokens",
        f"verdicts {KEY}: 6/7 sample units",
    ]


def test_status_of_an_adaptive_root_before_its_first_verdict(adaptive_root):
    write_unit(adaptive_root, "r001-p000000-000001-s000000-000002", "p0", 0, None)
    assert run_status(adaptive_root)[1:4] == [
        "units: 1 done, 0 in flight, 0 failed",
        ("allocation until_solved: 2 of 40 budget samples spent so far; its later rounds follow from one verifier's "
         "verdicts (verdicts/: none yet)"),
        "so far: 2 samples, 6 tokens",
    ]
