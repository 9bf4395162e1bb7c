"""The allocate section against a run: its settings for `jobs.allocate`, its checks, a run's
schedule replayed from its stored verdicts, and metrics.json `allocation`."""

import json
import math

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jobs.allocate import (
    AllocationSettings,
    Grant,
    Schedule,
    Verdict,
    allocation_summary,
    check_settings,
    coverage_gain,
    fit_prior,
    prefix_steps,
)
from jobs.config import JobConfig
from jobs.errors import ConfigError
from jobs.stages.verification import resolve_verifier
from jobs.store import layout
from jobs.store.root import RunStore


def is_adaptive(config: JobConfig) -> bool:
    return config.allocate.policy != "uniform"


def allocation_settings(config: JobConfig, problems: int) -> AllocationSettings:
    a = config.allocate
    return AllocationSettings(a.policy, config.sampling.n, problems, a.budget, a.first, a.confidence, a.step, a.min_gain)


def check_allocation(config: JobConfig, problems: int, segments: list) -> None:
    """One-line ConfigErrors for an allocate section that cannot work with this config, problem
    set and root (`segments`: its sample ranges, several where sampling.n was raised), before
    anything is written."""
    a, verifier = config.allocate, config.verify.verifier
    if a.policy != "uniform" and len(segments) > 1:
        raise ConfigError(f"run.root={config.run.root} holds an adaptive run with sampling.n={segments[0][1]}: its "
                          "decisions depend on that cap, so it cannot be raised; use a new run.root")
    answers = verifier is not None and resolve_verifier(verifier).gold_as_completion is not None
    try:
        check_settings(a.policy, a.budget, a.first, config.sampling.n, problems, verifier is not None, answers,
                       confidence=a.confidence, step=a.step, min_gain=a.min_gain)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def weighs_votes(config: JobConfig) -> bool:
    """`confidence` with a reward model: votes weighed by reward, so scores are needed online."""
    return config.allocate.policy == "confidence" and config.score.model is not None


class StoredVerdicts:
    """Reads a unit's verdicts (and scores) for the schedule."""

    def __init__(self, store: RunStore, verifier_key: str, scorer_key: str | None, problem_ids: list[str]):
        self.store, self.verifier_key, self.scorer_key = store, verifier_key, scorer_key
        self.index = {pid: i for i, pid in enumerate(problem_ids)}
        # What the store held when the driver started (one listing each, not a request per unit).
        self.verified = store.unit_ids(layout.verdicts(verifier_key))
        self.scored = store.unit_ids(layout.scores(scorer_key)) if scorer_key is not None else set()

    def has_verdicts(self, unit_id: str) -> bool:
        return unit_id in self.verified

    def has_scores(self, unit_id: str) -> bool:
        return self.scorer_key is None or unit_id in self.scored

    def read(self, unit_id: str) -> list[Verdict]:
        rows = self.store.read_table(self.store.verdict_unit(self.verifier_key, unit_id),
                                     columns=["problem_id", "sample_idx", "passed", "answer"]).to_pylist()
        weights = self._weights(unit_id) if self.scorer_key is not None else {}
        return [Verdict(self.index[r["problem_id"]], r["sample_idx"], r["passed"], r["answer"],
                        weights.get((r["problem_id"], r["sample_idx"])) if self.scorer_key is not None else None)
                for r in rows]

    def _weights(self, unit_id: str) -> dict:
        """(problem, sample) -> the reward as a vote weight: a probability (sigmoid of a raw
        logit, as metrics.score=reward weighs), 0 for a null reward."""
        path = self.store.score_unit(self.scorer_key, unit_id)
        with self.store.fs.open(path, "rb") as f:
            table = pq.read_table(f, columns=["problem_id", "sample_idx", "reward"])
        logit = (table.schema.metadata or {}).get(b"troop.reward") == b"logit"
        out = {}
        for r in table.to_pylist():
            reward = r["reward"]
            weight = 0.0 if reward is None or math.isnan(reward) else (1 / (1 + math.exp(-reward)) if logit else reward)
            out[(r["problem_id"], r["sample_idx"])] = max(0.0, weight)
        return out


def replay(schedule: Schedule, stored: StoredVerdicts) -> list[Grant]:
    """Feeds the schedule every stored verdict unit it asks for; returns every grant released."""
    released, waiting = [], schedule.advance()
    while waiting:
        released += waiting
        landed = [g for g in waiting if stored.has_verdicts(g.unit_id) and stored.has_scores(g.unit_id)]
        for grant in landed:
            schedule.landed(grant.unit_id, stored.read(grant.unit_id))
        waiting = schedule.advance()
    return released



def job_allocation(job: dict, problems: int) -> AllocationSettings:
    """The settings a root's job.yaml ran with (no allocate section: uniform)."""
    a = job.get("allocate") or {}
    n = int(job["sampling"]["n"])
    return AllocationSettings(a.get("policy", "uniform"), n, problems, a.get("budget"), a.get("first"),
                              a.get("confidence", 0.95), a.get("step"), a.get("min_gain", 1e-4))


def stored_schedule(store: RunStore, job: dict, problem_ids: list[str], verifier_key: str,
                    scorer_key: str | None) -> Schedule:
    """An adaptive run's schedule from its stored verdicts (and scores, for a reward-weighted
    vote): the decisions the driver took, or will take once the rest lands."""
    settings = job_allocation(job, len(problem_ids))
    weighted = settings.policy == "confidence" and (job.get("score") or {}).get("model") is not None
    schedule = Schedule(settings, int(job["plan"]["samples_per_unit"]), weighted)
    replay(schedule, StoredVerdicts(store, verifier_key, scorer_key if weighted else None, problem_ids))
    return schedule


def allocation_metrics(store: RunStore, job: dict | None, verifier_key: str, tokens: int,
                       scorer_key: str | None = None) -> dict:
    """metrics.json `allocation`: the policy and budget, samples and tokens spent, problems
    solved, samples per problem, the solved-versus-spent curve (an adaptive run's rounds, a
    uniform run's prefixes 1, 2, 4, ...) and, for an adaptive run, uniform sampling's expected
    solved problems at each number of samples per problem, from round 1."""
    ids = _problem_ids(store, verifier_key)
    settings = job_allocation(job, len(ids)) if job else None
    verdicts = _verdict_rows(store, verifier_key)
    drawn, first_pass = _pool_counts(verdicts, ids)
    out = {"policy": settings.policy if settings else "uniform", "budget": settings.total_budget if settings else None}
    if settings is None or not settings.adaptive:
        return {**out, **allocation_summary(prefix_steps(drawn), first_pass, tokens)}
    schedule = stored_schedule(store, job, ids, verifier_key, scorer_key)
    steps = [[min(a, n) for a, n in zip(asked, drawn)] for asked in schedule.asked]
    steps = [step for j, step in enumerate(steps) if j == 0 or step != steps[j - 1]]
    summary = allocation_summary(steps, first_pass, tokens)
    return {**out, "first": settings.first_samples, "step": settings.block, **summary,
            "problems_open": schedule.open_problems(), "rounds": len(steps), "finished": schedule.finished,
            "engine_idle_share": _driver_facts(store).get("engine_idle_share"),
            "uniform_expected": uniform_expected(verdicts, ids, drawn, settings)}


def _problem_ids(store: RunStore, verifier_key: str) -> list[str]:
    """The run's problem set; for a pool made elsewhere (no problems.parquet), the verified ones."""
    if store.exists(store.problems):
        return store.read_table(store.problems, columns=["problem_id"])["problem_id"].to_pylist()
    folder = layout.verdicts(verifier_key)
    return sorted({pid for u in store.unit_ids(folder)
                   for pid in store.read_table(store.verdict_unit(verifier_key, u), columns=["problem_id"])["problem_id"].to_pylist()})


def _verdict_rows(store: RunStore, verifier_key: str) -> pa.Table:
    """(problem_id, sample_idx, passed) of every verdict."""
    units = sorted(store.unit_ids(layout.verdicts(verifier_key)))
    return pa.concat_tables([store.read_table(store.verdict_unit(verifier_key, u), columns=["problem_id", "sample_idx", "passed"])
                             for u in units]) if units else pa.table({"problem_id": pa.array([], pa.string()),
                                                                       "sample_idx": pa.array([], pa.int32()),
                                                                       "passed": pa.array([], pa.bool_())})


def _pool_counts(verdicts: pa.Table, ids: list[str]) -> tuple[list[int], list[int | None]]:
    """Samples per problem (verified ones) and the index of each problem's first pass."""
    index = {pid: i for i, pid in enumerate(ids)}
    drawn, first_pass = [0] * len(ids), [None] * len(ids)
    last = verdicts.group_by("problem_id").aggregate([("sample_idx", "max")])
    for pid, top in zip(last["problem_id"].to_pylist(), last["sample_idx_max"].to_pylist()):
        drawn[index[pid]] = top + 1
    passing = verdicts.filter(pc.field("passed")).group_by("problem_id").aggregate([("sample_idx", "min")])
    for pid, first in zip(passing["problem_id"].to_pylist(), passing["sample_idx_min"].to_pylist()):
        first_pass[index[pid]] = first
    return drawn, first_pass


def uniform_expected(verdicts: pa.Table, ids: list[str], drawn: list[int], settings: AllocationSettings) -> list[dict]:
    """Expected problems solved by k samples of every problem, k = 1..sampling.n, from round 1:
    each problem's pass rate has the posterior Beta(a + c, b + f - c) after c passes in its f
    round-1 samples (the prior fitted to round 1, `jobs.allocate.fit_prior`), and k samples
    solve it with probability 1 - E[(1 - p)^k]."""
    first = settings.first_samples
    passes = _round_one_passes(verdicts, ids, first)
    counted = [c for c, n in zip(passes, drawn) if n >= first]
    if not counted:
        return []
    prior = fit_prior(first, counted)
    return [{"samples_per_problem": k, "samples_spent": k * len(counted),
             "problems_solved": sum(coverage_gain(prior.alpha + c, prior.beta + first - c, k) for c in counted)}
            for k in range(1, settings.cap + 1)]


def _round_one_passes(verdicts: pa.Table, ids: list[str], first: int) -> list[int]:
    index = {pid: i for i, pid in enumerate(ids)}
    passes = [0] * len(ids)
    early = verdicts.filter(pc.field("passed") & (pc.field("sample_idx") < first)).group_by("problem_id").aggregate(
        [("passed", "count")])
    for pid, count in zip(early["problem_id"].to_pylist(), early["passed_count"].to_pylist()):
        passes[index[pid]] = count
    return passes


def _driver_facts(store: RunStore) -> dict:
    path = store.path(layout.ALLOCATION_JSON)
    return json.loads(store.read_text(path)) if store.exists(path) else {}
