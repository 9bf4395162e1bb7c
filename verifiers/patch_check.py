"""The `patch` verifier: SWE-bench-style candidate patches, each applied to a private
copy-on-write copy of its instance's workspace and tested in the sandbox.

Verdicts: `pass` only when every FAIL_TO_PASS and PASS_TO_PASS test passes (SWE-bench's
"resolved"; flaky tests left out, below), else `fail` with the failing node ids in `detail`;
`empty_patch` (no diff in the completion), `edits_tests` (it changes a test file, a
conftest.py or pytest's configuration; unless verify.allow_test_edits), `patch_failed` (it
does not apply), `timeout`, `error` (the environment failed, not the patch: the workspace, the
test patch, the sandbox, or an instance whose gold patch never resolves). `answer` is a hash of
the patch's effect (`verifiers.patch.patch_hash`), for voting and for verifying identical
candidates once.

Gold self-check: where the problem has its gold `patch`, it runs verify.gold_runs times before
the instance's first candidate on this worker; a required test whose outcome varies between
those runs is flaky and left out of the instance's criteria (named in `detail`), and an
instance whose gold patch resolves in none of the runs is broken: its candidates get `error`.
`notes()` hands the worker what it found, for the run's summary.
"""

import hashlib
import json
import os
import shlex
import sys
from dataclasses import dataclass, field

from verifiers.patch import (
    extract_patch,
    node_ids,
    patch_hash,
    read_pytest_report,
    resolved,
    test_edits,
    test_files_of,
    touched_files,
)
from verifiers.patch_sandbox import run_patch
from verifiers.sandbox import Limits, probe_mode
from verifiers.verdict import Verdict
from verifiers.workspace import Workspaces, WorkspaceError

PAYLOAD = ("FAIL_TO_PASS", "PASS_TO_PASS")
OPTIONAL = ("problem_id", "workspace", "repo", "base_commit", "test_patch", "test_cmd", "patch")


@dataclass
class Instance:
    """One problem's tests and how to run them."""

    fail_to_pass: list[str]
    pass_to_pass: list[str]
    test_patch: str | None
    test_cmd: str
    gold: str | None
    key: str  # identifies the instance on this worker
    name: str  # its problem id, where the payload has it

    @classmethod
    def of(cls, payload: dict) -> "Instance":
        f2p, p2p = node_ids(payload.get("FAIL_TO_PASS")), node_ids(payload.get("PASS_TO_PASS"))
        command = payload.get("test_cmd") or default_test_cmd(f2p + p2p)
        key = hashlib.sha256(json.dumps({k: payload.get(k) for k in PAYLOAD + OPTIONAL}, sort_keys=True,
                                        default=str).encode()).hexdigest()[:16]
        return cls(f2p, p2p, payload.get("test_patch") or None, command, payload.get("patch") or None, key,
                   str(payload.get("problem_id") or key))

    @property
    def required(self) -> list[str]:
        return self.fail_to_pass + self.pass_to_pass


def default_test_cmd(ids: list[str]) -> str:
    """`python -m pytest -rA` on the test files the node ids name (`python`: verify.python)."""
    return " ".join(["python -m pytest -rA -p no:cacheprovider", *(shlex.quote(f) for f in test_files_of(ids))])


@dataclass
class GoldCheck:
    flaky: list[str] = field(default_factory=list)
    broken: bool = False
    runs: int = 0


class PatchChecker:
    """One worker's patch verifier: its workspaces and its instances' gold self-checks."""

    def __init__(self, settings):
        self.settings = settings
        self.mode = probe_mode(settings.sandbox)
        self.python = settings.python or sys.executable
        if not (os.path.isfile(self.python) and os.access(self.python, os.X_OK)):  # on the worker's machine
            raise ValueError(f"verify.python={self.python}: no executable there on this worker")
        self.workspaces = Workspaces(settings.repos)
        self.limits = Limits(timeout_s=settings.timeout_s, memory_mb=settings.memory_mb)
        self._gold: dict[str, GoldCheck] = {}
        self._verdicts: dict[tuple[str, str], Verdict] = {}
        self._notes: dict[str, dict] = {}

    def check(self, text: str, payload: dict) -> Verdict:
        diff = extract_patch(text)
        if diff is None:
            return Verdict(False, "empty_patch", None, "no diff in the completion (a unified diff, or a ```diff block)")
        answer = patch_hash(diff)
        if not touched_files(diff):
            return Verdict(False, "empty_patch", answer, "the diff names no file")
        edits = test_edits(diff)
        if edits and not self.settings.allow_test_edits:
            return Verdict(False, "edits_tests", answer, f"changes the tests: {', '.join(edits)[:400]}")
        try:
            instance = Instance.of(payload)
            workspace = self.workspaces.prepare(payload)
        except (WorkspaceError, ValueError) as err:
            return Verdict(False, "error", answer, f"environment: {err}"[:500])
        gold = self._gold_check(instance, workspace)
        if gold.broken:
            return Verdict(False, "error", answer, f"environment: the gold patch resolves this instance in none of "
                                                   f"{gold.runs} runs (a broken instance, not the candidate's fault)")
        if (instance.key, diff) not in self._verdicts:  # the same diff in other prose: verified once
            self._verdicts[(instance.key, diff)] = self._verdict(self._run(instance, workspace, diff), instance, gold, answer)
        return self._verdicts[(instance.key, diff)]

    def _run(self, instance: Instance, workspace: str, diff: str):
        test_files = touched_files(instance.test_patch) if instance.test_patch else []
        return run_patch(workspace, diff, instance.test_patch, test_files, instance.test_cmd, self.python,
                         self.limits, self.mode)

    def _verdict(self, run, instance: Instance, gold: GoldCheck, answer: str) -> Verdict:
        flaky = f" (flaky, not counted: {', '.join(gold.flaky)})" if gold.flaky else ""
        if run.stage == "patch_failed":
            return Verdict(False, "patch_failed", answer, f"does not apply: {run.apply_log[-300:]}")
        if run.stage == "test_patch_failed":
            return Verdict(False, "error", answer, f"environment: the test patch does not apply after the candidate: "
                                                   f"{run.apply_log[-250:]}")
        if run.stage != "applied":
            return Verdict(False, "error", answer, f"environment: the sandbox failed ({run.output})")
        if run.timed_out:
            return Verdict(False, "timeout", answer, f"the tests ran past verify.timeout_s={self.settings.timeout_s}")
        failing = [t for t in resolved(read_pytest_report(run.output), instance.required) if t not in gold.flaky]
        if failing:
            return Verdict(False, "fail", answer, f"not passing: {', '.join(failing)}"[:480] + flaky)
        return Verdict(True, "pass", answer, flaky.strip())

    def _gold_check(self, instance: Instance, workspace: str) -> GoldCheck:
        """The instance's flaky tests and whether its gold patch resolves it (once per worker)."""
        if instance.key in self._gold:
            return self._gold[instance.key]
        check = GoldCheck()
        if instance.gold is not None and self.settings.gold_runs > 0:
            outcomes: dict[str, set] = {t: set() for t in instance.required}
            results = []
            for _ in range(self.settings.gold_runs):
                run = self._run(instance, workspace, instance.gold)
                report = read_pytest_report(run.output) if run.stage == "applied" and not run.timed_out else {}
                results.append(report)
                for test in instance.required:
                    outcomes[test].add(report.get(test) == "PASSED")
            check.runs = len(results)
            check.flaky = [t for t, seen in outcomes.items() if len(seen) > 1]
            check.broken = not any(not [t for t in resolved(r, instance.required) if t not in check.flaky]
                                   for r in results)
            self._notes[instance.name] = {"flaky": check.flaky, "broken": check.broken, "runs": check.runs}
        self._gold[instance.key] = check
        return check

    def notes(self) -> dict:
        """Gold self-checks run since the last call: problem id -> {flaky, broken, runs}."""
        notes, self._notes = self._notes, {}
        return notes

    def close(self) -> None:
        self.workspaces.close()
