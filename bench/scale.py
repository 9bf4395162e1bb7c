"""Scale: wall time and peak memory of `troop verify` and `troop metrics` as the pool grows.

Synthetic pools of 1k, 10k and 100k problems x 100 samples (no engine needed).

    .venv/bin/python bench/scale.py [--sizes 1000,10000,100000] [--samples 100] [--cpus 2] [--no-control]
                                    [--root DIR] [--keep]

The question: do sample units stream through the verify driver, the verification workers and
the metrics pass, or does something hold the whole pool? Some memory grows with the number of
problems by design (never with the samples of a problem): each verification worker keeps every
problem's payload (its gold answer) for the run, the verify driver reads the problems file and
builds the payloads once to check their columns, and metrics keep a few numbers per problem
and write per-problem tables (metrics/curves.parquet has problems x ks x curves rows). So the
largest size is run again with a tenth of the samples (same problems, a tenth of the rows and
units; --no-control skips it): a peak that moves there grows with the samples, which streaming
units must not; the rest grows with the problems. The per-problem parts are also measured on
their own, as the size of their data.

Each size gets its own run root (a temporary folder, deleted afterwards unless --keep; under
--root DIR it is DIR/problems-<N>-samples-<S>, kept, and reused when built with the same
flags), built first and timed apart, seeded and vectorized (no Python loop over samples):
`problems.parquet` (problem_id, prompt, answer: an integer as a string) and
`samples/unit-<id>.parquet` with the samples schema, cut as `troop generate` cuts them
(`jobs.problems.units.plan_units` with the default plan.samples_per_unit: 20 problems x 100 samples a
unit). A completion ends "#### <number>": right with a per-problem probability ~ Beta(0.6, 0.8),
else the answer plus a Zipf(1.6) offset capped at 50 (a small head of common wrong answers);
3% hold no number at all (finish_reason "length"). Every completion is distinct (it starts
"Attempt <sample_idx>:"), so the verifier deduplicates none; its length follows num_tokens
(20..200, about 4 characters a token); cumulative_logprob = -num_tokens x a Gamma(4, 0.05)
per-token cost, 0.05 more when wrong.

Each measurement runs in a fresh child process (this script, `--child NAME`); its peak RSS is
VmHWM, reset just before the timed work by writing 5 to /proc/self/clear_refs (not
`ru_maxrss`, which a spawned child inherits from its parent's peak: see `peak_mib`):
- verify: `jobs.usecases.verify.verify_run` as `troop verify ROOT verify.verifier=numeric` calls it on
  a root without job.yaml, in a child that first starts its own local Ray with `--cpus` CPUs
  (as many verification actors). Wall time of the call (reading the problems, the gold
  self-check, starting the actors, every unit), samples/s, the driver's peak RSS, and the
  workers' peak (`VerifySummary.worker_peak_rss_mb`: the largest `ru_maxrss` an actor reported,
  over its whole life, so with its imports, and never below the peak of the raylet that
  started it). Ray's own daemons (GCS, raylet) are not counted.
  The pass and no-answer counts must equal those the build planted, else the script fails.
- metrics: `jobs.metrics.measure.measure_run` with the default `MetricsConfig` + `write_metrics`, on
  the verifier key the verify step reported; the numba kernels are compiled (or loaded from
  numba's cache) on a tiny root first, outside the timed call.
- parts: the per-problem parts as the size of their data (Arrow tables by nbytes, Python
  objects by tracemalloc): the verify driver's `jobs.usecases.verify.prepare_verification` on the
  problems table, a worker's `jobs.stages.verification.read_payloads` at its peak and the dict it keeps.
"""

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from procmem import peak_mib, reset_peak, rss_mib, timed  # noqa: E402  bench/ is the script's folder

VERIFIER = "numeric"
SPEC_FILE = "bench-scale.json"  # what a root under --root holds, so that a rerun can reuse it
SOLVE_RATE = (0.6, 0.8)  # Beta parameters of a problem's chance to be answered right
WRONG_ZIPF, WRONG_HEAD = 1.6, 50  # a wrong answer is the gold one plus min(Zipf, WRONG_HEAD)
NO_ANSWER = 0.03  # share of completions cut off before any number
TOKENS = (20, 200)
FLAT = 1.25  # a peak that grows less than this factor over the sizes counts as flat
MiB = 2**20
# No digits here: a completion without "#### n" must hold no number for the verifier to find.
WORDS = "we read the problem again, name each quantity, write the equation and solve it step by step; "
PROMPT = ("A baker sells loaves in the morning and rolls in the afternoon. Each loaf costs a few dollars "
          "more than a roll, and by evening the till holds the day's takings. How many dollars did the "
          "baker take in all? Think step by step and end with the answer after ####.")


# ---------------------------------------------------------------- the synthetic root


def problems_table(rng, problems: int):
    """problems.parquet's table, and each problem's gold answer and solve rate as arrays."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    digits = pc.cast(pa.array(np.arange(problems)), pa.string())
    ids = pc.binary_join_element_wise("p", pc.utf8_lpad(digits, width=max(6, len(str(problems - 1))), padding="0"), "")
    answers = rng.integers(1, 10_000, problems)
    table = pa.table({
        "problem_id": ids,
        "prompt": pc.binary_join_element_wise("Problem ", ids, ". ", PROMPT, ""),
        "answer": pc.cast(pa.array(answers), pa.string()),
    })
    return table, answers, rng.beta(*SOLVE_RATE, problems)


def fillers():
    """The body of a completion by num_tokens bucket (20 tokens wide), ~4 characters a token."""
    import pyarrow as pa

    long_text = WORDS * (4 * TOKENS[1] // len(WORDS) + 2)
    return pa.array([long_text[: 4 * (TOKENS[0] + 10 + 20 * b)] for b in range(TOKENS[1] // 20)])


def unit_table(rng, unit, samples: int, ids, answers, rates, bodies):
    """One work unit's samples table, and how many of its samples are right / hold no number."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    width = unit.sample_end - unit.sample_start
    problem = unit.problem_start + np.repeat(np.arange(len(unit.problem_ids)), width)
    rows = problem.size
    sample_idx = unit.sample_start + np.tile(np.arange(width, dtype=np.int32), len(unit.problem_ids))
    missing = rng.random(rows) < NO_ANSWER
    right = (rng.random(rows) < rates[problem]) & ~missing
    final = answers[problem] + np.where(right, 0, np.minimum(rng.zipf(WRONG_ZIPF, rows), WRONG_HEAD))
    tokens = rng.integers(TOKENS[0], TOKENS[1] + 1, rows, dtype=np.int32)
    per_token = rng.gamma(4.0, 0.05, rows) + np.where(right, 0.0, 0.05)
    body = bodies.take(np.minimum((tokens - TOKENS[0]) // 20, len(bodies) - 1))
    marked = pc.binary_join_element_wise(
        "Attempt ", pc.cast(pa.array(sample_idx), pa.string()), ": ", body, " #### ", pc.cast(pa.array(final), pa.string()), "")
    table = pa.table({
        "problem_id": ids.take(pa.array(problem)),
        "sample_idx": sample_idx,
        "text": pc.if_else(pa.array(missing), body, marked),
        "num_tokens": tokens,
        "cumulative_logprob": -tokens * per_token,
        "finish_reason": pa.array(["stop", "length"]).take(missing.astype(np.int64)),
        "seed": problem.astype(np.int64) * samples + sample_idx,
    })
    return table, int(right.sum()), int(missing.sum())


def build_root(root: str, problems: int, samples: int, seed: int) -> dict:
    """Writes the synthetic run under `root`; its spec with the pass and no-answer counts
    planted. Each unit has its own seeded generator (the data do not depend on unit order)."""
    import numpy as np
    import pyarrow as pa

    from jobs.config import PlanConfig
    from jobs.problems.units import plan_units
    from jobs.store.root import RunStore
    from workers.samples import SAMPLES_SCHEMA

    store = RunStore(root)
    table, answers, rates = problems_table(np.random.default_rng([seed]), problems)
    schema = pa.schema([pa.field(name, pa.string(), nullable=name == "prompt") for name in table.column_names])
    store.write_table(store.problems, table, schema)
    ids, bodies = table["problem_id"].combine_chunks(), fillers()
    units = plan_units(ids.to_pylist(), samples, PlanConfig().samples_per_unit)
    passed = no_answer = 0
    for unit in units:
        rng = np.random.default_rng([seed, unit.problem_start, unit.sample_start])
        samples_table, right, missing = unit_table(rng, unit, samples, ids, answers, rates, bodies)
        store.write_table(store.sample_unit(unit.unit_id), samples_table, SAMPLES_SCHEMA)
        passed, no_answer = passed + right, no_answer + missing
    return {"problems": problems, "samples": samples, "seed": seed, "units": len(units),
            "passed": passed, "no_answer": no_answer}


def prepare_root(root: str, problems: int, samples: int, seed: int) -> tuple[dict, float]:
    """(spec, build seconds): builds the root, or reuses one built with the same flags (its
    verdicts and metrics removed, so that verify has every unit to do again; 0 seconds)."""
    from jobs.store.root import RunStore

    marker = os.path.join(root, SPEC_FILE)
    if os.path.exists(marker):
        with open(marker) as handle:
            spec = json.load(handle)
        if {k: spec[k] for k in ("problems", "samples", "seed")} != {"problems": problems, "samples": samples, "seed": seed}:
            sys.exit(f"{root} holds a bench root built with {spec}: give another --root")
        store = RunStore(root)
        for old in ("verdicts", "metrics", "metrics.json"):
            if store.fs.exists(store.path(old)):
                store.fs.rm(store.path(old), recursive=True)
        return spec, 0.0
    if os.path.isdir(root) and os.listdir(root):
        sys.exit(f"{root} is not empty and holds no {SPEC_FILE}: give an empty or new --root")
    began = time.perf_counter()
    spec = build_root(root, problems, samples, seed)
    with open(marker, "w") as handle:
        json.dump(spec, handle)
    return spec, time.perf_counter() - began


def warm_root(root: str, samples: int, seed: int) -> str:
    """A tiny verified root for the metrics child to compile its numba kernels on; verified
    in this process by the plain worker class (no Ray). Its verifier key."""
    from jobs.store.root import RunStore
    from jobs.stages.verification import VerifyTask, VerifyWorker
    from verifiers.registry import VerifySettings, get_verifier

    build_root(root, 40, samples, seed)
    store, worker, settings = RunStore(root), VerifyWorker(), VerifySettings()
    for unit_id in sorted(store.unit_ids("samples")):
        worker.run_unit(VerifyTask(store, unit_id, VERIFIER, settings))
    worker.close()
    return get_verifier(VERIFIER).key(settings)


# ---------------------------------------------------------------- inside a child process


def child_verify(args) -> dict:
    import ray

    from jobs.config import merge_root_config
    from jobs.store.root import RunStore
    from jobs.usecases.verify import verify_run

    # What `troop verify ROOT verify.verifier=numeric` does on a root without job.yaml.
    config = merge_root_config(args.at, None, [f"verify.verifier={VERIFIER}"])
    store = RunStore(args.at, dict(config.run.storage_options))
    began = time.perf_counter()
    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING)  # a Ray of its own: verify_run then uses it as it is
    ray_s = time.perf_counter() - began
    seconds, peak, before, summary = timed(verify_run, store, config.verify)
    ray.shutdown()
    return {
        "seconds": seconds, "peak_mib": peak, "rss_before_mib": before, "ray_start_s": ray_s,
        "worker_peak_mib": summary.worker_peak_rss_mb, "verifier_key": summary.verifier_key,
        "units": summary.units, "samples": summary.samples, "passed": summary.passed,
        "checked": summary.checked, "statuses": dict(summary.statuses), "failed": summary.failed,
        "gold_self_check": summary.gold_self_check,
    }


def child_metrics(args) -> dict:
    from jobs.metrics import kernels  # noqa: F401  numba's import is not the work
    from jobs.config import MetricsConfig
    from jobs.metrics.measure import measure_run, write_metrics
    from jobs.store.root import RunStore

    settings = MetricsConfig()
    began = time.perf_counter()
    measure_run(RunStore(args.warm), args.warm_key, settings)  # compiles or loads the kernels
    warm_s = time.perf_counter() - began
    store = RunStore(args.at)

    def metrics_command():
        metrics, problems, curves = measure_run(store, args.key, settings)
        write_metrics(store, metrics, problems, curves)
        return metrics["counts"], (problems.nbytes + curves.nbytes) / MiB, curves.num_rows

    seconds, peak, before, (counts, tables_mib, curve_rows) = timed(metrics_command)
    return {"seconds": seconds, "peak_mib": peak, "rss_before_mib": before, "warm_s": warm_s,
            "counts": counts, "tables_mib": tables_mib, "curve_rows": curve_rows}


def child_parts(args) -> dict:
    """What grows with the problems by design, as the data's own size: Arrow tables by nbytes,
    Python objects by tracemalloc (exact, where RSS would blur them with allocator slack, so the
    RSS they cost is somewhat more). The verify driver's `prepare_verification` (it builds the
    payloads once to check their columns, then the gold self-check) on the problems table it
    reads whole; a worker's `read_payloads` at its peak, and the dict it keeps for the run."""
    import tracemalloc

    from jobs.config import VerifyConfig
    from jobs.store.root import RunStore
    from jobs.usecases.verify import prepare_verification
    from jobs.stages.verification import read_payloads
    from verifiers import get_verifier

    store = RunStore(args.at)
    table = store.read_table(store.problems)
    table_mib = table.nbytes / MiB

    def traced(work):
        tracemalloc.start()
        result = work()
        held, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return result, held / MiB, peak / MiB

    _, _, prepare_peak = traced(lambda: prepare_verification(VerifyConfig(verifier=VERIFIER), table, store.problems))
    _, held, payload_peak = traced(lambda: read_payloads(store, get_verifier(VERIFIER)))
    return {"table_mib": table_mib, "prepare_mib": table_mib + prepare_peak,
            "payloads_mib": table_mib + payload_peak, "held_mib": held}


CHILDREN = {"verify": child_verify, "metrics": child_metrics, "parts": child_parts}


def run_child(name: str, *flags: str) -> dict:
    """One measurement in a fresh interpreter; its result is the JSON on its last stdout line
    (its stderr, e.g. warnings, passes through)."""
    command = [sys.executable, os.path.abspath(__file__), "--child", name, *flags]
    out = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------- one size


def check_planted(verify: dict, spec: dict) -> None:
    """The verifier found exactly the right and the numberless completions the build planted."""
    found = (verify["passed"], verify["statuses"].get("no_answer", 0), verify["samples"])
    planted = (spec["passed"], spec["no_answer"], spec["problems"] * spec["samples"])
    if found != planted or verify["failed"]:
        sys.exit(f"FAIL: verify found (passed, no_answer, samples) = {found}, the build planted {planted}; "
                 f"failed units: {verify['failed']}")


def measure_size(problems: int, samples: int, args, warm: tuple[str, str]) -> dict:
    """Builds (or reuses) the root of one size and runs the children on it."""
    if args.root:
        root, temporary = os.path.join(os.path.abspath(args.root), f"problems-{problems}-samples-{samples}"), False
        os.makedirs(root, exist_ok=True)
    else:
        root, temporary = tempfile.mkdtemp(prefix=f"troop-bench-scale-{problems}x{samples}-"), not args.keep
    try:
        spec, built_s = prepare_root(root, problems, samples, args.seed)
        rows = problems * samples
        print(f"\n{problems:,} problems x {samples} samples = {rows:,} rows in {spec['units']:,} units at {root}: "
              + (f"built in {built_s:.1f} s (not measured)" if built_s else "reused the root as it was"), flush=True)
        parts = run_child("parts", "--at", root)
        verify = run_child("verify", "--at", root, "--cpus", str(args.cpus))
        check_planted(verify, spec)
        print(f"  verify:  {verify['seconds']:7.1f} s, {rows / verify['seconds']:,.0f} samples/s, driver peak "
              f"{verify['peak_mib']:.0f} MiB (RSS before {verify['rss_before_mib']:.0f}), worker peak "
              f"{verify['worker_peak_mib']:.0f} MiB; {verify['passed']:,} passed, statuses {verify['statuses']}, "
              f"gold self-check {verify['gold_self_check']}; Ray start {verify['ray_start_s']:.1f} s apart", flush=True)
        metrics = run_child("metrics", "--at", root, "--key", verify["verifier_key"], "--warm", warm[0], "--warm-key", warm[1])
        print(f"  metrics: {metrics['seconds']:7.1f} s, peak {metrics['peak_mib']:.0f} MiB (RSS before "
              f"{metrics['rss_before_mib']:.0f}); per-problem output tables {metrics['tables_mib']:.0f} MiB "
              f"({metrics['curve_rows']:,} curve rows); kernels warmed in {metrics['warm_s']:.1f} s apart", flush=True)
        return {"problems": problems, "samples": samples, "rows": rows, "units": spec["units"], "verify": verify,
                "metrics": metrics, "parts": parts}
    finally:
        if temporary:
            shutil.rmtree(root, ignore_errors=True)
        elif not args.root:
            print(f"  kept {root}")


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


# (label, the peak in one size's results, the part of it that grows with the problems by
# design, measured on its own, and what that part is)
PEAKS = [
    ("verify driver", lambda r: r["verify"]["peak_mib"], lambda r: r["parts"]["prepare_mib"],
     "prepare_verification: the problems table read whole, every payload built once to check the columns, "
     "the gold self-check"),
    ("verify worker", lambda r: r["verify"]["worker_peak_mib"], lambda r: r["parts"]["payloads_mib"],
     "read_payloads: every problem's payload, built from the whole problems table and kept for the run"),
    ("metrics", lambda r: r["metrics"]["peak_mib"], lambda r: r["metrics"]["tables_mib"],
     "the per-problem output tables, built whole before they are written (metrics/problems + curves.parquet)"),
]
NOISE = 0.10  # a peak that moves less than this share when only the samples grow is flat


def print_table(results: list[dict]) -> None:
    print(f"\n{'problems':>9} {'samples':>7} {'rows':>11} {'units':>6} {'verify s':>9} {'samples/s':>10} "
          f"{'driver MiB':>11} {'worker MiB':>11} {'metrics s':>10} {'metrics MiB':>12}")
    for r in results:
        v, m = r["verify"], r["metrics"]
        print(f"{r['problems']:>9,} {r['samples']:>7,} {r['rows']:>11,} {r['units']:>6,} {v['seconds']:>9.1f} "
              f"{r['rows'] / v['seconds']:>10,.0f} {v['peak_mib']:>11.0f} {v['worker_peak_mib']:>11.0f} "
              f"{m['seconds']:>10.1f} {m['peak_mib']:>12.0f}")
    scope = "of the timed call, reset before it" if reset_peak() else "of the child's whole life (no reset here)"
    print(f"(driver and metrics: peak RSS {scope}; worker: the largest actor's peak over its life, imports included)")


def print_parts(results: list[dict]) -> None:
    """The parts that grow with the number of problems by design, each measured on its own."""
    from jobs.store.verified import BATCH_ROWS

    print(f"\nper-problem parts, MiB: {'problems':>9} {'samples':>7} {'table':>7} {'driver prep':>12} "
          f"{'worker payloads':>16} {'payload dict':>13} {'metrics tables':>15} {'metrics batch rows':>19}")
    for r in results:
        p = r["parts"]
        print(f"{'':23} {r['problems']:>9,} {r['samples']:>7,} {p['table_mib']:>7.1f} {p['prepare_mib']:>12.1f} "
              f"{p['payloads_mib']:>16.1f} {p['held_mib']:>13.1f} {r['metrics']['tables_mib']:>15.1f} "
              f"{min(r['rows'], BATCH_ROWS):>19,}")
    print("(Arrow tables by size, Python objects by tracemalloc: the data alone, RSS costs somewhat more. table: "
          "problems.parquet; driver prep: the table + prepare_verification's peak; worker payloads: the table + "
          "read_payloads' peak; payload dict: what a worker keeps; metrics tables: metrics/problems + curves.parquet; "
          f"metrics batch rows: the verdict rows a batch holds, whole problems up to jobs.store.verified.BATCH_ROWS = {BATCH_ROWS:,})")


def print_pair(a: dict, b: dict, what: str) -> None:
    print(f"peak memory at {b['problems']:,} x {b['samples']} vs {a['problems']:,} x {a['samples']} ({what}):")
    for label, peak, part, _ in PEAKS:
        grown = peak(b) - peak(a)
        per_problem = f"{grown * MiB / (b['problems'] - a['problems']):,.0f} B/problem; " if b["problems"] != a["problems"] else ""
        print(f"  {label:<14} {peak(a):5.0f} -> {peak(b):5.0f} MiB  x{peak(b) / peak(a):.2f}  {grown:+5.0f} MiB "
              f"({per_problem}per-problem part {part(b) - part(a):+.0f} MiB)")


def print_growth(results: list[dict], control: dict | None) -> None:
    """Each peak at the largest size against the smallest (and against the one before, where
    the metrics batch has stopped growing), then against the same problems with a tenth of the
    samples: what moves there grows with the samples, the rest with the problems."""
    last = results[-1]
    print()
    print_pair(results[0], last, f"{last['rows'] / results[0]['rows']:.0f}x the rows")
    if len(results) > 2:
        print_pair(results[-2], last, f"{last['rows'] / results[-2]['rows']:.0f}x the rows")
    growing = [(label, why) for label, peak, _, why in PEAKS if peak(last) / peak(results[0]) >= FLAT]
    if not growing:
        print(f"no peak grows {FLAT}x or more while the pool grows {last['rows'] / results[0]['rows']:.0f}x")
    if control is None:
        if growing:
            print(f"grows {FLAT}x or more: {', '.join(label for label, _ in growing)} (run the control to tell "
                  "growth with the samples from growth with the problems)")
        return
    print_pair(control, last, f"the same problems, {last['samples'] // control['samples']}x the samples and "
               f"{last['units'] / control['units']:.0f}x the units")
    with_samples = [label for label, peak, _, _ in PEAKS if peak(last) - peak(control) > NOISE * peak(control)]
    if with_samples:
        print(f"GROWS WITH THE SAMPLES (beyond {NOISE:.0%} at the same problems): {', '.join(with_samples)}")
    else:
        print(f"with the problems fixed, {last['samples'] // control['samples']}x the samples move no peak by more "
              f"than {NOISE:.0%}: the units stream; nothing holds the pool")
    for label, why in growing:
        if label not in with_samples:
            print(f"grows with the number of problems, by design: {label}: {why}")


# ---------------------------------------------------------------- main


def bench(args) -> None:
    sizes = sorted(int(s) for s in args.sizes.split(","))
    control_samples = args.samples // 10 if args.control else 0
    print(machine_line())
    print(f"sizes {', '.join(f'{s:,}' for s in sizes)} problems x {args.samples} samples"
          + (f", and {sizes[-1]:,} x {control_samples} (the same problems, a tenth of the samples)" if control_samples else "")
          + f"; verify with {args.cpus} Ray CPUs ({VERIFIER} verifier); seed {args.seed}")
    with tempfile.TemporaryDirectory(prefix="troop-bench-scale-warm-") as warm:
        warm_key = warm_root(warm, args.samples, args.seed)
        results = [measure_size(problems, args.samples, args, (warm, warm_key)) for problems in sizes]
        control = measure_size(sizes[-1], control_samples, args, (warm, warm_key)) if control_samples else None
    print_table(results + ([control] if control else []))
    print_parts(results + ([control] if control else []))
    if len(results) > 1 or control:
        print_growth(results, control)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="numbers of problems, comma-separated")
    parser.add_argument("--samples", type=int, default=100, help="samples per problem")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray: as many verification actors")
    parser.add_argument("--no-control", dest="control", action="store_false",
                        help="skip the control run: the largest size with a tenth of the samples")
    parser.add_argument("--root", help="build the roots under this folder (DIR/problems-N-samples-S) and keep them; "
                        "reused when built with the same flags")
    parser.add_argument("--keep", action="store_true", help="keep the temporary roots and print where they are")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=list(CHILDREN), help=argparse.SUPPRESS)
    for hidden in ("--at", "--key", "--warm", "--warm-key"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](args)))
    else:
        bench(args)


if __name__ == "__main__":
    main()
