"""`troop metrics`: metrics.json and metrics/*.parquet of a verified root (`jobs.metrics`), with
the selection comparison by reward where a reward model scored the pool."""

import logging
from dataclasses import dataclass
from typing import Sequence

from jobs.config import MetricsConfig, ScoreConfig
from jobs.errors import ConfigError, StoreError
from jobs.metrics.measure import measure_run, model_parameters, write_metrics
from jobs.stages.scoring import scorer_key
from jobs.store import layout
from jobs.store.root import RunStore
from jobs.store.runinfo import read_job
from jobs.usecases.allocation import allocation_metrics
from jobs.usecases.root import load_root, verifier_name
from jobs.usecases.search_metrics import search_metrics
from jobs.usecases.verify import stored_verifier_key

log = logging.getLogger("troop")


@dataclass
class MetricsResult:
    metrics: dict  # what metrics.json holds
    where: str  # metrics.json's URL


def measure(store: RunStore, verifier_key: str, settings: MetricsConfig, model_path: str | None = None,
            scores: str | None = None, prm_path: str | None = None) -> MetricsResult:
    """Metrics of the verdicts under `verifier_key` (and the rewards under the scorer key
    `scores`, if given), written to the root. `prm_path`: the reward model's folder, for the
    FLOPs of the `search` section (default: job.yaml's score.model)."""
    params = None if settings.model_params else model_parameters(model_path)
    metrics, problems, curves = measure_run(store, verifier_key, settings, params, scorer_key=scores)
    job = read_job(store)
    metrics["allocation"] = allocation_metrics(store, job, verifier_key, metrics["counts"]["tokens"], scores)
    metrics["search"] = search_metrics(store, job, verifier_key, scores, metrics, problems, prm_path)
    write_metrics(store, metrics, problems, curves)
    return MetricsResult(metrics, store.url(store.metrics_json))


def stored_scorer_key(store: RunStore, score: ScoreConfig, metrics: MetricsConfig) -> str | None:
    """The scores to select by: those of `score.model` if named, else the root's only scorer;
    None where there are none (metrics.score=reward then looks for a `reward` column of the
    pool's own, and says to run troop score where there is none), or several, none named and
    metrics.score not `reward`."""
    keys = [k for k in store.keys_under(layout.SCORES) if store.unit_ids(layout.scores(k))]
    needed = metrics.score == "reward"
    if score.model is not None:
        key = scorer_key(score)
        if key in keys:
            return key
        raise StoreError(f"{store.root} has no scores by score.model={score.model} ({key}; it has: {', '.join(keys) or 'none'}): "
                         f"run troop score {store.root} score.model={score.model}")
    if len(keys) == 1:
        return keys[0]
    if keys and needed:
        raise ConfigError(f"metrics.score=reward: {store.root} has scores by several reward models ({', '.join(keys)}): "
                          "name one with score.model=PATH")
    if keys:
        log.warning("%s has scores by several reward models (%s): name one with score.model=PATH to compare selection by reward",
                    store.root, ", ".join(keys))
    return None


def metrics(root: str, overrides: Sequence[str] = ()) -> MetricsResult:
    """`troop metrics ROOT [key=value ...]`."""
    config, store = load_root(root, overrides)
    key = stored_verifier_key(store, verifier_name(config.verify.verifier), config.verify)
    scores = stored_scorer_key(store, config.score, config.metrics)
    job = read_job(store) or {}
    return measure(store, key, config.metrics, (job.get("model") or {}).get("path"), scores, config.score.model)
