"""`troop status`: what a root holds, read from the store alone, for a running or a stopped run.

Units done are the sample files; failed ones are in `failures/`; the units in flight are those
the driver last said it had handed out (`jobs.store.progress`), shown with the time it said so,
since a driver that was killed cannot update it.

A uniform run's units are planned up front, so status counts them against the plan. An
adaptive run's (allocate.policy other than uniform) follow from its verdicts: status replays
its decisions from the stored verdicts (`jobs.usecases.allocation.stored_schedule`) to know
which units have been released so far, and shows what the allocation has spent and solved.
"""

import json
from dataclasses import dataclass

from jobs.allocate import Schedule
from jobs.problems.units import plan_units
from jobs.store import layout
from jobs.store.failures import read_failures
from jobs.store.progress import read_progress
from jobs.store.root import RunStore
from jobs.store.runinfo import read_job, sample_segments
from jobs.usecases.allocation import job_allocation, stored_schedule


@dataclass
class _UnitStates:
    """Units not done: failed every attempt, or handed out when the driver last said."""

    failed: set[str]
    in_flight: set[str]
    refused: int  # problems whose prompt the engine refused
    updated: str | None  # when the driver last wrote progress.json


def _unit_states(store: RunStore, done: set[str]) -> _UnitStates:
    failures = read_failures(store).to_pylist()
    failed = {f["unit_id"] for f in failures if f["problem_id"] is None} - done
    progress = read_progress(store)
    in_flight = set(progress["in_flight"]) - done - failed if progress else set()
    return _UnitStates(failed, in_flight, sum(f["problem_id"] is not None for f in failures),
                       progress["updated"] if progress else None)


def _state_lines(states: _UnitStates) -> list[str]:
    lines = []
    if states.in_flight:
        lines.append(f"in flight as of {states.updated} (the driver's last word; it may have stopped since)")
    if states.failed:
        lines.append(f"failed units (rerun to retry): {', '.join(sorted(states.failed))}")
    if states.refused:
        lines.append(f"problems whose prompt the engine refused: {states.refused} (failures/)")
    return lines


def _problem_ids(store: RunStore) -> list[str]:
    return store.read_table(store.problems, columns=["problem_id"])["problem_id"].to_pylist()


def _uniform_units_line(store: RunStore, job: dict, done: set[str], states: _UnitStates) -> str:
    n, ids = int(job["sampling"]["n"]), _problem_ids(store)
    planned = {u.unit_id for u in plan_units(ids, n, job["plan"]["samples_per_unit"], sample_segments(job))}
    remaining = len(planned - done - states.failed - states.in_flight)
    return (f"samples: {len(planned & done)}/{len(planned)} units done, {len(states.in_flight)} in flight, "
            f"{len(states.failed)} failed, {remaining} remaining ({len(ids)} problems x n={n})")


def _is_adaptive(job: dict) -> bool:
    return (job.get("allocate") or {}).get("policy", "uniform") != "uniform"


def _single_key(store: RunStore, folder: str, prefix: str = "") -> str | None:
    """The one key under verdicts/ or scores/ (of those starting with `prefix` where there are
    several); None where there is none or no single one."""
    keys = store.keys_under(folder)
    if len(keys) > 1 and prefix:
        keys = [k for k in keys if k.startswith(prefix)]
    return keys[0] if len(keys) == 1 else None


def _scorer_key(store: RunStore, job: dict) -> str | None:
    """The rewards a `confidence` run with a reward model weighs its votes by; None otherwise."""
    weighted = job["allocate"]["policy"] == "confidence" and (job.get("score") or {}).get("model") is not None
    return _single_key(store, layout.SCORES) if weighted else None


def _problems_solved(store: RunStore, verifier_key: str) -> int:
    solved = set()
    for unit in store.unit_ids(layout.verdicts(verifier_key)):
        table = store.read_table(store.verdict_unit(verifier_key, unit), columns=["problem_id", "passed"])
        solved.update(p for p, ok in zip(table["problem_id"].to_pylist(), table["passed"].to_pylist()) if ok)
    return len(solved)


def _allocation_line(schedule: Schedule, samples: int, solved: int) -> str:
    settings = schedule.settings
    rounds = max((grant.round for grant in schedule.grants.values()), default=0)
    line = (f"allocation {settings.policy}: {samples:,} of {settings.total_budget:,} budget samples spent so far, "
            f"{solved}/{settings.problems} problems solved, {schedule.open_problems()} still open, {rounds} rounds so far")
    return line + (", finished" if schedule.finished else "")


def _adaptive_lines(store: RunStore, job: dict, done: set[str], states: _UnitStates, samples: int) -> list[str]:
    ids = _problem_ids(store)
    verifier = (job.get("verify") or {}).get("verifier")
    key = _single_key(store, layout.VERDICTS, f"{verifier}-")
    states_text = f"{len(states.in_flight)} in flight, {len(states.failed)} failed"
    if key is None:  # its decisions cannot be replayed: say what the store holds
        held = ", ".join(store.keys_under(layout.VERDICTS)) or "none yet"
        policy, budget = job["allocate"]["policy"], job_allocation(job, len(ids)).total_budget
        spent = (f"allocation {policy}: {samples:,} of {budget:,} budget samples spent so far; its later rounds "
                 f"follow from one verifier's verdicts (verdicts/: {held})")
        return [f"units: {len(done)} done, {states_text}", spent]
    schedule = stored_schedule(store, job, ids, key, _scorer_key(store, job))
    released = set(schedule.grants)
    return [f"units: {len(done & released)} done of {len(released)} released so far, {states_text}",
            _allocation_line(schedule, samples, _problems_solved(store, key))]


def _pool_size(store: RunStore, done: set[str]) -> tuple[int, int]:
    """(samples, tokens) in the sample files."""
    samples = tokens = 0
    for unit in done:
        column = store.read_table(store.sample_unit(unit), columns=["num_tokens"])["num_tokens"]
        samples += len(column)
        tokens += sum(column.to_pylist())
    return samples, tokens


def _samples_lines(store: RunStore, done: set[str], samples: int) -> list[str]:
    states = _unit_states(store, done)
    job = read_job(store)
    if job is None or not store.exists(store.problems):
        lines = [f"samples: {len(done)} unit files (no job.yaml: not written by troop run)"]
    elif _is_adaptive(job):
        lines = _adaptive_lines(store, job, done, states, samples)
    else:
        lines = [_uniform_units_line(store, job, done, states)]
    return lines + _state_lines(states)


def run_status(store: RunStore) -> list[str]:
    lines = [f"root: {store.root}"]
    done = store.unit_ids(layout.SAMPLES)
    samples, tokens = _pool_size(store, done)
    lines += _samples_lines(store, done, samples)
    lines.append(f"so far: {samples:,} samples, {tokens:,} tokens")
    for key in store.keys_under(layout.VERDICTS):
        lines.append(f"verdicts {key}: {len(store.unit_ids(layout.verdicts(key)) & done)}/{len(done)} sample units")
    if store.exists(store.metrics_json):
        metrics = json.loads(store.read_text(store.metrics_json))
        curve = metrics.get("pass_at_k", {})
        if curve:
            top = max(curve, key=int)
            lines.append(f"metrics: pass@1 {curve.get('1', float('nan')):.3f}, pass@{top} {curve[top]:.3f}")
    return lines
