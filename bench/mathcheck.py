"""Math verification throughput: `troop verify` with the `math` verifier against math-verify per sample.

    .venv/bin/python bench/mathcheck.py [--problems 500] [--n 64] [--chars 4000,8000] [--workers W] [--seed 0] [--rounds 3]

One command, one MATH-like pool built by code in a temporary root (problems.parquet with
`answer`, sample units of 2,048 samples as `troop generate` writes them): gold answers that are
integers (55%, about MATH's share), fractions, roots, tuples, intervals, polynomials and
multiples of pi (`KINDS`); every sample a distinct chain of thought of 4-8 K characters
(`--chars`: inline `$...$` steps, `\\[...\\]` and `$$...$$` blocks, stray numbers) ending in a
boxed answer drawn from a Zipf head of the problem's six candidates (the gold first, or on 30%
of problems a wrong answer; each usually in one spelling, 20% of the time in another), or, for
2% of them, cut off before any answer (as a completion that ran out of tokens). Two commands verify it:
- troop: `troop verify ROOT verify.verifier=math` as its own process (Ray, the verification
  pool, the gold self-check), timed whole; its rate after start-up is read from the verdict
  files: the samples of every unit but the first to land, over the time from the first verdict
  file to the last (the rate `troop verify` prints counts Ray's and the pool's start too);
- math-verify: one plain `python` process that reads the same Parquet files and calls
  `verify(parse(gold), parse(text))` per sample with math-verify's defaults (its own SIGALRM
  timeouts on; the gold read as `$gold$` first, as Troop reads MATH's bare LaTeX), timed whole
  and its loop alone.
Before timing, the bench byte-compiles Troop's packages (`compileall`), as `pip install` does
for an installed package and any first import does unless PYTHONDONTWRITEBYTECODE is set (as it is
on this machine): without it, each of troop's processes compiles Troop's modules again.
The bench runs `--rounds` (3) rounds, each the loop and then `troop verify` on the pool afresh,
and prints each round's ratios and their medians: on this shared 2-core machine speed drifts by
10-20% over minutes, and the two runs of a round see the same spell. Each round's verdicts are
compared with the loop's sample by sample. Goal: 5x whole process, 10x in rate.
"""

import argparse
import compileall
import json
import os
import random
import re
import shutil
import statistics
import sys
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

UNIT_SAMPLES = 2048
TRUNCATED = 0.02  # share of samples cut off before their answer
ZIPF_S = 1.2  # the k-th most frequent answer of a problem is drawn with weight 1 / k^ZIPF_S (6 candidates)
MAIN_SPELLING = 0.8  # an answer is written its usual way this often, else in one of its other spellings
# Kinds of gold answer and their shares (%), about as in MATH's test set: mostly integers.
KINDS = {"integer": 55, "fraction": 15, "root": 8, "pi": 5, "polynomial": 5, "tuple": 6, "interval": 6}
WORDS = ("we substitute the value into the equation and simplify both sides then check the sign of each term "
         "note that the expression is symmetric so we may assume the first variable is the smaller one").split()


def _candidates(rng: random.Random) -> tuple[list[str], list[list[str]]]:
    """(spellings of the gold answer, [spellings of each wrong answer]) of one problem."""
    kind = rng.choices(list(KINDS), list(KINDS.values()))[0]
    a, b, c = rng.randint(2, 9), rng.randint(2, 9), rng.randint(1, 30)
    if kind == "integer":
        n = rng.randint(10, 999)
        return [str(n), f"{n}.0"], [[str(m)] for m in (n + 1, n - 1, 2 * n, n + 10, -n)]
    if kind == "fraction":
        p, q = a, a + b if (a + b) % a else a + b + 1
        return [f"\\frac{{{p}}}{{{q}}}", f"\\dfrac{{{p}}}{{{q}}}", f"{p}/{q}"], [
            [f"\\frac{{{q}}}{{{p}}}"], [f"\\frac{{{p + 1}}}{{{q}}}", f"\\dfrac{{{p + 1}}}{{{q}}}"], [f"\\frac{{{p}}}{{{q + 1}}}"],
            [f"\\frac{{{2 * p}}}{{{q + 2}}}"], [str(p)]]
    if kind == "root":
        b = rng.choice([2, 3, 5, 6, 7, 10])
        return [f"{a}\\sqrt{{{b}}}", f"\\sqrt{{{a * a * b}}}"], [
            [f"{a}\\sqrt{{{b + 1}}}"], [f"{a + 1}\\sqrt{{{b}}}"], [f"\\sqrt{{{b}}}"], [f"\\frac{{\\sqrt{{{b}}}}}{{{a}}}"],
            [str(a * b)]]
    if kind == "tuple":
        return [f"({a}, {c})", f"\\left({a}, {c}\\right)", f"({a},{c})"], [
            [f"({c}, {a})"], [f"({a}, {c + 1})"], [f"({a + 1}, {c})"], [f"({-a}, {c})"], [f"({a}, {-c})"]]
    if kind == "interval":
        lo, hi = -a, c
        return [f"[{lo}, {hi})", f"\\left[{lo}, {hi}\\right)"], [
            [f"({lo}, {hi})"], [f"[{lo}, {hi}]"], [f"[{lo}, {hi + 1})"], [f"(-\\infty, {hi})"], [f"[{lo}, \\infty)"]]
    if kind == "polynomial":
        s, p = a + b, a * b
        return [f"x^2 + {s}x + {p}", f"(x+{a})(x+{b})", f"x^{{2}}+{s}x+{p}"], [
            [f"x^2 + {s}x + {p + 1}"], [f"x^2 - {s}x + {p}"], [f"(x+{a})(x-{b})"], [f"x^2 + {p}x + {s}"], [f"x^2 + {s}x"]]
    return [f"{a}\\pi", f"\\pi {a}"], [[f"{a + 1}\\pi"], [f"\\frac{{{a}\\pi}}{{2}}"], [f"{a}"], [f"{2 * a}\\pi"], ["\\pi"]]


def _step(rng: random.Random) -> str:
    x, y, z = rng.randint(1, 99), rng.randint(1, 99), rng.randint(2, 12)
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20)))
    return rng.choice([
        f"{words.capitalize()}: $ {z}x + {x} = {y} $, so $x = \\frac{{{y - x}}}{{{z}}}$.",
        f"{words.capitalize()}. Then\n\\[\n{x}^2 - {y}^2 = ({x}-{y})({x}+{y}) = {(x - y) * (x + y)}\n\\]\n",
        f"{words.capitalize()}, giving $$ \\sqrt{{{x * x}}} + {y} = {x + y} $$ as expected.",
        f"Step {z}: {words}, which leaves {x} cases out of {y}.",
        f"{words.capitalize()} and $\\frac{{{x}}}{{{z}}} \\cdot {z} = {x}$.",
    ])


def _text(rng: random.Random, answer: str, chars: tuple[int, int]) -> str:
    body, size = [], rng.randint(*chars)
    while sum(len(s) for s in body) < size:
        body.append(_step(rng))
    text = "\n\n".join(body)
    if rng.random() < TRUNCATED:
        return text[: rng.randint(len(text) // 2, len(text))]
    return text + "\n\n" + rng.choice([
        f"Therefore, the final answer is $\\boxed{{{answer}}}$.",
        f"So the answer is\n\\[\n\\boxed{{{answer}}}\n\\]",
        f"Thus $\\boxed{{{answer}}}$ is the answer.",
        f"The answer is \\boxed{{{answer}}}.",
    ])


def write_math_pool(root: str, problems: int, n: int, seed: int = 0, chars: tuple[int, int] = (4000, 8000)):
    """A run root with problems.parquet (`answer`) and sample units of distinct chains of thought."""
    import pyarrow as pa

    from jobs.problems.units import plan_units
    from jobs.store.root import RunStore
    from workers.samples import SAMPLES_SCHEMA

    rng = random.Random(seed)
    store = RunStore(root)
    ids = [f"m{i:05d}" for i in range(problems)]
    golds, candidates = [], {}
    for pid in ids:
        gold, wrong = _candidates(rng)
        golds.append(gold[0])
        # Zipf ranks: the gold leads, or on some problems a wrong answer does.
        candidates[pid] = [gold, *wrong] if rng.random() < 0.7 else [wrong[0], gold, *wrong[1:]]
    weights = [1 / (r + 1) ** ZIPF_S for r in range(6)]
    store.write_table(store.problems, pa.table({
        "problem_id": ids, "prompt": [f"Problem {pid}" for pid in ids], "answer": golds,
    }))
    for unit in plan_units(ids, n, UNIT_SAMPLES):
        rows = []
        for pid in unit.problem_ids:
            for s in range(unit.sample_start, unit.sample_end):
                spellings = rng.choices(candidates[pid], weights)[0]
                answer = spellings[0] if len(spellings) == 1 or rng.random() < MAIN_SPELLING else rng.choice(spellings[1:])
                rows.append((pid, s, _text(rng, answer, chars)))
        table = pa.table({"problem_id": [r[0] for r in rows], "sample_idx": [r[1] for r in rows],
                          "text": [r[2] for r in rows], "num_tokens": [len(r[2]) // 4 for r in rows],
                          "cumulative_logprob": [0.0] * len(rows), "finish_reason": ["length"] * len(rows),
                          "seed": [0] * len(rows)}, schema=SAMPLES_SCHEMA)
        store.write_table(store.sample_unit(unit.unit_id), table, SAMPLES_SCHEMA)
    return store


MATH_VERIFY_LOOP = """
import glob, json, sys, time
began = time.perf_counter()
import pyarrow.parquet as pq
from math_verify import parse, verify
root = sys.argv[1]
problems = pq.read_table(root + "/problems.parquet").to_pydict()
gold_of = dict(zip(problems["problem_id"], problems["answer"]))
samples = [pq.read_table(f, columns=["problem_id", "sample_idx", "text"]).to_pydict()
           for f in sorted(glob.glob(root + "/samples/unit-*.parquet"))]
ready = time.perf_counter()
passed = {}
for unit in samples:
    for pid, idx, text in zip(unit["problem_id"], unit["sample_idx"], unit["text"]):
        answer = gold_of[pid]
        gold = parse("$" + answer + "$") if "$" not in answer and "\\\\boxed" not in answer else []
        gold = gold or parse(answer)
        passed[pid + "/" + str(idx)] = bool(verify(gold, parse(text)))
done = time.perf_counter()
json.dump({"start_s": ready - began, "loop_s": done - ready, "passed": passed}, open(sys.argv[2], "w"))
"""


def run_math_verify(root: str, out: str) -> tuple[float, dict]:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", MATH_VERIFY_LOOP, root, out], check=True)
    whole = time.perf_counter() - began
    with open(out) as f:
        return whole, json.load(f)


def run_troop(root: str, workers: int | None) -> tuple[float, str]:
    command = [sys.executable, "-m", "jobs", "verify", root, "verify.verifier=math"]
    if workers:
        command.append(f"verify.workers={workers}")
    began = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO)
    return time.perf_counter() - began, done.stdout + done.stderr


def troop_verdicts(store) -> tuple[dict, dict, float]:
    """(passed by sample, statuses, steady rate: samples of the units after the first to land
    over the time from the first verdict file to the last)."""
    from collections import Counter

    import pyarrow.parquet as pq

    key = next(k for k in store.keys_under("verdicts", "math-*"))
    folder = os.path.join(store.root, "verdicts", key)
    files = sorted((os.path.getmtime(os.path.join(folder, f)), f) for f in os.listdir(folder) if f.endswith(".parquet"))
    passed, statuses, rows = {}, Counter(), []
    for _, name in files:
        table = pq.read_table(os.path.join(folder, name)).to_pydict()
        rows.append(len(table["passed"]))
        statuses.update(table["status"])
        passed.update({f"{p}/{i}": v for p, i, v in zip(table["problem_id"], table["sample_idx"], table["passed"])})
    span = files[-1][0] - files[0][0]
    return passed, dict(statuses), sum(rows[1:]) / span if span > 0 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=500)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None, help="verify.workers (default: troop's own)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chars", default="4000,8000", help="length range of a chain of thought, in characters")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of (math-verify loop, then troop verify); the ratios of each round and their median "
                             "are printed: this machine's speed drifts over minutes, a round's two runs see the same")
    args = parser.parse_args()
    chars = tuple(int(c) for c in args.chars.split(","))

    for package in ("jobs", "workers", "verifiers"):
        compileall.compile_dir(os.path.join(REPO, package), quiet=1)
    with tempfile.TemporaryDirectory(prefix="troop-bench-math-") as tmp:
        root = os.path.join(tmp, "run")
        store = write_math_pool(root, args.problems, args.n, args.seed, chars)
        samples = args.problems * args.n
        print(f"pool: {args.problems} problems x n={args.n} = {samples:,} samples, all texts distinct, "
              f"{chars[0]:,}-{chars[1]:,} characters each")
        whole_ratios, rate_ratios = [], []
        for round_ in range(1, args.rounds + 1):
            mv_whole, mv = run_math_verify(root, os.path.join(tmp, "math_verify.json"))
            mv_rate = samples / mv["loop_s"]
            shutil.rmtree(os.path.join(root, "verdicts"), ignore_errors=True)  # troop verifies the pool afresh
            troop_whole, output = run_troop(root, args.workers)
            passed, statuses, steady = troop_verdicts(store)
            disagree = [k for k, v in mv["passed"].items() if passed.get(k) != v]
            whole_ratios.append(mv_whole / troop_whole)
            rate_ratios.append(steady / mv_rate)
            print(f"round {round_}: math-verify per sample {mv_whole:.1f} s whole (loop {mv['loop_s']:.1f} s, "
                  f"{mv_rate:,.0f} samples/s); troop verify {troop_whole:.1f} s whole, {steady:,.0f} samples/s after "
                  f"start-up; {whole_ratios[-1]:.1f}x whole process, {rate_ratios[-1]:.1f}x in rate; "
                  f"{len(disagree)} of {len(passed):,} verdicts differ{': ' + ', '.join(disagree[:5]) if disagree else ''} "
                  f"({', '.join(f'{k} {v:,}' for k, v in sorted(statuses.items()))})")
        print("last troop run's output:\n   " + "\n   ".join(line for line in output.splitlines()
                                                          if "verified" in line or "self-check" in line))
        print(f"\nwhole process: math-verify / troop = {statistics.median(whole_ratios):.1f}x (median of {args.rounds} rounds)")
        print(f"verification rate after start-up: troop / math-verify loop = {statistics.median(rate_ratios):.1f}x "
              f"(median of {args.rounds} rounds)")


if __name__ == "__main__":
    main()
