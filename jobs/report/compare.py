"""The comparison of a sweep's points: one row per point (pass@1, pass@k at the largest k every
point measured, tokens per solved problem), and the sweep's report (the points' curves
overlaid, the table on top). Rows come from each point's metrics.json only."""

import html
import json
from dataclasses import dataclass

from jobs.errors import StoreError
from jobs.report.write import Against, WrittenReport, write_report
from jobs.store.root import RunStore
from jobs.store.sweep_root import point_root, read_sweep_points


@dataclass
class PointRow:
    name: str
    pass_at_1: float | None
    pass_at_k: float | None  # at the sweep's common k
    tokens_per_solved_problem: float | None  # None: no problem solved
    samples: int


def common_k(metrics: list[dict]) -> int | None:
    """The largest k in every point's pass@k curve."""
    shared = set.intersection(*(set(int(k) for k in m["pass_at_k"]) for m in metrics)) if metrics else set()
    return max(shared) if shared else None


def comparison_rows(names: list[str], metrics: list[dict]) -> tuple[int | None, list[PointRow]]:
    k = common_k(metrics)
    rows = [
        PointRow(
            name=name,
            pass_at_1=m["pass_at_k"].get("1"),
            pass_at_k=m["pass_at_k"].get(str(k)) if k is not None else None,
            tokens_per_solved_problem=m["cost"].get("tokens_per_solved_problem"),
            samples=m["counts"]["samples"],
        )
        for name, m in zip(names, metrics)
    ]
    return k, rows


def comparison_html(k: int | None, rows: list[PointRow], missing: list[str]) -> str:
    def cell(value, digits: str) -> str:
        return "—" if value is None else format(value, digits)

    head = f"<tr><th class=l>point</th><th>samples</th><th>pass@1</th><th>pass@{k}</th><th>tokens per solved problem</th></tr>"
    body = "".join(
        f"<tr><td class=l>{html.escape(r.name)}</td><td>{r.samples:,}</td><td>{cell(r.pass_at_1, '.3f')}</td>"
        f"<td>{cell(r.pass_at_k, '.3f')}</td><td>{cell(r.tokens_per_solved_problem, ',.1f')}</td></tr>"
        for r in rows
    )
    note = f"<p>pass@{k}: the largest k every point measured.</p>"
    if missing:
        note += f"<p>Not measured yet (no metrics.json): {html.escape(', '.join(missing))}.</p>"
    return f"<h2>Sweep points</h2><table>{head}{body}</table>{note}"


def sweep_points(sweep_store: RunStore) -> tuple[list[str], list[RunStore], list[str]]:
    """(names, stores) of the listed points that have metrics.json, and the names of those that do not."""
    names, stores, missing = [], [], []
    for point in read_sweep_points(sweep_store):
        store = RunStore(point_root(sweep_store.root, point["name"]), dict(sweep_store.storage_options))
        if store.exists(store.metrics_json):  # one request per point (each is a round trip on S3)
            names.append(point["name"])
            stores.append(store)
        else:
            missing.append(point["name"])
    return names, stores, missing


def write_sweep_report(sweep_store: RunStore, out: RunStore, against: Against | None = None
                       ) -> tuple[WrittenReport, int | None, list[PointRow], list[str]]:
    """The sweep's report in `out`: (what was written, common k, rows, points not measured yet)."""
    names, stores, missing = sweep_points(sweep_store)
    if not stores:
        raise StoreError(f"no point of the sweep at {sweep_store.root} has metrics.json yet: run troop sweep first")
    metrics = [json.loads(s.read_text(s.metrics_json)) for s in stores]
    k, rows = comparison_rows(names, metrics)
    written = write_report(stores, out, labels=names, preface_html=comparison_html(k, rows, missing), against=against)
    return written, k, rows, missing
