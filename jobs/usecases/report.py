"""`troop report`: the report of one or several roots, or of a sweep root (its points overlaid,
with the comparison table on top)."""

from dataclasses import dataclass, field
from typing import Sequence

from jobs.errors import TroopError
from jobs.report.compare import PointRow, write_sweep_report
from jobs.report.write import write_report
from jobs.store.root import RunStore
from jobs.store.sweep_root import is_sweep_root
from jobs.usecases.root import load_root


@dataclass
class ReportResult:
    index: str  # index.html's URL
    # A sweep root's comparison: the k of its pass@k column, one row per measured point, and
    # the points not measured yet.
    k: int | None = None
    rows: list[PointRow] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def report_of(stores: list[RunStore], out: RunStore) -> ReportResult:
    return ReportResult(out.url(write_report(stores, out)))


def sweep_report_of(sweep_store: RunStore, out: RunStore) -> ReportResult:
    index, k, rows, missing = write_sweep_report(sweep_store, out)
    return ReportResult(out.url(index), k, rows, missing)


def report(roots: Sequence[str], out: str | None = None) -> ReportResult:
    """`troop report ROOT [ROOT2 ...] [--out DIR]`: into `out`, by default the first root's report/."""
    stores = [load_root(root)[1] for root in roots]
    first = stores[0]
    out_store = RunStore(out, {}) if out is not None else RunStore(first.url(first.report), dict(first.storage_options))
    sweeps = [s.root for s in stores if is_sweep_root(s)]
    if sweeps and len(stores) > 1:
        raise TroopError(f"{sweeps[0]} is a sweep: report it alone (troop report {sweeps[0]}), its points are overlaid")
    return sweep_report_of(first, out_store) if sweeps else report_of(stores, out_store)
