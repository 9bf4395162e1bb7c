"""`troop metrics`: metrics.json and metrics/*.parquet of a verified root (`jobs.metrics`)."""

from dataclasses import dataclass
from typing import Sequence

from jobs.config import MetricsConfig
from jobs.metrics.measure import measure_run, model_parameters, write_metrics
from jobs.store.root import RunStore
from jobs.store.runinfo import read_job
from jobs.usecases.root import load_root, verifier_name
from jobs.usecases.verify import stored_verifier_key


@dataclass
class MetricsResult:
    metrics: dict  # what metrics.json holds
    where: str  # metrics.json's URL


def measure(store: RunStore, verifier_key: str, settings: MetricsConfig, model_path: str | None = None) -> MetricsResult:
    """Metrics of the verdicts under `verifier_key`, written to the root."""
    params = None if settings.model_params else model_parameters(model_path)
    metrics, problems, curves = measure_run(store, verifier_key, settings, params)
    write_metrics(store, metrics, problems, curves)
    return MetricsResult(metrics, store.url(store.metrics_json))


def metrics(root: str, overrides: Sequence[str] = ()) -> MetricsResult:
    """`troop metrics ROOT [key=value ...]`."""
    config, store = load_root(root, overrides)
    key = stored_verifier_key(store, verifier_name(config.verify.verifier), config.verify)
    job = read_job(store) or {}
    return measure(store, key, config.metrics, (job.get("model") or {}).get("path"))
