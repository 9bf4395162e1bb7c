"""Verification of sample units: the per-unit work of a verifier worker, and `troop verify`.

A `VerifyWorker` reads one sample unit and its problems' payloads from the store, checks every
sample with its own warm checker (a sandbox, a math helper), and writes the unit's verdict
file. `jobs.cluster.verify_pool` runs copies of it as Ray actors; `verify_run` is `troop verify`.
Nothing here imports vLLM: verification runs on machines without it.
"""

import resource
import time
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa

from jobs.config import VerifyConfig
from jobs.errors import ConfigError, StoreError
from jobs.store.root import RunStore
from verifiers import VERDICTS_SCHEMA, Verifier, get_verifier
from verifiers.verdict import Verdict
from verifiers.registry import Checker, VerifySettings


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


@dataclass
class VerifySummary:
    verifier_key: str
    units: int = 0
    samples: int = 0
    passed: int = 0
    checked: int = 0
    statuses: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    worker_peak_rss_mb: float = 0.0  # the largest peak resident memory any verification worker reported
    during_generation: int = 0  # units verified before the last sample unit landed (troop run)
    gold_self_check: tuple[int, int] | None = None  # (gold answers that verify as themselves, all)
    failed: dict = field(default_factory=dict)  # unit id -> reason: no verdict file (killed every worker)

    def add(self, stats: VerifyStats) -> None:
        self.units += 1
        self.samples += stats.samples
        self.passed += stats.passed
        self.checked += stats.checked
        self.statuses.update(stats.statuses)
        self.worker_peak_rss_mb = max(self.worker_peak_rss_mb, stats.peak_rss_mb)


def resolve_verifier(name: str) -> Verifier:
    try:
        return get_verifier(name)
    except KeyError as err:
        raise ConfigError(f"verify.verifier: {err.args[0]}") from None


def verify_settings(config: VerifyConfig) -> VerifySettings:
    return VerifySettings(timeout_s=config.timeout_s, memory_mb=config.memory_mb, sandbox=config.sandbox)


def verifier_key(name: str, settings: VerifySettings) -> str:
    try:
        return resolve_verifier(name).key(settings)
    except RuntimeError as err:  # verify.sandbox=bwrap where bubblewrap cannot run
        raise ConfigError(str(err)) from None


def stored_verifier_key(store: RunStore, name: str, config: VerifyConfig) -> str:
    """The verdict folder to measure: this machine's key for the verifier and settings, else the
    one folder of that verifier that the root holds (verified elsewhere, e.g. with another
    sandbox mode); several candidates must be told apart by settings."""
    key = verifier_key(name, verify_settings(config))
    if store.unit_ids(f"verdicts/{key}"):
        return key
    found = sorted(p.rsplit("/", 1)[-1] for p in store.fs.glob(store.path("verdicts", f"{name}-*")))
    found = [k for k in found if store.unit_ids(f"verdicts/{k}")]
    if len(found) == 1:
        return found[0]
    if not found:
        raise StoreError(f"{store.root} has no verdicts by {name}: run troop verify {store.root} verify.verifier={name}")
    raise StoreError(
        f"{store.root} has verdicts by {name} under several settings ({', '.join(found)}) and none under this "
        f"machine's {key}: set verify.timeout_s / verify.memory_mb / verify.sandbox to the ones wanted"
    )


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
    columns = {c: problems[c].to_pylist() for c in verifier.payload_columns}
    ids = problems["problem_id"].to_pylist()
    return {pid: {c: values[i] for c, values in columns.items()} for i, pid in enumerate(ids)}


def verify_samples(samples: pa.Table, payloads: dict[str, dict], checker: Checker) -> tuple[pa.Table, int]:
    """Verdict rows for `samples`, and how many checks ran: identical completions of one
    problem are checked once and share the verdict."""
    rows = {name: [] for name in VERDICTS_SCHEMA.names}
    seen: dict[tuple[str, str], object] = {}
    for pid, idx, text in zip(*(samples[c].to_pylist() for c in ("problem_id", "sample_idx", "text"))):
        verdict = seen.get((pid, text))
        if verdict is None:
            verdict = seen[(pid, text)] = _checked(checker, text, payloads[pid])
        rows["problem_id"].append(pid)
        rows["sample_idx"].append(idx)
        rows["passed"].append(verdict.passed)
        rows["status"].append(verdict.status)
        rows["answer"].append(verdict.answer)
        rows["detail"].append(verdict.detail)
    return pa.table(rows, schema=VERDICTS_SCHEMA), len(seen)


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

    def ready(self) -> bool:
        return True

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
        samples = store.read_table(store.sample_unit(task.unit_id), columns=["problem_id", "sample_idx", "text"])
        key = verifier.key(task.settings)
        checker = self._checker(verifier, task.settings, key)
        verdicts, checked = verify_samples(samples, self._payloads_of(store, verifier), checker)
        store.write_table(store.verdict_unit(key, task.unit_id), verdicts, VERDICTS_SCHEMA)
        statuses = Counter(verdicts["status"].to_pylist())
        passed = sum(verdicts["passed"].to_pylist())
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        return VerifyStats(task.unit_id, verdicts.num_rows, passed, dict(statuses), checked, peak)

    def close(self) -> None:
        for checker in self._checkers.values():
            checker.close()
        self._checkers = {}


def gold_self_check(problems: pa.Table, verifier: Verifier, settings: VerifySettings) -> tuple[int, int] | None:
    """How many gold answers pass when checked as completions, of how many; None for
    verifiers without a gold answer. Below 100% means the checker misreads some gold answers."""
    if verifier.gold_as_completion is None or "answer" not in problems.column_names:
        return None
    answers = [a for a in problems["answer"].to_pylist() if a is not None]
    checker = verifier.open(settings)
    try:
        agree = sum(checker.check(verifier.gold_as_completion(str(a)), {"answer": a}).passed for a in answers)
    finally:
        checker.close()
    return agree, len(answers)


@dataclass
class Verification:
    """What `troop verify` and `troop run` settle before a pool starts: the verifier, its
    settings and key, the problems' gold self-check, and a summary to fill."""

    verifier: Verifier
    settings: VerifySettings
    summary: VerifySummary

    def task(self, store: RunStore, unit_id: str) -> VerifyTask:
        return VerifyTask(store, unit_id, self.verifier.name, self.settings)


def prepare_verification(config: VerifyConfig, problems: pa.Table, where: str) -> Verification:
    """Checks the verifier, its settings and its payload columns against `problems` (read
    once by the caller), before anything starts."""
    verifier = resolve_verifier(config.verifier)
    settings = verify_settings(config)
    summary = VerifySummary(verifier_key(config.verifier, settings))
    payloads_of(problems, verifier, where)
    summary.gold_self_check = gold_self_check(problems, verifier, settings)
    return Verification(verifier, settings, summary)


def unverified_units(store: RunStore, key: str, sample_units: set[str] | None = None) -> list[str]:
    """Sample units without a verdict file for `key`, in order."""
    if sample_units is None:
        sample_units = store.unit_ids("samples")
    return sorted(sample_units - store.unit_ids(f"verdicts/{key}"))


def verify_run(store: RunStore, config: VerifyConfig, pool=None, shared_filesystem: bool = False) -> VerifySummary:
    """`troop verify`: verdicts for every sample unit that has none for this verifier's key."""
    from jobs.cluster.executor import init_ray
    from jobs.cluster.verify_pool import start_verify_pool

    key = verifier_key(config.verifier, verify_settings(config))
    sample_units = store.unit_ids("samples")
    if not sample_units:
        raise StoreError(f"{store.root} has no samples/unit-*.parquet: generate first (troop generate)")
    todo = unverified_units(store, key, sample_units)
    if not todo:
        return VerifySummary(key)
    job = prepare_verification(config, store.read_table(store.problems), store.problems)
    store.remove_stale_temporaries(f"verdicts/{key}")
    began = time.perf_counter()
    tasks = [job.task(store, unit_id) for unit_id in todo]
    if pool is not None:
        pool.run(tasks, job.summary.add, job.summary.failed.__setitem__)
    else:
        init_ray(None, store.root, shared_filesystem)  # a local Ray, or the cluster RAY_ADDRESS names
        with start_verify_pool(config) as own:
            own.run(tasks, job.summary.add, job.summary.failed.__setitem__)
    job.summary.seconds = time.perf_counter() - began
    return job.summary
