"""`troop report`: the report of one or several roots, or of a sweep root (its points overlaid,
with the comparison table on top); adaptive runs against uniform sampling, by default their own
expected uniform curve, with `against` a uniform run's measured one; search runs against
sampling at the same compute, by default a sample run among the roots (a sweep's points), with
`against` that sample run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from jobs.errors import TroopError
from jobs.report.allocation import EqualCoverage
from jobs.report.search import SearchComparison
from jobs.store.root import RunStore
from jobs.store.sweep_root import is_sweep_root
from jobs.usecases.root import load_root

if TYPE_CHECKING:  # the writers import matplotlib (half a second): only commands that draw load them
    from jobs.report.compare import PointRow
    from jobs.report.write import Against


@dataclass
class ReportResult:
    index: str  # index.html's URL
    # A sweep root's comparison: the k of its pass@k column, one row per measured point, and
    # the points not measured yet.
    k: int | None = None
    rows: list[PointRow] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    # Each adaptive run's samples against uniform sampling's for as many problems solved.
    equal_coverage: list[EqualCoverage] = field(default_factory=list)
    # Each search run against a sample run at the same generated tokens and FLOPs.
    search: list[SearchComparison] = field(default_factory=list)


def report_of(stores: list[RunStore], out: RunStore, against: Against | None = None) -> ReportResult:
    from jobs.report.write import write_report

    written = write_report(stores, out, against=against)
    return ReportResult(out.url(written.index), equal_coverage=written.equal_coverage, search=written.search)


def sweep_report_of(sweep_store: RunStore, out: RunStore, against: Against | None = None) -> ReportResult:
    from jobs.report.compare import write_sweep_report

    written, k, rows, missing = write_sweep_report(sweep_store, out, against)
    return ReportResult(out.url(written.index), k, rows, missing, written.equal_coverage, written.search)


def report(roots: Sequence[str], out: str | None = None, against: str | None = None) -> ReportResult:
    """`troop report ROOT [ROOT2 ...] [--out DIR] [--against ROOT]`: into `out`, by default the
    first root's report/. `against`: a uniform run for adaptive runs, a sample run scored by the
    same PRM for search runs."""
    stores = [load_root(root)[1] for root in roots]
    first = stores[0]
    out_store = RunStore(out, {}) if out is not None else RunStore(first.url(first.report), dict(first.storage_options))
    sweeps = [s.root for s in stores if is_sweep_root(s)]
    if sweeps and len(stores) > 1:
        raise TroopError(f"{sweeps[0]} is a sweep: report it alone (troop report {sweeps[0]}), its points are overlaid")
    from jobs.report.write import load_against

    other = load_against(load_root(against)[1]) if against is not None else None
    return sweep_report_of(first, out_store, other) if sweeps else report_of(stores, out_store, other)
