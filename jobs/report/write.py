"""The report of one or several runs: five PNG plots and an index.html beside them.

Loads the roots (jobs.report.runs), draws the figures (jobs.report.plots) and renders the page
(jobs.report.page). All I/O goes through `RunStore`, so roots and the output may be local paths,
`s3://...` or `memory://...`.
"""

import io

from matplotlib.figure import Figure

from jobs.report.page import render_html
from jobs.report.plots import PLOTS
from jobs.report.runs import load_runs
from jobs.store.root import RunStore

DPI = 110


def _save(fig: Figure, out: RunStore, name: str) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    fig.clear()  # a Figure outside pyplot is freed by the garbage collector; clear drops its artists now
    out.write_bytes(out.path(name), buf.getvalue())


def write_report(roots: list[RunStore], out: RunStore, labels: list[str] | None = None, preface_html: str = "") -> str:
    """Writes out.path("index.html") and the PNGs beside it; returns the index.html path."""
    if not roots:
        raise ValueError("write_report needs at least one root")
    runs = load_runs(roots, labels)
    for name, plot, _ in PLOTS:
        _save(plot(runs), out, name)
    index = out.path("index.html")
    out.write_text(index, render_html(runs, preface_html))
    return index
