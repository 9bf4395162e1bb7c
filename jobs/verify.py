"""`troop verify`: verdicts for every sample unit that has none yet for the verifier's key.

Runs in the driver's process for now; the checks it calls are pure functions of a sample and
its problem's payload, so moving them to a pool changes only where this loop runs.
"""

import time
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa

from jobs.errors import ConfigError, StoreError
from jobs.store import RunStore
from verifiers import VERDICTS_SCHEMA, Verifier, get_verifier


@dataclass
class VerifySummary:
    verifier_key: str
    units: int = 0
    samples: int = 0
    passed: int = 0
    statuses: Counter = field(default_factory=Counter)
    seconds: float = 0.0


def resolve_verifier(name: str) -> Verifier:
    try:
        return get_verifier(name)
    except KeyError as err:
        raise ConfigError(f"verify.verifier: {err.args[0]}") from None


def _payloads(store: RunStore, verifier: Verifier) -> dict[str, dict]:
    problems = store.read_table(store.problems)
    missing = [c for c in verifier.payload_columns if c not in problems.column_names]
    if missing:
        raise ConfigError(
            f"verifier '{verifier.name}' needs problem column(s) {', '.join(missing)}, which "
            f"{store.problems} lacks: pick another verify.verifier or map the column with problems.columns"
        )
    columns = {c: problems[c].to_pylist() for c in verifier.payload_columns}
    ids = problems["problem_id"].to_pylist()
    return {pid: {c: values[i] for c, values in columns.items()} for i, pid in enumerate(ids)}


def verify_unit(samples: pa.Table, payloads: dict[str, dict], verifier: Verifier) -> pa.Table:
    rows = {name: [] for name in VERDICTS_SCHEMA.names}
    for pid, idx, text in zip(*(samples[c].to_pylist() for c in ("problem_id", "sample_idx", "text"))):
        verdict = verifier.check(text, **payloads[pid])
        rows["problem_id"].append(pid)
        rows["sample_idx"].append(idx)
        rows["passed"].append(verdict.passed)
        rows["status"].append(verdict.status)
        rows["answer"].append(verdict.answer)
        rows["detail"].append(verdict.detail)
    return pa.table(rows, schema=VERDICTS_SCHEMA)


def verify_run(store: RunStore, verifier_name: str) -> VerifySummary:
    verifier = resolve_verifier(verifier_name)
    sample_units = store.unit_ids("samples")
    if not sample_units:
        raise StoreError(f"{store.root} has no samples/unit-*.parquet: generate first (troop generate)")
    folder = f"verdicts/{verifier.key}"
    todo = sorted(sample_units - store.unit_ids(folder))
    summary = VerifySummary(verifier.key)
    if not todo:
        return summary
    payloads = _payloads(store, verifier)
    began = time.perf_counter()
    for unit_id in todo:
        samples = store.read_table(store.sample_unit(unit_id), columns=["problem_id", "sample_idx", "text"])
        verdicts = verify_unit(samples, payloads, verifier)
        store.write_table(store.verdict_unit(verifier.key, unit_id), verdicts, VERDICTS_SCHEMA)
        summary.units += 1
        summary.samples += verdicts.num_rows
        summary.passed += sum(verdicts["passed"].to_pylist())
        summary.statuses.update(verdicts["status"].to_pylist())
    summary.seconds = time.perf_counter() - began
    return summary
