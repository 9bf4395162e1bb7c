"""`troop verify`: verdicts for every sample unit of a root that has none for a verifier yet.

What is settled before a pool starts (the verifier, its settings and key, the payload columns)
is `prepare_verification`, shared with `troop run`; the per-unit work, the gold self-check of
the unit's problems included, is `jobs.stages.verification.VerifyWorker`, run on the
executor's actors.
"""

import time
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa

from jobs.cluster.executor import UnitExecutor
from jobs.cluster.pools import RAY, Cluster
from jobs.config import VerifyConfig
from jobs.errors import StoreError, TroopError
from jobs.stages.verification import (
    VerifyStats, VerifyTask, payloads_of, resolve_verifier, verifier_key, verify_settings,
)
from jobs.store import layout
from jobs.store.root import RunStore
from verifiers import VERIFIERS, Verifier
from verifiers.registry import VerifySettings


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
    golds: dict = field(default_factory=dict)  # problem id -> its gold answer verifies as itself (answer checkers)
    # The patch verifier's gold self-checks: problem id -> {flaky: [node ids], broken, runs}.
    gold_notes: dict = field(default_factory=dict)
    failed: dict = field(default_factory=dict)  # unit id -> (status, reason): no verdict file (failed every attempt)

    @property
    def gold_self_check(self) -> tuple[int, int] | None:
        """(gold answers that verify as themselves, all) of the problems verified; None for
        verifiers without a gold answer."""
        return (sum(self.golds.values()), len(self.golds)) if self.golds else None

    def check(self, root: str) -> None:
        """A TroopError naming the units whose verification failed every attempt, if any."""
        if self.failed:
            unit_id, (status, reason) = next(iter(self.failed.items()))
            raise TroopError(
                f"verifying unit {unit_id} failed every attempt ({status}: {reason}) and {len(self.failed) - 1} other "
                f"unit(s) likewise; the rest of {root} is verified: rerun troop verify {root} to retry them"
            )

    def add(self, stats: VerifyStats) -> None:
        self.units += 1
        self.samples += stats.samples
        self.passed += stats.passed
        self.checked += stats.checked
        self.statuses.update(stats.statuses)
        self.worker_peak_rss_mb = max(self.worker_peak_rss_mb, stats.peak_rss_mb)
        self.gold_notes.update(stats.notes)
        self.golds.update(stats.golds)


def stored_verifier_key(store: RunStore, name: str, config: VerifyConfig) -> str:
    """The verdict folder to measure: this machine's key for the verifier and settings, else the
    one folder of that verifier that the root holds (verified elsewhere, e.g. with another
    sandbox mode, or imported from the SWE-bench harness: swebench-*); several candidates must
    be told apart by settings. A full key (`name` = a folder under verdicts/) is taken as is."""
    if store.unit_ids(layout.verdicts(name)):  # a key named in full, e.g. swebench-<hash> from troop swebench import
        return name
    key = verifier_key(name, verify_settings(config)) if name in VERIFIERS else None
    if key is not None and store.unit_ids(layout.verdicts(key)):
        return key
    found = [k for k in store.keys_under(layout.VERDICTS, f"{name}-*") if store.unit_ids(layout.verdicts(k))]
    if len(found) == 1:
        return found[0]
    if not found:
        raise StoreError(f"{store.root} has no verdicts by {name}: run troop verify {store.root} verify.verifier={name}")
    raise StoreError(
        f"{store.root} has verdicts by {name} under several settings ({', '.join(found)}) and none under this "
        f"machine's {key or name}: set verify.timeout_s / verify.memory_mb / verify.sandbox to the ones wanted"
    )


@dataclass
class Verification:
    """What `troop verify` and `troop run` settle before a pool starts: the verifier, its
    settings and key, and a summary to fill."""

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
    return Verification(verifier, settings, summary)


def unverified_units(store: RunStore, key: str, sample_units: set[str] | None = None) -> list[str]:
    """Sample units without a verdict file for `key`, in order."""
    if sample_units is None:
        sample_units = store.unit_ids(layout.SAMPLES)
    return sorted(sample_units - store.unit_ids(layout.verdicts(key)))


def verify_run(store: RunStore, config: VerifyConfig, pool: UnitExecutor | None = None, shared_filesystem: bool = False,
               cluster: Cluster = RAY) -> VerifySummary:
    """`troop verify`: verdicts for every sample unit that has none for this verifier's key,
    on `pool` if given, else on a verification pool of its own from `cluster`."""
    key = verifier_key(config.verifier, verify_settings(config))
    sample_units = store.unit_ids(layout.SAMPLES)
    if not sample_units:
        raise StoreError(f"{store.root} has no samples/unit-*.parquet: generate first (troop generate)")
    todo = unverified_units(store, key, sample_units)
    if not todo:
        return VerifySummary(key)
    job = prepare_verification(config, store.read_table(store.problems), store.problems)
    store.remove_stale_temporaries(layout.verdicts(key))
    began = time.perf_counter()
    tasks = [job.task(store, unit_id) for unit_id in todo]
    if pool is not None:
        job.summary.failed.update(pool.run(tasks, job.summary.add).failed)
    else:
        cluster.connect(None, store.root, shared_filesystem)  # a local Ray, or the cluster RAY_ADDRESS names
        with cluster.verification(config) as own:
            job.summary.failed.update(own.run(tasks, job.summary.add).failed)
    job.summary.seconds = time.perf_counter() - began
    return job.summary
