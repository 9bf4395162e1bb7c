"""Patch verification throughput: Troop's patch verifier against a fresh copy per candidate.

    .venv/bin/python bench/patch.py [--candidates 200] [--files 3000] [--megabytes 40]

One SWE-bench-like instance, built by code: the `calc` repository of tests/patch_repos.py (its
bug, test patch, FAIL_TO_PASS and PASS_TO_PASS) with `--files` vendored-looking Python modules
of `--megabytes` in all beside it, as a .tar.gz; and `--candidates` candidate patches, every text
distinct: correct fixes (varied comments and spacing), wrong ones (tests fail, or a syntax
error), and ones that do not apply. Both ways verify every candidate, with the same test
command (`python -m pytest -rA` on the test files, the interpreter running this script):
- troop: one `verifiers.patch_check.PatchChecker` (timeout 60 s, no gold runs) with the
  archive as the payload's `workspace`: unpacked once (timed, counted in Troop's total), then
  each candidate in its own copy-on-write overlay inside bubblewrap;
- naive: per candidate, unpack the archive into a fresh folder (tarfile), apply the patch (git
  apply, else patch --fuzz=5, as the runner does), reset the test patch's files and apply it,
  run the tests, delete the folder: what one harness run per sample does. No sandbox here, so
  this is cheaper than a harness run, which also starts a container.
Every candidate must get the same outcome both ways (pass / fail / patch_failed), and the one
its kind expects, or the script fails. The two ways alternate per candidate (which goes first
alternating too), so drift on a shared machine hits both alike; each total is the sum of its
own candidates' times. Prints candidates/s for each, the ratio troop / naive, and the median
time per candidate, split by step for the naive way.
"""

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests"))

BUGGY = "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n"
# Candidate kinds, cycled: (name, expected outcome).
KINDS = [("fix", "pass")] * 4 + [("wrong", "fail")] * 2 + [("breaks_mul", "fail"), ("syntax", "fail"),
                                                             ("stale", "patch_failed"), ("missing", "patch_failed")]
WORDS = ["value", "index", "count", "buffer", "node", "item", "result", "config", "handler", "parse", "render",
         "token", "stream", "state", "cache", "request", "response", "offset", "length", "record", "field", "schema"]


def filler(root: str, files: int, megabytes: float, seed: int = 0) -> None:
    """`files` Python modules of about `megabytes` MiB in all under `root`/vendor, in packages of
    about 100 modules: a vendored library's shape (no test reads them)."""
    rng = random.Random(seed)
    pool = [_line(rng) for _ in range(20000)]
    per_file = int(megabytes * 2**20 / max(files, 1))
    for i in range(files):
        folder = os.path.join(root, "vendor", f"lib{i // 100:03d}")
        os.makedirs(folder, exist_ok=True)
        lines = [f'"""Module {i} of a vendored library."""\n']
        size = len(lines[0])
        while size < per_file:
            line = rng.choice(pool)
            lines.append(line)
            size += len(line)
        with open(os.path.join(folder, f"mod{i:05d}.py"), "w") as f:
            f.write("".join(lines))
    for folder in {f"lib{i // 100:03d}" for i in range(files)}:
        open(os.path.join(root, "vendor", folder, "__init__.py"), "w").close()


def _line(rng: random.Random) -> str:
    a, b, c = (f"{rng.choice(WORDS)}_{rng.choice(WORDS)}" for _ in range(3))
    return rng.choice([
        f"def {a}({b}, {c}=None):\n",
        f"    {a} = {b}.get({c!r}, {rng.randint(0, 9999)})\n",
        f"    if {a} is not None and len({b}) > {rng.randint(1, 99)}:\n",
        f"        return {a}[{rng.randint(0, 9)}:] + {c}\n",
        f"    # {a} keeps the {b} of each {c} until it is flushed\n",
        f"class {a.title().replace('_', '')}({b.title().replace('_', '')}):\n",
        "\n",
    ])


def candidates(base: str, count: int) -> list[tuple[str, str, str]]:
    """(kind, expected outcome, diff) for `count` distinct candidates against the calc repository."""
    from patch_repos import make_diff

    out = []
    for i in range(count):
        kind, expected = KINDS[i % len(KINDS)]
        body = {
            "fix": [f"    return a + b  # candidate {i}\n", f"    # candidate {i}: add, not subtract\n    return b + a\n",
                    f"    return (a  +  b)   # candidate {i}\n", f"    return sum((a, b))  # candidate {i}\n"][i % 4],
            "wrong": f"    return a * b  # candidate {i}\n",
            "breaks_mul": f"    return a + b  # candidate {i}\n",
            "syntax": f"    return a + b +  # candidate {i}\n",
        }.get(kind, f"    return a + b  # candidate {i}\n")
        text = BUGGY.replace("    return a - b\n", body)
        if kind == "breaks_mul":
            text = text.replace("return a * b", "return a ** b")
        diff = make_diff(base, {"calc/__init__.py": text})
        if kind == "stale":  # written against other code: the line it removes is not there
            diff = diff.replace("-    return a - b\n", "-    return a / b\n")
        elif kind == "missing":  # a file the repository does not have
            diff = diff.replace("calc/__init__.py", f"calc/compat{i}.py")
        out.append((kind, expected, diff))
    assert len({d for _, _, d in out}) == count, "candidate texts must be distinct"
    return out


def build_instance(tmp: str, files: int, megabytes: float, count: int):
    """The instance's archive, payload and candidates."""
    from patch_repos import FAIL_TO_PASS, PASS_TO_PASS, build_calc, write_files

    small = build_calc(os.path.join(tmp, "small"))  # diffs from git, on a small copy
    big = os.path.join(tmp, "big", "calc")
    shutil.copytree(small.path, big)
    filler(big, files, megabytes)
    write_files(big, {"README.rst": "calc: adds and multiplies.\n"})
    archive = os.path.join(tmp, "calc.tar.gz")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(big, arcname="calc")
    shutil.rmtree(os.path.join(tmp, "big"))
    payload = {"problem_id": "calc-1", "workspace": archive, "FAIL_TO_PASS": list(FAIL_TO_PASS),
               "PASS_TO_PASS": list(PASS_TO_PASS), "test_patch": small.test_patch}
    return archive, payload, candidates(small.path, count)


class Naive:
    """One candidate the way one harness run per sample does it, minus the container."""

    def __init__(self, archive: str, payload: dict, tmp: str):
        from verifiers.patch import node_ids, touched_files
        from verifiers.patch_check import default_test_cmd
        from verifiers.sandbox import SANDBOX_ENV

        self.archive, self.tmp = archive, tmp
        self.required = node_ids(payload["FAIL_TO_PASS"]) + node_ids(payload["PASS_TO_PASS"])
        self.test_patch = payload["test_patch"]
        self.test_files = touched_files(self.test_patch)
        self.command = default_test_cmd(self.required)
        with tarfile.open(archive) as tar:  # which files the base has (a harness has git for this)
            self.members = set(tar.getnames())
        self.env = {**SANDBOX_ENV, "PATH": f"{os.path.dirname(sys.executable)}:{SANDBOX_ENV['PATH']}",
                    "PYTHONDONTWRITEBYTECODE": "1"}

    def check(self, diff: str) -> tuple[str, dict]:
        """(outcome, seconds per step)."""
        from verifiers.patch import read_pytest_report, resolved

        steps, began = {}, time.perf_counter()
        folder = tempfile.mkdtemp(prefix="naive-", dir=self.tmp)
        try:
            with tarfile.open(self.archive, "r:gz") as tar:
                tar.extractall(folder, filter="data")
            copy = os.path.join(folder, "calc")
            steps["unpack"], began = time.perf_counter() - began, time.perf_counter()
            if not self.apply(copy, os.path.join(folder, "candidate.diff"), diff):
                steps["apply"], began = time.perf_counter() - began, time.perf_counter()
                return "patch_failed", steps
            self.reset(copy)
            assert self.apply(copy, os.path.join(folder, "test.diff"), self.test_patch), "the test patch must apply"
            steps["apply"], began = time.perf_counter() - began, time.perf_counter()
            done = subprocess.run(self.command, shell=True, cwd=copy, env=self.env, capture_output=True, text=True,
                                  timeout=60, check=False)
            steps["tests"], began = time.perf_counter() - began, time.perf_counter()
            return ("fail" if resolved(read_pytest_report(done.stdout), self.required) else "pass"), steps
        finally:
            shutil.rmtree(folder)
            steps["delete"] = time.perf_counter() - began

    @staticmethod
    def apply(copy: str, path: str, diff: str) -> bool:
        """git apply, else patch's fuzz (verifiers/patch_runner.py's two commands)."""
        from verifiers.patch_runner import GIT

        with open(path, "w") as f:
            f.write(diff)
        for command in ([*GIT, "apply", "--verbose", path], ["patch", "--batch", "--fuzz=5", "-p1", "-i", path]):
            if subprocess.run(command, cwd=copy, capture_output=True, check=False).returncode == 0:
                return True
        return False

    def reset(self, copy: str) -> None:
        """The test patch's files back to the base (SWE-bench's `git checkout BASE -- FILES`)."""
        for path in self.test_files:
            target = os.path.join(copy, path)
            if os.path.lexists(target):
                os.remove(target)
            if f"calc/{path}" in self.members:
                with tarfile.open(self.archive, "r:gz") as tar:
                    tar.extract(f"calc/{path}", os.path.dirname(copy), filter="data")


def median_steps(steps: list[dict]) -> str:
    names = [n for n in ("unpack", "apply", "tests", "delete") if any(n in s for s in steps)]
    return ", ".join(f"{n} {statistics.median(s[n] for s in steps if n in s):.2f}" for n in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--files", type=int, default=3000, help="vendored filler modules in the repository")
    parser.add_argument("--megabytes", type=float, default=40, help="their size in all, MiB")
    args = parser.parse_args()
    from verifiers.patch_check import PatchChecker
    from verifiers.registry import VerifySettings

    with tempfile.TemporaryDirectory(prefix="troop-bench-patch-") as tmp:
        began = time.perf_counter()
        archive, payload, pool = build_instance(tmp, args.files, args.megabytes, args.candidates)
        with tarfile.open(archive) as tar:
            files = [m for m in tar.getmembers() if m.isfile()]
        print(f"instance: {len(files):,} files, {sum(m.size for m in files) / 2**20:.1f} MiB unpacked, archive "
              f"{os.path.getsize(archive) / 2**20:.1f} MiB; {len(pool)} distinct candidates "
              f"(built in {time.perf_counter() - began:.0f} s)")
        checker = PatchChecker(VerifySettings(timeout_s=60, gold_runs=0))
        naive = Naive(archive, payload, tmp)
        began = time.perf_counter()
        checker.workspaces.prepare(payload)  # what the first check would do; timed apart to show it
        prepare_s = time.perf_counter() - began
        troop_s, naive_s, steps, outcomes = [], [], [], {}
        for i, (kind, expected, diff) in enumerate(pool):
            for side in (("troop", "naive") if i % 2 == 0 else ("naive", "troop")):
                began = time.perf_counter()
                if side == "troop":
                    verdict = checker.check(diff, payload)
                    troop_s.append(time.perf_counter() - began)
                    troop = verdict.status
                else:
                    outcome, split = naive.check(diff)
                    naive_s.append(time.perf_counter() - began)
                    steps.append(split)
            assert troop == outcome == expected, f"candidate {i} ({kind}): troop {troop}, naive {outcome}, " \
                                                 f"expected {expected}\n{verdict.detail}\n{diff}"
            outcomes[expected] = outcomes.get(expected, 0) + 1
            if (i + 1) % 20 == 0:
                print(f"  {i + 1} candidates: troop {sum(troop_s) + prepare_s:.0f} s, naive {sum(naive_s):.0f} s",
                      flush=True)
        checker.close()
    report(len(pool), outcomes, prepare_s, troop_s, naive_s, steps)


def report(count: int, outcomes: dict, prepare_s: float, troop_s: list, naive_s: list, steps: list) -> None:
    troop_total, naive_total = prepare_s + sum(troop_s), sum(naive_s)
    ran = [i for i, s in enumerate(steps) if "tests" in s]
    print(f"\n{count} candidates, same outcome both ways: "
          + ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())))
    print(f"troop: {count / troop_total:.2f} candidates/s ({troop_total:.1f} s, workspace prepared once in "
          f"{prepare_s:.2f} s)")
    print(f"naive: {count / naive_total:.2f} candidates/s ({naive_total:.1f} s)")
    print(f"troop / naive = {naive_total / troop_total:.2f}")
    print("median seconds per candidate, tests run / patch does not apply:")
    others = [i for i in range(count) if i not in ran]
    for name, seconds in (("troop", troop_s), ("naive", naive_s)):
        tail = f" / {statistics.median(seconds[i] for i in others):.2f}" if others else ""
        print(f"  {name}: {statistics.median(seconds[i] for i in ran):.2f}{tail}")
    print(f"  naive by step (tests run): {median_steps([steps[i] for i in ran])}")


if __name__ == "__main__":
    main()
