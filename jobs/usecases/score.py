"""`troop score ROOT score.model=PATH`: reward-model scores for every sample unit of a root
that has none under the scorer's key yet (`scores/<scorer-key>/unit-<id>.parquet`).

Incremental like verification: a rerun skips scored units; another reward model, revision or
setting writes beside the first. The per-unit work is `jobs.stages.scoring.ScoreWorker`.
"""

import time
from dataclasses import dataclass, field

from jobs.cluster.executor import UnitExecutor
from jobs.cluster.pools import RAY, Cluster
from jobs.config import ScoreConfig
from jobs.errors import ConfigError, StoreError, TroopError
from jobs.stages.scoring import ScoreStats, ScoreTask, scorer_key
from jobs.store import layout
from jobs.store.root import RunStore
from jobs.store.runinfo import check_model_path
from workers.reward import check_reward_model


@dataclass
class ScoreSummary:
    scorer_key: str
    units: int = 0
    samples: int = 0
    scored: int = 0  # distinct (problem, completion) pairs the reward model read
    unscored: int = 0  # samples with a null reward (too long for score.max_model_len)
    seconds: float = 0.0
    failed: dict = field(default_factory=dict)  # unit id -> (status, reason): no score file

    def add(self, stats: ScoreStats) -> None:
        self.units += 1
        self.samples += stats.samples
        self.scored += stats.scored
        self.unscored += stats.unscored

    def check(self, root: str) -> None:
        """A TroopError naming the units whose scoring failed every attempt, if any."""
        if self.failed:
            unit_id, (status, reason) = next(iter(self.failed.items()))
            raise TroopError(
                f"scoring unit {unit_id} failed every attempt ({status}: {reason}) and {len(self.failed) - 1} other "
                f"unit(s) likewise; the rest of {root} is scored: rerun troop score {root} to retry them"
            )


def check_scorer(config: ScoreConfig) -> str:
    """The reward model checked before any engine starts (it exists, it is a reward model of
    `score.kind`); its scorer key."""
    if config.model is None:
        raise ConfigError("score.model is not set: name a reward model, e.g. score.model=/models/my-orm")
    check_model_path(config.model, "score.model")
    try:
        check_reward_model(config.model, config.kind, config.revision, config.label)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return scorer_key(config)


def unscored_units(store: RunStore, key: str, sample_units: set[str] | None = None) -> list[str]:
    """Sample units without a score file for `key`, in order."""
    if sample_units is None:
        sample_units = store.unit_ids(layout.SAMPLES)
    return sorted(sample_units - store.unit_ids(layout.scores(key)))


def score_run(store: RunStore, config: ScoreConfig, pool: UnitExecutor | None = None, shared_filesystem: bool = False,
              cluster: Cluster = RAY) -> ScoreSummary:
    """`troop score`: scores for every sample unit that has none under this scorer's key, on
    `pool` if given, else on scoring actors of its own from `cluster`."""
    key = check_scorer(config)
    sample_units = store.unit_ids(layout.SAMPLES)
    if not sample_units:
        raise StoreError(f"{store.root} has no samples/unit-*.parquet: generate first (troop generate)")
    if not store.exists(store.problems):  # the reward model reads each sample's prompt
        raise StoreError(f"{store.root} has no problems.parquet (problem_id, prompt): a reward model scores a completion "
                         "of its prompt; write the problems beside the samples")
    summary = ScoreSummary(key)
    todo = unscored_units(store, key, sample_units)
    if not todo:
        return summary
    store.remove_stale_temporaries(layout.scores(key))
    began = time.perf_counter()
    tasks = [ScoreTask(store, unit_id, key, config.aggregate) for unit_id in todo]
    if pool is not None:
        summary.failed.update(pool.run(tasks, summary.add).failed)
    else:
        cluster.connect(None, store.root, shared_filesystem)  # a local Ray, or the cluster RAY_ADDRESS names
        with cluster.scoring(config) as own:
            summary.failed.update(own.run(tasks, summary.add).failed)
    summary.seconds = time.perf_counter() - began
    return summary
