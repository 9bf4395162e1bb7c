"""The runs a report draws: each root's metrics.json, per-problem pass rates and legend label.

A root's `metrics/problems.parquet` and `job.yaml` are optional (a foreign pool may lack them).
Labels come from the config keys whose values differ between the roots' job.yaml files. The
curve readers below take any metrics.json section, since every curve in it may be missing or null.
"""

import json
import posixpath
from dataclasses import dataclass

import numpy as np
from omegaconf import OmegaConf

from jobs.errors import StoreError
from jobs.store.root import RunStore

# Never put into labels: the root is what labels replace, and storage options may hold credentials.
IGNORED_KEYS = ("run.root", "run.storage_options")
MAX_VALUE_CHARS = 24


@dataclass
class Run:
    """One root as the report sees it."""

    store: RunStore
    label: str
    metrics: dict
    pass_rates: np.ndarray | None  # per-problem pass rates, None without metrics/problems.parquet


# Loading.


def load_metrics(store: RunStore) -> dict:
    """The root's metrics.json; a root without one is a user mistake with a known fix."""
    if not store.exists(store.metrics_json):
        raise StoreError(f"{store.root} has no metrics.json: run troop metrics {store.root} first")
    return json.loads(store.read_text(store.metrics_json))


def _read_optional(store: RunStore, path: str) -> str | None:
    return store.read_text(path) if store.exists(path) else None


def _pass_rates(store: RunStore) -> np.ndarray | None:
    path = store.path("metrics", "problems.parquet")
    if not store.exists(path):
        return None
    column = store.read_table(path, ["pass_rate"])["pass_rate"]
    return column.to_numpy(zero_copy_only=False).astype(np.float64)


def root_names(roots: list[str]) -> list[str]:
    """The shortest path suffixes that tell the roots apart: "run" for one, "a/run", "b/run"
    for two roots that both end in "run"."""
    parts = [root.rstrip("/").split("/") for root in roots]
    for depth in range(1, max(len(p) for p in parts) + 1):
        names = ["/".join(p[-depth:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return list(roots)


def load_runs(roots: list[RunStore], labels: list[str] | None = None) -> list[Run]:
    """Every root's metrics (failing fast on the first without), with its legend label."""
    metrics = [load_metrics(store) for store in roots]
    if labels is None:
        fallback = root_names([store.root for store in roots])
        # One root has nothing to compare its config with: no need to read it.
        yamls = [_read_optional(store, store.job_yaml) for store in roots] if len(roots) > 1 else []
        labels = config_labels(yamls, fallback)
    if len(labels) != len(roots):
        raise ValueError(f"{len(labels)} labels for {len(roots)} roots")
    return [Run(s, lab, m, _pass_rates(s)) for s, lab, m in zip(roots, labels, metrics)]


# Labels from config differences.


def flatten(tree, prefix: str = "") -> dict:
    """A nested dict as {dotted.key: leaf}; lists and empty dicts are leaves."""
    if not isinstance(tree, dict) or not tree:
        return {prefix: tree} if prefix else {}
    flat = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _parse_yaml(text: str) -> dict:
    # resolve=False: a label needs the written value, and a dangling ${...} must not fail a report.
    return flatten(OmegaConf.to_container(OmegaConf.create(text), resolve=False))


def _short(value) -> str:
    """A config value as a legend shows it: YAML spelling, paths by basename, long values cut."""
    if isinstance(value, bool) or value is None:
        text = json.dumps(value)
    else:
        text = str(value)
    if "/" in text.rstrip("/"):
        text = posixpath.basename(text.rstrip("/"))
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _ignored(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in IGNORED_KEYS)


def config_labels(yaml_texts: list[str | None], fallback: list[str]) -> list[str]:
    """One label per run: "key=value, ..." over the config keys whose values differ between the
    runs; `fallback` when a config is missing, nothing differs, or labels would not be unique."""
    if len(yaml_texts) < 2 or any(text is None for text in yaml_texts):
        return list(fallback)
    configs = [_parse_yaml(text) for text in yaml_texts]
    keys = sorted({key for config in configs for key in config if not _ignored(key)})
    missing = object()  # a key only some runs have differs too: those without show "unset"
    differ = [k for k in keys if len({repr(c.get(k, missing)) for c in configs}) > 1]
    labels = [", ".join(f"{k}={_short(c[k]) if k in c else 'unset'}" for k in differ) for c in configs]
    if not differ or len(set(labels)) < len(labels):
        return list(fallback)
    return labels


# Reading curves out of metrics.json (any of them may be missing or null).


def curve(metrics: dict, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(ks, values) of one {k: value} curve, sorted by k; empty when absent."""
    points = sorted((int(k), float(v)) for k, v in (metrics.get(name) or {}).items() if v is not None)
    return np.array([k for k, _ in points]), np.array([v for _, v in points])


def interval(metrics: dict, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ks, low, high) of a curve's 95% interval; empty when absent."""
    entries = ((metrics.get("ci") or {}).get(name) or {}).items()
    points = sorted((int(k), float(v[0]), float(v[1])) for k, v in entries if v is not None and None not in v)
    return tuple(np.array([p[i] for p in points]) for i in range(3))


def tokens_per_sample(metrics: dict) -> float | None:
    cost = metrics.get("cost") or {}
    if cost.get("tokens_per_sample"):
        return float(cost["tokens_per_sample"])
    counts = metrics.get("counts") or {}
    return counts["tokens"] / counts["samples"] if counts.get("tokens") and counts.get("samples") else None


def has_fit(metrics: dict) -> bool:
    fit = metrics.get("fit") or {}
    return fit.get("a") is not None and fit.get("b") is not None
