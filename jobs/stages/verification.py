"""Verifying one sample unit: the unit processor of the verification stage.

A `VerifyWorker` reads one sample unit and its problems' payloads from the store, checks every
sample with its own warm checker (a sandbox, a math helper), and writes the unit's verdict
file. A plain class: a test calls it directly; `jobs.cluster` runs copies of it as Ray actors.
Nothing here imports vLLM or Ray: verification runs on machines without them.
"""

import os
import resource
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa

from jobs.config import verify_settings  # noqa: F401 - the settings of a verify section, re-exported
from jobs.errors import ConfigError
from jobs.store.root import RunStore
from verifiers import VERDICTS_SCHEMA, Verifier, get_verifier
from verifiers.registry import Checker, VerifySettings
from verifiers.verdict import Verdict


@dataclass(frozen=True)
class VerifyTask:
    store: RunStore
    unit_id: str
    verifier: str
    settings: VerifySettings


@dataclass(frozen=True)
class VerifyStats:
    unit_id: str
    samples: int
    passed: int
    statuses: dict
    checked: int  # distinct (problem, completion) pairs actually run
    peak_rss_mb: float = 0.0  # the worker process's peak resident memory so far
    notes: dict = field(default_factory=dict)  # what the checker found besides verdicts (gold self-checks)
    golds: dict = field(default_factory=dict)  # problem id -> its gold answer verifies as itself (answer checkers)


def resolve_verifier(name: str) -> Verifier:
    try:
        return get_verifier(name)
    except KeyError as err:
        raise ConfigError(f"verify.verifier: {err.args[0]}") from None


def verifier_key(name: str, settings: VerifySettings) -> str:
    try:
        return resolve_verifier(name).key(settings)
    except RuntimeError as err:  # verify.sandbox=bwrap where bubblewrap cannot run
        raise ConfigError(str(err)) from None


def read_payloads(store: RunStore, verifier: Verifier) -> dict[str, dict]:
    return payloads_of(store.read_table(store.problems), verifier, store.problems)


def payloads_of(problems: pa.Table, verifier: Verifier, where: str) -> dict[str, dict]:
    """problem_id -> the verifier's payload columns; a one-line error if a column is missing."""
    missing = [c for c in verifier.payload_columns if c not in problems.column_names]
    if missing:
        raise ConfigError(
            f"verifier '{verifier.name}' needs problem column(s) {', '.join(missing)}, which "
            f"{where} lacks: pick another verify.verifier or map the column with problems.columns"
        )
    present = [c for c in verifier.optional_columns if c in problems.column_names]
    columns = {c: problems[c].to_pylist() for c in (*verifier.payload_columns, *present)}
    ids = problems["problem_id"].to_pylist()
    return {pid: {c: values[i] for c, values in columns.items()} for i, pid in enumerate(ids)}


def verify_samples(samples: pa.Table, payloads: dict[str, dict], checker: Checker) -> tuple[pa.Table, int]:
    """Verdict rows for `samples`, and how many checks ran: identical completions of one
    problem are checked once and share the verdict."""
    rows = {name: [] for name in VERDICTS_SCHEMA.names}
    columns = [samples[c].to_pylist() for c in ("problem_id", "sample_idx", "text")]
    distinct: dict[tuple[str, str], int] = {}
    for pid, _, text in zip(*columns):
        distinct.setdefault((pid, text), len(distinct))
    verdicts = _checked_all(checker, [(text, payloads[pid]) for pid, text in distinct])
    for pid, idx, text in zip(*columns):
        verdict = verdicts[distinct[(pid, text)]]
        rows["problem_id"].append(pid)
        rows["sample_idx"].append(idx)
        rows["passed"].append(verdict.passed)
        rows["status"].append(verdict.status)
        rows["answer"].append(verdict.answer)
        rows["detail"].append(verdict.detail)
    return pa.table(rows, schema=VERDICTS_SCHEMA), len(distinct)


def gold_self_check(verifier: Verifier, settings: VerifySettings, payloads: dict[str, dict], problem_ids,
                    checker: Checker) -> dict[str, bool]:
    """Whether each problem's gold answer, written as a completion, verifies as itself ({} for
    verifiers without a gold answer): below 100% the checker misreads some gold answers. Run
    where the unit's samples are checked, by the same warm checker, which parses each gold
    answer for them anyway."""
    if verifier.gold_as_completion is None:
        return {}
    ids = [pid for pid in dict.fromkeys(problem_ids) if payloads[pid].get("answer") is not None]
    items = [(verifier.gold_as_completion(str(payloads[pid]["answer"]), settings.extract), payloads[pid]) for pid in ids]
    return {pid: verdict.passed for pid, verdict in zip(ids, _checked_all(checker, items))}


def _checked_all(checker: Checker, items: list[tuple[str, dict]]) -> list[Verdict]:
    """The verdicts of (text, payload) items: in one call where the checker takes batches
    (`check_many`: fewer round trips to a helper process), else one by one."""
    check_many = getattr(checker, "check_many", None)
    if check_many is not None:
        try:
            verdicts = check_many(items)
            if len(verdicts) == len(items):
                return verdicts
        except Exception:  # noqa: BLE001 - asked again one by one, so that a failure is its sample's own
            pass
    return [_checked(checker, text, payload) for text, payload in items]


def _checked(checker: Checker, text: str, payload: dict) -> Verdict:
    """The checker's verdict; a checker that raises (a bug or a sample that breaks the checker
    itself, not the sandboxed program) gives this sample `error`, not the whole unit."""
    try:
        return checker.check(text, payload)
    except Exception as err:  # noqa: BLE001 - any checker failure is this sample's verdict
        reason = (str(err).strip().splitlines() or [""])[0]
        return Verdict(False, "error", None, f"checker failed: {type(err).__name__}: {reason}"[:500])


class VerifyWorker:
    """Verifies whole units; keeps one checker per verifier key and the payloads of one run."""

    def __init__(self):
        self._checkers: dict[str, Checker] = {}
        self._payloads: dict[tuple[str, str], dict] = {}  # (root, verifier) -> payloads

    def ready(self) -> int:
        """The worker's process id (a dead worker is named by it)."""
        return os.getpid()

    def _checker(self, verifier: Verifier, settings: VerifySettings, key: str) -> Checker:
        if key not in self._checkers:
            self._checkers[key] = verifier.open(settings)
        return self._checkers[key]

    def _payloads_of(self, store: RunStore, verifier: Verifier) -> dict:
        cache_key = (store.root, verifier.name)
        if cache_key not in self._payloads:
            self._payloads = {cache_key: read_payloads(store, verifier)}
        return self._payloads[cache_key]

    def run_unit(self, task: VerifyTask) -> VerifyStats:
        verifier = get_verifier(task.verifier)
        store = task.store
        key = verifier.key(task.settings)
        checker = self._checker(verifier, task.settings, key)
        if hasattr(checker, "start"):  # a helper process starts while the unit is read
            checker.start()
        samples = store.read_table(store.sample_unit(task.unit_id), columns=["problem_id", "sample_idx", "text"])
        payloads = self._payloads_of(store, verifier)
        verdicts, checked = verify_samples(samples, payloads, checker)
        golds = gold_self_check(verifier, task.settings, payloads, verdicts["problem_id"].to_pylist(), checker)
        store.write_table(store.verdict_unit(key, task.unit_id), verdicts, VERDICTS_SCHEMA)
        statuses = Counter(verdicts["status"].to_pylist())
        passed = sum(verdicts["passed"].to_pylist())
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        notes = checker.notes() if hasattr(checker, "notes") else {}
        return VerifyStats(task.unit_id, verdicts.num_rows, passed, dict(statuses), checked, peak, notes, golds)

    def close(self) -> None:
        for checker in self._checkers.values():
            checker.close()
        self._checkers = {}


