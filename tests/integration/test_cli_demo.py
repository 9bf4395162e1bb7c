"""`troop run conf/demo.yaml` end to end in a subprocess (its own local Ray and engine), then
the root commands on its output. The demo model must show the repeated-sampling effect."""

import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def troop(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run(
        [sys.executable, "-m", "jobs", *args], capture_output=True, text=True, cwd=REPO, timeout=600, env=env
    )


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "run"
    result = troop("run", "conf/demo.yaml", f"run.root={root}")
    assert result.returncode == 0, result.stderr[-3000:]
    return root, result


def test_demo_writes_the_run_layout(demo_root):
    root, _ = demo_root
    assert (root / "job.yaml").is_file()
    assert pq.read_table(root / "problems.parquet").num_rows == 100
    samples = list((root / "samples").glob("unit-*.parquet"))
    assert sum(pq.read_metadata(p).num_rows for p in samples) == 100 * 64
    [verdict_dir] = list((root / "verdicts").iterdir())
    assert verdict_dir.name.startswith("numeric-")
    assert sorted(p.name for p in verdict_dir.glob("unit-*.parquet")) == sorted(p.name for p in samples)
    job = yaml.safe_load((root / "job.yaml").read_text())
    assert job["model"]["path"] == "demo/model" and job["model"]["dtype"] == "float32"
    assert job["model"]["max_model_len"] == 128
    assert job["sampling"]["n"] == 64 and job["sampling"]["max_tokens"] == 8
    assert job["sampling"]["temperature"] == 1.0 and job["sampling"]["top_p"] == 1.0
    assert job["troop"]["vllm"] and job["troop"]["troop"] and job["troop"]["model_revision"]


def test_demo_shows_coverage_growing_with_k(demo_root):
    root, result = demo_root
    metrics = json.loads((root / "metrics.json").read_text())
    curve = metrics["pass_at_k"]
    assert list(curve) == ["1", "2", "4", "8", "16", "32", "64"]
    assert 0.10 <= curve["1"] <= 0.50
    assert curve["64"] >= 0.8 and curve["64"] > 2 * curve["1"]
    assert metrics["counts"]["problems"] == 100 and metrics["counts"]["samples"] == 6400
    assert f"run: {root}" in result.stdout
    assert "pass@k" in result.stdout and "maj@k" in result.stdout
    # The selection curves of the demo's numeric answers, and the report troop run ends with.
    assert list(metrics["majority_at_k"]) == list(curve) and list(metrics["best_of_k"]) == list(curve)
    assert metrics["majority_at_k"]["1"] == pytest.approx(curve["1"])  # one sample: its answer is right iff it passes
    assert metrics["cost"]["model_params"] > 0 and (root / "metrics" / "problems.parquet").is_file()
    report = (root / "report" / "index.html").read_text()
    for png in ("coverage", "selection", "difficulty", "pass_rates", "tokens"):
        assert f'src="{png}.png"' in report and (root / "report" / f"{png}.png").stat().st_size > 10_000
    assert f"report: {root}/report/index.html" in result.stdout
    # The demo's reward model scored every sample: the selection comparison is in the table.
    [scores] = list((root / "scores").iterdir())
    assert scores.name.startswith("reward_model-") and metrics["reward"]["scorer"] == scores.name
    assert sorted(p.name for p in scores.glob("unit-*.parquet")) == sorted(p.name for p in (root / "samples").glob("unit-*.parquet"))
    for name in ("best_of_k_logprob", "best_of_k_reward", "weighted_at_k_reward"):
        assert list(metrics[name]) == list(curve)
    assert "best-of-k reward" in result.stdout and f"scored 4 units with {scores.name}: 6,400 samples" in result.stdout


def test_root_commands_on_the_demo(demo_root):
    root, _ = demo_root
    status = troop("status", str(root))
    assert status.returncode == 0, status.stderr
    assert "samples: 4/4 units done, 0 in flight, 0 failed, 0 remaining (100 problems x n=64)" in status.stdout
    assert "so far: 6,400 samples" in status.stdout
    again = troop("verify", str(root))
    assert again.returncode == 0 and "verified 0 units" in again.stdout
    metrics = troop("metrics", str(root))
    assert metrics.returncode == 0 and "pass@k" in metrics.stdout
