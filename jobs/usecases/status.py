"""`troop status`: what a root holds, read from the store alone, for a running or a stopped run.

Units done are the sample files; failed ones are in `failures/`; the units in flight are those
the driver last said it had handed out (`jobs.store.progress`), shown with the time it said so,
since a driver that was killed cannot update it.
"""

import json

from jobs.problems.units import plan_units
from jobs.store import layout
from jobs.store.failures import read_failures
from jobs.store.progress import read_progress
from jobs.store.root import RunStore
from jobs.store.runinfo import read_job, sample_segments


def _samples_lines(store: RunStore, done: set[str]) -> list[str]:
    failures = read_failures(store).to_pylist()
    failed_units = {f["unit_id"] for f in failures if f["problem_id"] is None} - done
    refused = [f for f in failures if f["problem_id"] is not None]
    progress = read_progress(store)
    in_flight = set(progress["in_flight"]) - done - failed_units if progress else set()
    job = read_job(store)
    if job is not None and store.exists(store.problems):
        n = int(job["sampling"]["n"])
        ids = store.read_table(store.problems, columns=["problem_id"])["problem_id"].to_pylist()
        planned = {u.unit_id for u in plan_units(ids, n, job["plan"]["samples_per_unit"], sample_segments(job))}
        finished = len(planned & done)
        remaining = len(planned - done - failed_units - in_flight)
        line = (f"samples: {finished}/{len(planned)} units done, {len(in_flight)} in flight, {len(failed_units)} failed, "
                f"{remaining} remaining ({len(ids)} problems x n={n})")
    else:
        line = f"samples: {len(done)} unit files (no job.yaml: not written by troop run)"
    lines = [line]
    if in_flight:
        lines.append(f"in flight as of {progress['updated']} (the driver's last word; it may have stopped since)")
    if failed_units:
        lines.append(f"failed units (rerun to retry): {', '.join(sorted(failed_units))}")
    if refused:
        lines.append(f"problems whose prompt the engine refused: {len(refused)} (failures/)")
    return lines


def _so_far(store: RunStore, done: set[str]) -> str:
    samples = tokens = 0
    for unit in done:
        column = store.read_table(store.sample_unit(unit), columns=["num_tokens"])["num_tokens"]
        samples += len(column)
        tokens += sum(column.to_pylist())
    return f"so far: {samples:,} samples, {tokens:,} tokens"


def run_status(store: RunStore) -> list[str]:
    lines = [f"root: {store.root}"]
    done = store.unit_ids(layout.SAMPLES)
    lines += _samples_lines(store, done)
    lines.append(_so_far(store, done))
    for key in store.keys_under(layout.VERDICTS):
        lines.append(f"verdicts {key}: {len(store.unit_ids(layout.verdicts(key)) & done)}/{len(done)} sample units")
    if store.exists(store.metrics_json):
        metrics = json.loads(store.read_text(store.metrics_json))
        curve = metrics.get("pass_at_k", {})
        if curve:
            top = max(curve, key=int)
            lines.append(f"metrics: pass@1 {curve.get('1', float('nan')):.3f}, pass@{top} {curve[top]:.3f}")
    return lines
