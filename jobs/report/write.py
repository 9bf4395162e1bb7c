"""The report of one or several runs: five PNG plots and an index.html beside them; where a run
allocated its samples adaptively, a plot and a table of that; where a run searched step by step
(strategy.kind=beam|dvts), a plot and a table of it against sampling at the same compute.

Loads the roots (jobs.report.runs), draws the figures (jobs.report.plots) and renders the page
(jobs.report.page). All I/O goes through `RunStore`, so roots and the output may be local paths,
`s3://...` or `memory://...`.
"""

import io
from dataclasses import dataclass, field

from matplotlib.figure import Figure

from jobs.errors import ConfigError
from jobs.report.allocation import EqualCoverage, SolvedCurve, adaptive_runs, is_adaptive, measured_uniform
from jobs.report.page import allocation_html, render_html, search_html
from jobs.report.plots import ALLOCATION_PLOT, PLOTS, SEARCH_PLOT, plot_allocation, plot_search
from jobs.report.runs import Run, load_metrics, load_runs
from jobs.report.search import SearchComparison, is_search_run, search_comparisons
from jobs.store.root import RunStore

DPI = 110


@dataclass
class WrittenReport:
    index: str  # index.html's path in the output store
    equal_coverage: list[EqualCoverage] = field(default_factory=list)  # one per adaptive run
    search: list[SearchComparison] = field(default_factory=list)  # one per search run


@dataclass
class Against:
    """The root `troop report --against` names: adaptive runs are compared with its pass@k as a
    uniform curve, search runs with its selection by the PRM at the same compute."""

    uniform: SolvedCurve
    run: Run


def load_against(store: RunStore) -> Against:
    """The --against root; refused (before anything is written) without pass@k or when adaptive."""
    uniform = measured_uniform(store)
    return Against(uniform, Run(store, f"sample run: {store.root}", load_metrics(store), None))


def _save(fig: Figure, out: RunStore, name: str) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    fig.clear()  # a Figure outside pyplot is freed by the garbage collector; clear drops its artists now
    out.write_bytes(out.path(name), buf.getvalue())


def check_against(runs: list[Run], against: Against | None) -> None:
    """--against with neither an adaptive run nor a search run to compare is refused before anything is written."""
    if against is not None and not any(is_adaptive(r.metrics) or is_search_run(r) for r in runs):
        names = ", ".join(run.store.root for run in runs)
        raise ConfigError(f"--against compares an adaptive run with a uniform one, or a search run with a sample run, but "
                          f"no root given has an adaptive allocate.policy or a search strategy.kind in its metrics.json "
                          f"({names}): report an adaptive or a search run's root")


def write_report(roots: list[RunStore], out: RunStore, labels: list[str] | None = None, preface_html: str = "",
                 against: Against | None = None) -> WrittenReport:
    """Writes out.path("index.html") and the PNGs beside it. `against`: the run that adaptive
    runs (None: each against its own expected uniform curve) and search runs (None: against a
    sample run of the report) are compared with."""
    if not roots:
        raise ValueError("write_report needs at least one root")
    runs = load_runs(roots, labels)
    check_against(runs, against)
    uniform = against.uniform if against is not None else None
    adaptive = adaptive_runs(runs, uniform)
    searched = search_comparisons(runs, against.run if against is not None else None)
    for name, plot, _ in PLOTS:
        _save(plot(runs), out, name)
    if adaptive:
        _save(plot_allocation(adaptive, uniform), out, ALLOCATION_PLOT[0])
    if searched:
        _save(plot_search(searched), out, SEARCH_PLOT[0])
    index = out.path("index.html")
    out.write_text(index, render_html(runs, preface_html + allocation_html(adaptive) + search_html(searched)))
    return WrittenReport(index, [a.equal for a in adaptive], searched)
