"""The verifier registry: names are part of the contract (`verify.verifier=NAME`).

A verifier checks one sample against its problem's payload columns. Each pool worker opens
one `Checker` per verifier (a warm sandbox, a math helper process) and closes it at the end.
The verifier's key, `<name>-<hash>`, hashes its name, version and the settings its verdicts
depend on (limits, and for code the sandbox mode actually used), so a changed verifier writes
its verdicts beside the old ones instead of over them. Settings added after keys were in use
(`settings_if_changed`) enter the hash only when they differ from their defaults: keys of
runs that do not use them stay as they were.
"""

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from functools import partial
from typing import Callable, Optional, Protocol

from verifiers.code import check_assert_tests, check_stdio, check_unit_tests
from verifiers.exact import check_exact
from verifiers.extract import as_completion
from verifiers.math_answer import MathChecker, MathOptions
from verifiers.numeric import check_numeric, extract_number
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
    # The answer verifiers' (numeric, exact, math): where the final answer is (verifiers.extract;
    # None: each verifier's own default), and math-verify's settings for `math`.
    extract: Optional[str] = None
    math_precision: int = MathOptions.precision
    math_strict: bool = MathOptions.strict
    math_targets: tuple[str, ...] = MathOptions.targets

    def __post_init__(self):
        object.__setattr__(self, "math_targets", tuple(self.math_targets))  # a list from a config, the same key

    def limits(self) -> Limits:
        return Limits(timeout_s=self.timeout_s, memory_mb=self.memory_mb)

    def math_options(self) -> MathOptions:
        return MathOptions(precision=self.math_precision, strict=self.math_strict, targets=tuple(self.math_targets),
                           extract=self.extract)


class Checker(Protocol):
    """One worker's checker. It may also offer `check_many(items)`: the verdicts of a list of
    (text, payload) pairs in order, in fewer round trips (the math helper)."""

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
        self.checker = MathChecker(settings.timeout_s, settings.math_options())

    def check(self, text: str, payload: dict) -> Verdict:
        return self.checker.check(text, payload["answer"])

    def start(self) -> None:
        self.checker.start()

    def check_many(self, items: list[tuple[str, dict]]) -> list[Verdict]:
        return self.checker.check_many([(text, payload["answer"]) for text, payload in items])

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
    # answer must verify against itself; the rate is reported); its optional second argument
    # is `verify.extract`, which the completion is written for.
    gold_as_completion: Optional[Callable[..., str]] = None
    optional_columns: tuple[str, ...] = ()  # problem columns the check reads where the problem set has them
    settings_fields: tuple[str, ...] = ("timeout_s", "memory_mb", "sandbox")  # the settings its verdicts depend on
    # Settings its verdicts depend on that came after its keys were in use: hashed only when
    # they differ from their defaults, so that the keys of runs without them stay the same.
    settings_if_changed: tuple[str, ...] = ()

    def sandbox_mode(self, settings: VerifySettings) -> Optional[str]:
        """The sandbox this verifier's programs run in here ('bwrap', or 'rlimits' where
        bubblewrap cannot run), or None for answer checkers. RuntimeError if
        `settings.sandbox` is 'bwrap' and bubblewrap cannot run."""
        return probe_mode(settings.sandbox) if self.uses_sandbox else None

    def key(self, settings: VerifySettings = VerifySettings()) -> str:
        identity = {name: value for name, value in asdict(settings).items() if name in self.settings_fields}
        identity.update({f.name: getattr(settings, f.name) for f in fields(settings)
                         if f.name in self.settings_if_changed and getattr(settings, f.name) != f.default})
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


def _boxed(answer: str, extract: Optional[str] = None) -> str:
    if extract is not None:
        return as_completion(answer, extract)  # the extracted span is read as a gold answer is
    return answer if "$" in answer or "\\boxed" in answer else f"\\boxed{{{answer}}}"


def _number(answer: str, extract: Optional[str] = None) -> str:
    return as_completion(extract_number(answer) or answer, extract) if extract is not None else answer


def _text(answer: str, extract: Optional[str] = None) -> str:
    return as_completion(answer, extract)


def _answer_checker(check: Callable[..., Verdict]) -> Callable[[VerifySettings], Checker]:
    return lambda settings: FunctionChecker(partial(check, extract=settings.extract))


ANSWER_SETTINGS = ("extract",)
MATH_SETTINGS = ("extract", "math_precision", "math_strict", "math_targets")

register(Verifier("numeric", "1", ("answer",), _answer_checker(check_numeric), gold_as_completion=_number,
                  settings_if_changed=ANSWER_SETTINGS))
register(Verifier("exact", "1", ("answer",), _answer_checker(check_exact), gold_as_completion=_text,
                  settings_if_changed=ANSWER_SETTINGS))
register(Verifier("math", "1", ("answer",), MathAnswerChecker, gold_as_completion=_boxed,
                  settings_if_changed=MATH_SETTINGS))
register(Verifier(
    "unit_tests", "1", ("prompt", "test", "entry_point"),
    lambda settings: SandboxChecker(check_unit_tests, settings), uses_sandbox=True, optional_columns=("source_prompt",),
))
register(Verifier(
    "assert_tests", "1", ("test_list",), lambda settings: SandboxChecker(check_assert_tests, settings),
    uses_sandbox=True, optional_columns=("test_setup_code", "test_imports"),
))
register(Verifier(
    "stdio", "1", ("test_cases",), lambda settings: SandboxChecker(check_stdio, settings), uses_sandbox=True,
))
register(Verifier(
    "patch", "1", PATCH_PAYLOAD, PatchChecker, uses_sandbox=True, optional_columns=PATCH_OPTIONAL,
    settings_fields=("timeout_s", "memory_mb", "sandbox", "python", "repos", "gold_runs", "allow_test_edits"),
))
