"""`troop run conf/demo_search.yaml` end to end in a subprocess (its own local Ray and engines) on
a slice of the demo's held-out chains: the config's sweep runs independent samples and beam
search with the demo's policy and PRM, and the report sets them side by side at matched
compute. Which strategy wins is measured by the demo itself (README), not asserted here."""

import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROBLEMS = 12


@pytest.fixture(scope="module")
def demo_search(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo-search") / "runs"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    result = subprocess.run(
        [sys.executable, "-m", "jobs", "run", "conf/demo_search.yaml", f"run.root={root}",
         f"problems.options.num_problems={PROBLEMS}"],
        capture_output=True, text=True, cwd=REPO, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return root, result


def points(root) -> dict:
    return {p["name"]: root / p["name"] for p in yaml.safe_load((root / "sweep.yaml").read_text())["points"]}


def test_the_demo_runs_sampling_and_search_on_the_same_problems(demo_search):
    root, _ = demo_search
    found = points(root)
    assert sorted(found) == ["kind=beam", "kind=sample"]
    with open(os.path.join(REPO, "conf", "demo_search.yaml")) as f:
        config = yaml.safe_load(f)
    width = config["strategy"]["width"]
    rows = {name: sum(pq.read_metadata(p).num_rows for p in (path / "samples").glob("unit-*.parquet"))
            for name, path in found.items()}
    assert rows == {"kind=sample": PROBLEMS * config["sampling"]["n"], "kind=beam": PROBLEMS * width}
    trees = list((found["kind=beam"] / "search").glob("unit-*.parquet"))
    assert trees and all(pq.read_metadata(p).num_rows >= width for p in trees)


def test_the_report_compares_search_with_best_of_n_at_matched_compute(demo_search):
    root, result = demo_search
    found = points(root)
    search = json.loads((found["kind=beam"] / "metrics.json").read_text())["search"]
    sample = json.loads((found["kind=sample"] / "metrics.json").read_text())["search"]
    assert search["strategy"]["kind"] == "beam" and sample["strategy"]["kind"] == "sample"
    assert set(search["accuracy"]) == {"top", "weighted_vote", "majority", "pass_at_n"}
    assert search["flops_per_problem"] > 0 and sample["cost_at_k"]["flops_per_problem"]
    assert (root / "report" / "search.png").is_file()
    page = (root / "report" / "index.html").read_text()
    assert "same compute" in page.lower()
