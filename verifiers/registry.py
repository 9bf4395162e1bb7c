"""The verifier registry: names are part of the contract (`verify.verifier=NAME`).

A verifier checks one sample against its problem's payload columns. Each pool worker opens
one `Checker` per verifier (a warm sandbox, a math helper process) and closes it at the end.
The verifier's key, `<name>-<hash>`, hashes its name, version and the settings its verdicts
depend on (limits, and for code the sandbox mode actually used), so a changed verifier writes
its verdicts beside the old ones instead of over them.
"""

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Callable, Optional, Protocol

from verifiers.code import check_stdio, check_unit_tests
from verifiers.exact import check_exact
from verifiers.math_answer import MathChecker
from verifiers.numeric import check_numeric
from verifiers.patch_check import OPTIONAL as PATCH_OPTIONAL, PAYLOAD as PATCH_PAYLOAD, PatchChecker
from verifiers.sandbox import Limits, Sandbox, probe_mode
from verifiers.verdict import Verdict


@dataclass(frozen=True)
class VerifySettings:
    """The `verify.*` settings that verdicts depend on (the pool size is not one of them)."""

    timeout_s: float = 10.0  # per sample: a program's wall clock, or one math check
    memory_mb: int = 1024  # a program's address space
    sandbox: str = "auto"  # auto (bubblewrap, else rlimits with a warning) | bwrap | rlimits
    # The patch verifier's (other verifiers' keys leave them out):
    python: Optional[str] = None  # the interpreter that runs a repository's tests; None: the worker's own
    repos: Optional[str] = None  # a folder of clones named owner__name, for problems given as repo + base_commit
    gold_runs: int = 3  # runs of the gold patch per instance, to find flaky tests and broken instances
    allow_test_edits: bool = False  # a candidate that changes the tests may pass

    def limits(self) -> Limits:
        return Limits(timeout_s=self.timeout_s, memory_mb=self.memory_mb)


class Checker(Protocol):
    def check(self, text: str, payload: dict) -> Verdict: ...

    def close(self) -> None: ...


class FunctionChecker:
    """A pure check(text, **payload)."""

    def __init__(self, function: Callable[..., Verdict]):
        self.function = function

    def check(self, text: str, payload: dict) -> Verdict:
        return self.function(text, **payload)

    def close(self) -> None:
        pass


class SandboxChecker:
    """check(text, sandbox=..., **payload) with this worker's warm sandbox."""

    def __init__(self, function: Callable[..., Verdict], settings: VerifySettings):
        self.function = function
        self.sandbox = Sandbox(settings.limits(), settings.sandbox)

    def check(self, text: str, payload: dict) -> Verdict:
        return self.function(text, sandbox=self.sandbox, **payload)

    def close(self) -> None:
        self.sandbox.close()


class MathAnswerChecker:
    def __init__(self, settings: VerifySettings):
        self.checker = MathChecker(settings.timeout_s)

    def check(self, text: str, payload: dict) -> Verdict:
        return self.checker.check(text, payload["answer"])

    def close(self) -> None:
        self.checker.close()


@dataclass(frozen=True)
class Verifier:
    name: str
    version: str
    payload_columns: tuple[str, ...]  # problem columns the check reads, besides the sample
    open: Callable[[VerifySettings], Checker]  # one checker per pool worker
    uses_sandbox: bool = False
    # Answer checkers: the gold answer written as a completion, for the self-check (every gold
    # answer must verify against itself; the rate is reported).
    gold_as_completion: Optional[Callable[[str], str]] = None
    optional_columns: tuple[str, ...] = ()  # problem columns the check reads where the problem set has them
    settings_fields: tuple[str, ...] = ("timeout_s", "memory_mb", "sandbox")  # the settings its verdicts depend on

    def sandbox_mode(self, settings: VerifySettings) -> Optional[str]:
        """The sandbox this verifier's programs run in here ('bwrap', or 'rlimits' where
        bubblewrap cannot run), or None for answer checkers. RuntimeError if
        `settings.sandbox` is 'bwrap' and bubblewrap cannot run."""
        return probe_mode(settings.sandbox) if self.uses_sandbox else None

    def key(self, settings: VerifySettings = VerifySettings()) -> str:
        identity = {name: value for name, value in asdict(settings).items() if name in self.settings_fields}
        identity["sandbox"] = self.sandbox_mode(settings)
        blob = json.dumps([self.name, self.version, identity], sort_keys=True)
        return f"{self.name}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


VERIFIERS: dict[str, Verifier] = {}


def register(verifier: Verifier) -> Verifier:
    if verifier.name in VERIFIERS:
        raise ValueError(f"verifier '{verifier.name}' is registered twice")
    VERIFIERS[verifier.name] = verifier
    return verifier


def get_verifier(name: str) -> Verifier:
    """The registered verifier; a KeyError lists the available names."""
    if name not in VERIFIERS:
        raise KeyError(f"unknown verifier '{name}': use one of {', '.join(sorted(VERIFIERS))}")
    return VERIFIERS[name]


def _boxed(answer: str) -> str:
    return answer if "$" in answer or "\\boxed" in answer else f"\\boxed{{{answer}}}"


register(Verifier("numeric", "1", ("answer",), lambda settings: FunctionChecker(check_numeric), gold_as_completion=str))
register(Verifier("exact", "1", ("answer",), lambda settings: FunctionChecker(check_exact), gold_as_completion=str))
register(Verifier("math", "1", ("answer",), MathAnswerChecker, gold_as_completion=_boxed))
register(Verifier(
    "unit_tests", "1", ("prompt", "test", "entry_point"),
    lambda settings: SandboxChecker(check_unit_tests, settings), uses_sandbox=True,
))
register(Verifier(
    "stdio", "1", ("test_cases",), lambda settings: SandboxChecker(check_stdio, settings), uses_sandbox=True,
))
register(Verifier(
    "patch", "1", PATCH_PAYLOAD, PatchChecker, uses_sandbox=True, optional_columns=PATCH_OPTIONAL,
    settings_fields=("timeout_s", "memory_mb", "sandbox", "python", "repos", "gold_runs", "allow_test_edits"),
))
