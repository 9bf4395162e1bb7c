"""The report of one or several runs: five PNG plots and an index.html beside them, and where a
run allocated its samples adaptively, a sixth plot and its table.

Loads the roots (jobs.report.runs), draws the figures (jobs.report.plots) and renders the page
(jobs.report.page). All I/O goes through `RunStore`, so roots and the output may be local paths,
`s3://...` or `memory://...`.
"""

import io
from dataclasses import dataclass, field

from matplotlib.figure import Figure

from jobs.report.allocation import EqualCoverage, SolvedCurve, adaptive_runs
from jobs.report.page import allocation_html, render_html
from jobs.report.plots import ALLOCATION_PLOT, PLOTS, plot_allocation
from jobs.report.runs import load_runs
from jobs.store.root import RunStore

DPI = 110


@dataclass
class WrittenReport:
    index: str  # index.html's path in the output store
    equal_coverage: list[EqualCoverage] = field(default_factory=list)  # one per adaptive run


def _save(fig: Figure, out: RunStore, name: str) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    fig.clear()  # a Figure outside pyplot is freed by the garbage collector; clear drops its artists now
    out.write_bytes(out.path(name), buf.getvalue())


def write_report(roots: list[RunStore], out: RunStore, labels: list[str] | None = None, preface_html: str = "",
                 against: SolvedCurve | None = None) -> WrittenReport:
    """Writes out.path("index.html") and the PNGs beside it. `against`: the uniform curve that
    adaptive runs are compared with (None: each run's own expected one)."""
    if not roots:
        raise ValueError("write_report needs at least one root")
    runs = load_runs(roots, labels)
    adaptive = adaptive_runs(runs, against)
    for name, plot, _ in PLOTS:
        _save(plot(runs), out, name)
    if adaptive:
        _save(plot_allocation(adaptive, against), out, ALLOCATION_PLOT[0])
    index = out.path("index.html")
    out.write_text(index, render_html(runs, preface_html + allocation_html(adaptive)))
    return WrittenReport(index, [a.equal for a in adaptive])
