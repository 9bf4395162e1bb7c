"""Metrics of a stored run: read verdicts and samples, compute with `jobs.metrics`, write
`metrics.json`. The I/O lives here so that `jobs.metrics` stays pure."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jobs.errors import StoreError
from jobs.metrics import bootstrap_ci, default_ks, fit_scaling, means, pass_at_k_by_k, scaling_curve
from jobs.store import RunStore


def _read_folder(store: RunStore, folder: str, columns: list[str], fix: str) -> pa.Table:
    ids = sorted(store.unit_ids(folder))
    if not ids:
        raise StoreError(f"{store.root} has no {folder}/unit-*.parquet: {fix}")
    return pa.concat_tables(store.read_table(store.path(folder, f"unit-{u}.parquet"), columns) for u in ids)


def per_problem_counts(verdicts: pa.Table) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Problem ids with their sample counts n and pass counts c."""
    grouped = verdicts.group_by("problem_id").aggregate([("passed", "count"), ("passed", "sum")])
    grouped = grouped.sort_by("problem_id")
    n = grouped["passed_count"].to_numpy().astype(np.int64)
    c = pc.fill_null(grouped["passed_sum"], 0).to_numpy().astype(np.int64)
    return grouped["problem_id"].to_pylist(), n, c


def measure_run(store: RunStore, verifier_key: str) -> dict:
    """The run's metrics as written to metrics.json."""
    verdicts = _read_folder(store, f"verdicts/{verifier_key}", ["problem_id", "sample_idx", "passed"], "run troop verify first")
    samples = _read_folder(store, "samples", ["num_tokens"], "run troop generate first")
    _, n, c = per_problem_counts(verdicts)
    ks = default_ks(int(n.min()))
    per_problem = pass_at_k_by_k(n, c, ks)  # once: the means and their intervals share it
    curve = means(per_problem)
    return {
        "verifier": verifier_key,
        "pass_at_k": {str(k): v for k, v in curve.items()},
        "ci": {"pass_at_k": {str(k): list(bootstrap_ci(values)) for k, values in per_problem.items()}},
        "fit": coverage_fit(curve),
        "counts": {
            "problems": int(n.size),
            "samples": int(n.sum()),
            "passed": int(c.sum()),
            "tokens": int(pc.sum(samples["num_tokens"]).as_py() or 0),
            "problems_solved": int((c > 0).sum()),
        },
    }


def coverage_fit(curve: dict[int, float]) -> dict:
    """The exponentiated power law fitted to the coverage curve, with a forecast (labelled as
    such) at 2x, 4x and 10x the largest k sampled."""
    ks = sorted(curve)
    fit = fit_scaling(ks, [curve[k] for k in ks])
    if fit["a"] is not None:
        horizon = [2 * ks[-1], 4 * ks[-1], 10 * ks[-1]]
        fit["forecast"] = {str(k): float(v) for k, v in zip(horizon, scaling_curve(fit["a"], fit["b"], horizon))}
    return fit


def write_metrics(store: RunStore, metrics: dict) -> None:
    store.write_text(store.metrics_json, json.dumps(metrics, indent=2) + "\n")
