"""metrics.json `search` and the report's search section on tiny hand-written roots: a beam search
(N=4, M=2) and a sample run (n=4) of the same two problems scored by the same PRM, every number
computed by hand below; the interpolation at matched compute, the beyond-n case included.

Problems p0 (right answer 7) and p1 (right answer 3).
Search, trajectories (answer, reward), sample 0 first:
  p0: 7 .875 | 5 .5 | 5 .25 | 5 null   top 1; vote 7: .875 > 5: .75 -> 1; majority 5 -> 0
  p1: 4 .75  | 3 .5 | 3 .5  | 4 .25    top 0; vote 3: 1.0 = 4: 1.0, a tie -> 1/2; majority 2-2 -> 1/2
  top 1/2, weighted vote 3/4, majority 1/4, pass@N 1.
  Tree: p0 generated 100 tokens and 20 in lookahead, the PRM read 300; p1 60, 0, 200:
  policy tokens (100 + 20 + 60) / 2 = 90, PRM tokens 500 / 2 = 250 per problem.
Sample run, samples (answer, reward, generated tokens, PRM tokens):
  p0: 7 .9 10 30 | 5 .6 20 40 | 7 .4 30 50 | 5 .8 40 60   per sample 25 generated, 45 read
  p1: 3 .2 35 15 | 4 .7 35 15 | 4 .3 35 15 | 3 .1 35 15   per sample 35 generated, 15 read
  k samples cost 30k generated and 30k PRM tokens per problem.
  best-of-k by reward: p0 ranks T F F T: 1/2, 1/2, 1; p1 ranks F F T T: 1/2, 1/6, 0;
  mean 1/2, 1/3, 1/2 at k = 1, 2, 4.
Sizes: the policy 1,000 parameters (metrics.model_params), the PRM 500 (a safetensors header):
  search FLOPs 2 x 1000 x 90 + 2 x 500 x 250 = 430,000 per problem; a sample 2 x 1000 x 30 +
  2 x 500 x 30 = 90,000, so k samples 90,000k.
At equal generated tokens the search's 90 buy k = 3 samples: best-of-k 1/3 + log2(3/2) x (1/2 -
1/3) between k = 2 and 4; at equal FLOPs 430,000 / 90,000 = 4.78 samples, beyond n = 4.
"""

import json
import math

import numpy as np
import pyarrow as pa
import pytest

from jobs import api
from jobs.config import ScoreConfig
from jobs.errors import ConfigError
from jobs.metrics.search import AtCost, at_cost, cost_at_k, flops, search_accuracy
from jobs.problems.units import unit_id
from jobs.report.runs import Run
from jobs.report.search import search_comparisons
from jobs.stages.scoring import SCORES_SCHEMA, scorer_key
from jobs.stages.search import TREE_SCHEMA
from jobs.store.root import RunStore
from verifiers import VERDICTS_SCHEMA, get_verifier
from workers.samples import SAMPLES_SCHEMA

KEY = get_verifier("exact").key()
UNIT = unit_id(0, 2, 0, 4)
RIGHT = {"p0": "7", "p1": "3"}
# problem -> [(answer, reward, generated tokens, PRM tokens)] in sample_idx order
SEARCH = {"p0": [("7", 0.875, 40, 90), ("5", 0.5, 30, 80), ("5", 0.25, 30, 70), ("5", None, 30, 60)],
          "p1": [("4", 0.75, 20, 50), ("3", 0.5, 20, 50), ("3", 0.5, 20, 50), ("4", 0.25, 20, 50)]}
SAMPLE = {"p0": [("7", 0.9, 10, 30), ("5", 0.6, 20, 40), ("7", 0.4, 30, 50), ("5", 0.8, 40, 60)],
          "p1": [("3", 0.2, 35, 15), ("4", 0.7, 35, 15), ("4", 0.3, 35, 15), ("3", 0.1, 35, 15)]}
# problem -> tree nodes (generated tokens, lookahead tokens, PRM tokens)
TREE = {"p0": [(0, 0, 0), (40, 10, 150), (60, 10, 150)], "p1": [(0, 0, 0), (30, 0, 100), (30, 0, 100)]}
POLICY_PARAMS, PRM_PARAMS = 1000, 500
BEST_OF_2 = 1 / 3
AT_3 = BEST_OF_2 + math.log2(1.5) * (0.5 - BEST_OF_2)

JOB_YAML = """run:
  root: {root}
model:
  path: /models/policy
sampling:
  'n': 4
problems:
  source: arithmetic
verify:
  verifier: exact
score:
  model: {prm}
  kind: process
strategy:
  kind: {kind}
  width: {width}
  beam: 2
metrics:
  model_params: {params}
"""


@pytest.fixture(scope="module")
def prm(tmp_path_factory) -> str:
    """A PRM folder whose safetensors header says 500 parameters."""
    folder = tmp_path_factory.mktemp("prm")
    header = json.dumps({"w": {"dtype": "F32", "shape": [20, 25], "data_offsets": [0, 2000]}}).encode()
    (folder / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + bytes(2000))
    return str(folder)


def write_root(path: str, kind: str, pool: dict, prm: str, tree: dict | None = None) -> RunStore:
    """A root as troop leaves it before metrics: job.yaml, samples, verdicts, PRM scores and,
    for a search, the tree."""
    store = RunStore(path)
    store.write_text(store.job_yaml, JOB_YAML.format(root=path, prm=prm, kind=kind, width=4 if kind != "sample" else "null",
                                                     params=POLICY_PARAMS))
    rows = [(p, i, *s) for p in pool for i, s in enumerate(pool[p])]
    ids, idx = [r[0] for r in rows], [r[1] for r in rows]
    store.write_table(store.sample_unit(UNIT), pa.table({
        "problem_id": ids, "sample_idx": idx, "text": ["x"] * len(rows), "num_tokens": [r[4] for r in rows],
        "cumulative_logprob": [-1.0] * len(rows), "finish_reason": ["stop"] * len(rows), "seed": [0] * len(rows),
    }, schema=SAMPLES_SCHEMA), SAMPLES_SCHEMA)
    passed = [r[2] == RIGHT[r[0]] for r in rows]
    store.write_table(store.verdict_unit(KEY, UNIT), pa.table({
        "problem_id": ids, "sample_idx": idx, "passed": passed, "status": ["pass" if ok else "fail" for ok in passed],
        "answer": [r[2] for r in rows], "detail": [""] * len(rows)}, schema=VERDICTS_SCHEMA), VERDICTS_SCHEMA)
    schema = SCORES_SCHEMA.with_metadata({b"troop.reward": b"probability"})
    store.write_table(store.score_unit(scorer_key(ScoreConfig(model=prm, kind="process")), UNIT), pa.table({
        "problem_id": ids, "sample_idx": idx, "reward": [r[3] for r in rows],
        "step_rewards": [[0.5, r[3]] if r[3] is not None else None for r in rows], "detail": [None] * len(rows),
        "num_tokens": [r[5] for r in rows]}, schema=schema), schema)
    if tree is not None:
        nodes = [(p, j, *node) for p in tree for j, node in enumerate(tree[p])]
        size = len(nodes)
        store.write_table(store.search_unit(UNIT), pa.table({
            "problem_id": [n[0] for n in nodes], "step": [min(n[1], 1) for n in nodes],
            "node": ["0" if n[1] == 0 else f"0.{n[1] - 1}" for n in nodes], "parent": ["" if n[1] == 0 else "0" for n in nodes],
            "group": [0] * size, "text": ["x"] * size, "step_reward": [0.5] * size, "score": [0.5] * size,
            "status": ["finished"] * size, "finish_reason": ["stop"] * size, "seed": [0] * size,
            "num_tokens": [n[2] for n in nodes], "sample_idx": [[] for _ in nodes], "prm_tokens": [n[4] for n in nodes],
            "lookahead_tokens": [n[3] for n in nodes]}, schema=TREE_SCHEMA), TREE_SCHEMA)
    return store


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, prm) -> RunStore:
    """A sweep root of two measured points, strategy.kind=sample and strategy.kind=beam."""
    base = str(tmp_path_factory.mktemp("sweep"))
    store = RunStore(base)
    store.write_text(store.sweep_yaml, "points:\n- name: kind=sample\n  values: {strategy.kind: sample}\n"
                                       "- name: kind=beam\n  values: {strategy.kind: beam}\n")
    write_root(f"{base}/kind=sample", "sample", SAMPLE, prm)
    write_root(f"{base}/kind=beam", "beam", SEARCH, prm, TREE)
    for name in ("kind=sample", "kind=beam"):
        api.metrics(f"{base}/{name}")
    return store


def search_of(sweep: RunStore, point: str) -> dict:
    point_store = RunStore(f"{sweep.root}/{point}")
    return json.loads(point_store.read_text(point_store.metrics_json))["search"]


# The pure functions.


def test_search_accuracy_per_problem():
    problem = np.repeat([0, 1], 4)
    rows = [s for p in ("p0", "p1") for s in SEARCH[p]]
    answer = np.array([{"7": 0, "5": 1, "4": 2, "3": 3}[r[0]] for r in rows])
    passed = np.array([r[0] == RIGHT[p] for p in ("p0", "p1") for r in SEARCH[p]])
    weights = np.array([r[1] or 0.0 for r in rows])
    found = search_accuracy(problem, np.tile(np.arange(4), 2), passed, answer, weights)
    assert found["top"].tolist() == [1.0, 0.0]
    assert found["weighted_vote"].tolist() == [1.0, 0.5]  # p1: 3 and 4 both weigh 1.0, a tie
    assert found["majority"].tolist() == [0.0, 0.5]
    assert found["pass_at_n"].tolist() == [1.0, 1.0]


def test_sample_zero_decides_top_whatever_the_rewards_and_row_order():
    # Rows shuffled; sample 0 fails though another sample has a higher reward and passes.
    found = search_accuracy([0, 0, 0], [2, 0, 1], [True, False, True], [0, 1, 0], [0.9, 0.1, 0.8])
    assert found["top"].tolist() == [0.0] and found["weighted_vote"].tolist() == [1.0]


def test_flops_and_cost_at_k():
    assert flops(1000, 90.0, 500, 250.0) == 430_000
    assert flops(None, 90.0, 500, 250.0) is None and flops(1000, 90.0, 500, None) is None
    # Per k: k/n of each problem's cost, averaged (n may differ between problems).
    assert cost_at_k([1, 2, 4], np.array([4, 4]), np.array([100.0, 140.0])) == {"1": 30.0, "2": 60.0, "4": 120.0}
    assert cost_at_k([1, 2], np.array([2, 4]), np.array([10.0, 40.0])) == {"1": 7.5, "2": 15.0}
    assert cost_at_k([1], np.array([4]), None) is None


def test_at_cost_interpolates_in_log2_k_and_says_beyond_n():
    ks, costs, values = [1, 2, 4], [30.0, 60.0, 120.0], [0.5, BEST_OF_2, 0.5]
    within = at_cost(ks, costs, values, 90.0)
    assert within.k == pytest.approx(3.0) and within.value == pytest.approx(AT_3) and not within.beyond
    assert at_cost(ks, costs, values, 60.0) == AtCost(2.0, pytest.approx(BEST_OF_2))  # on a measured k: its value
    assert at_cost(ks, costs, values, 120.0).value == pytest.approx(0.5)
    beyond = at_cost(ks, costs, values, 150.0)
    assert (beyond.k, beyond.value, beyond.beyond) == (5.0, None, True)  # not extrapolated
    below = at_cost(ks, costs, values, 15.0)
    assert (below.k, below.value, below.below) == (0.5, None, True)
    assert at_cost(ks, None, values, 90.0) == AtCost(None, None)  # the sample run's cost unknown
    assert at_cost(ks, costs, values, None) == AtCost(None, None)  # the search's
    assert at_cost(ks, costs, None, 90.0) == AtCost(3.0, None)  # no such curve


# metrics.json `search`.


def test_a_search_runs_section(sweep):
    section = search_of(sweep, "kind=beam")
    assert section["strategy"] == {"kind": "beam", "width": 4, "beam": 2}
    assert section["problems"] == 2
    assert section["accuracy"] == {"top": 0.5, "weighted_vote": 0.75, "majority": 0.25, "pass_at_n": 1.0}
    assert (section["policy_params"], section["prm_params"]) == (POLICY_PARAMS, PRM_PARAMS)
    assert section["policy_tokens_per_problem"] == 90.0
    assert section["prm_tokens_per_problem"] == 250.0
    assert section["flops_per_problem"] == 430_000.0
    assert "selection" not in section


def test_a_sample_runs_section_reuses_the_metrics_selection_curves(sweep):
    section = search_of(sweep, "kind=sample")
    point = RunStore(f"{sweep.root}/kind=sample")
    metrics = json.loads(point.read_text(point.metrics_json))
    assert section["strategy"] == {"kind": "sample", "width": None, "beam": None}
    assert section["ks"] == [1, 2, 4]
    assert section["selection"] == {"best_of_k": metrics["best_of_k_reward"], "majority_at_k": metrics["majority_at_k"],
                                    "weighted_at_k": metrics["weighted_at_k_reward"]}
    assert section["selection"]["best_of_k"] == pytest.approx({"1": 0.5, "2": BEST_OF_2, "4": 0.5})
    assert section["policy_tokens_per_problem"] == 120.0 and section["prm_tokens_per_problem"] == 120.0
    assert section["flops_per_problem"] == 360_000.0
    assert section["cost_at_k"] == {"policy_tokens_per_problem": {"1": 30.0, "2": 60.0, "4": 120.0},
                                    "prm_tokens_per_problem": {"1": 30.0, "2": 60.0, "4": 120.0},
                                    "flops_per_problem": {"1": 90_000.0, "2": 180_000.0, "4": 360_000.0}}


def test_unknown_sizes_and_old_roots_leave_flops_and_prm_tokens_null(tmp_path, prm):
    store = write_root(str(tmp_path / "old"), "sample", SAMPLE, str(tmp_path / "no-such-prm"))
    path = store.score_unit(scorer_key(ScoreConfig(model=str(tmp_path / "no-such-prm"), kind="process")), UNIT)
    store.write_table(path, store.read_table(path).drop_columns(["num_tokens"]))  # scores written before num_tokens
    section = api.metrics(store.root).metrics["search"]
    assert section["prm_params"] is None and section["prm_tokens_per_problem"] is None
    assert section["flops_per_problem"] is None and section["cost_at_k"]["flops_per_problem"] is None
    assert section["policy_tokens_per_problem"] == 120.0


def test_no_section_without_a_prms_scores(tmp_path, prm):
    store = write_root(str(tmp_path / "orm"), "sample", SAMPLE, prm)
    key = scorer_key(ScoreConfig(model=prm, kind="process"))
    table = store.read_table(store.score_unit(key, UNIT))
    outcome = table.set_column(table.schema.get_field_index("step_rewards"), "step_rewards",
                               pa.nulls(table.num_rows, pa.list_(pa.float64())))
    store.write_table(store.score_unit(key, UNIT), outcome)  # an outcome model's scores: no step rewards
    assert api.metrics(store.root).metrics["search"] is None
    store.fs.rm(store.path("scores"), recursive=True)
    assert api.metrics(store.root, ["score.model=null"]).metrics["search"] is None


# The report.


def test_the_sweep_report_compares_the_beam_point_with_the_sample_point(sweep):
    result = api.report([sweep.root])
    (compared,) = result.search
    assert compared.run.label == "kind=beam" and compared.baseline.label == "kind=sample"
    tokens = compared.matched["policy_tokens_per_problem"]
    assert tokens["best_of_k"].k == pytest.approx(3.0) and tokens["best_of_k"].value == pytest.approx(AT_3)
    assert tokens["majority_at_k"].value == pytest.approx(0.5)
    at_flops = compared.matched["flops_per_problem"]["best_of_k"]
    assert at_flops.beyond and at_flops.k == pytest.approx(430 / 90) and at_flops.value is None
    out = RunStore(sweep.path("report"))
    png = out.fs.cat_file(out.path("search.png"))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 15_000
    page = out.read_text(out.path("index.html"))
    assert "<h2>Search vs sampling at the same compute</h2>" in page and '<img src="search.png"' in page
    row = ("<tr><td class=l>kind=beam</td><td class=l>beam N=4/M=2</td><td class=l>kind=sample</td>"
           "<td>0.500</td><td>0.750</td><td>0.250</td><td>1.000</td>"
           f"<td>90</td><td>3.0</td><td>{AT_3:.3f}</td><td>0.500</td>"
           "<td>430,000</td><td>4.8 (beyond n=4)</td><td>beyond n</td><td>beyond n</td></tr>")
    assert row in page


def test_report_search_root_against_the_sample_root(sweep, tmp_path):
    out = str(tmp_path / "out")
    result = api.report([f"{sweep.root}/kind=beam"], out=out, against=f"{sweep.root}/kind=sample")
    (compared,) = result.search
    assert compared.baseline.label == f"sample run: {sweep.root}/kind=sample"
    assert compared.matched["policy_tokens_per_problem"]["best_of_k"].value == pytest.approx(AT_3)
    assert RunStore(out).exists(RunStore(out).path("search.png"))


def test_against_a_root_that_is_no_sample_run_of_the_prm_is_refused(sweep, tmp_path):
    with pytest.raises(ConfigError, match="is compared with a sample run scored by the same PRM, and it is not a sample run"):
        api.report([f"{sweep.root}/kind=beam"], out=str(tmp_path / "a"), against=f"{sweep.root}/kind=beam")
    assert not (tmp_path / "a").exists()


def test_a_report_without_search_runs_has_no_search_section(sweep, tmp_path):
    out = tmp_path / "plain"
    result = api.report([f"{sweep.root}/kind=sample"], out=str(out))
    assert result.search == [] and not (out / "search.png").exists()
    assert "Search vs sampling" not in (out / "index.html").read_text()


def test_a_search_run_alone_is_shown_without_a_sample_run(sweep, tmp_path):
    out = tmp_path / "alone"
    (compared,) = api.report([f"{sweep.root}/kind=beam"], out=str(out)).search
    assert compared.baseline is None and compared.matched == {}
    page = (out / "index.html").read_text()
    assert "no sample run scored by the same PRM" in page and (out / "search.png").exists()


def test_troop_report_prints_a_line_per_search_run(sweep, capsys):
    from jobs.cli.main import main

    assert main(["report", sweep.root]) == 0
    assert (f"search: kind=beam (beam N=4/M=2) top 0.500, weighted vote 0.750; kind=sample best-of-k (PRM) at equal "
            f"tokens (k=3.0): {AT_3:.3f}; at equal FLOPs (k=4.8): beyond n") in capsys.readouterr().out.splitlines()


def test_a_verifier_without_answers_leaves_the_votes_null(tmp_path, prm):
    no_answers = {p: [(None, *s[1:]) for s in rows] for p, rows in SEARCH.items()}
    store = write_root(str(tmp_path / "search"), "beam", no_answers, prm, TREE)
    table = store.read_table(store.verdict_unit(KEY, UNIT))
    store.write_table(store.verdict_unit(KEY, UNIT), table.set_column(  # sample 0 of p0 passes all the same
        table.schema.get_field_index("passed"), "passed", pa.array([True] + [False] * 7)))
    accuracy = api.metrics(store.root).metrics["search"]["accuracy"]
    assert accuracy == {"top": 0.5, "weighted_vote": None, "majority": None, "pass_at_n": 0.5}


def fake_run(label: str, **section) -> Run:
    return Run(RunStore(f"memory://{label}"), label, {"search": section}, None)


def test_the_sample_run_of_the_same_prm_and_problems_with_the_largest_k_is_the_baseline():
    search = fake_run("beam", strategy={"kind": "beam", "width": 4, "beam": 2}, scorer="prm-a", problems=2,
                      policy_tokens_per_problem=90.0, accuracy={"top": 0.5})
    other_prm = fake_run("other-prm", strategy={"kind": "sample"}, scorer="prm-b", problems=2, ks=[1, 2, 4, 8])
    fewer = fake_run("fewer", strategy={"kind": "sample"}, scorer="prm-a", problems=1, ks=[1, 2, 4, 8])
    small = fake_run("n=4", strategy={"kind": "sample"}, scorer="prm-a", problems=2, ks=[1, 2, 4])
    large = fake_run("n=8", strategy={"kind": "sample"}, scorer="prm-a", problems=2, ks=[1, 2, 4, 8],
                     cost_at_k={"policy_tokens_per_problem": {"1": 30.0, "2": 60.0, "4": 120.0, "8": 240.0}},
                     selection={"best_of_k": {"1": 0.5, "2": BEST_OF_2, "4": 0.5, "8": 0.5}})
    (compared,) = search_comparisons([search, other_prm, fewer, small, large])
    assert compared.baseline is large
    assert compared.matched["policy_tokens_per_problem"]["best_of_k"].value == pytest.approx(AT_3)
    assert compared.matched["flops_per_problem"]["best_of_k"] == AtCost(None, None)  # FLOPs unknown
    (alone,) = search_comparisons([search, other_prm, fewer])
    assert alone.baseline is None
    assert alone.unmatched == ("other-prm: its scores are by prm-b, the search's by prm-a: score both with the same PRM; "
                               "fewer: it has 1 problems, the search 2: compare runs of the same problems")


def test_troop_metrics_prints_the_search_line(sweep, capsys):
    from jobs.cli.main import main

    assert main(["metrics", f"{sweep.root}/kind=beam"]) == 0
    assert ("search beam N=4/M=2: top 0.500, weighted vote 0.750, majority 0.250, pass@N 1.000; per problem "
            "90 generated tokens, 250 PRM tokens, 4.3e+05 FLOPs") in capsys.readouterr().out.splitlines()
