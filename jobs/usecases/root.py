"""An existing run root and its settings, for the commands that work on one (verify, score,
metrics, status): its job.yaml where there is one (`jobs.store.runinfo.read_job`), then the
caller's overrides."""

from typing import Sequence

from jobs.config import RootConfig, merge_root_config
from jobs.errors import TroopError
from jobs.store.root import RunStore
from jobs.store.runinfo import read_job


def load_root(root: str, overrides: Sequence[str] = ()) -> tuple[RootConfig, RunStore]:
    # The overrides may name how to reach the root (run.storage_options), so they come first.
    probe = merge_root_config(root, None, list(overrides))
    job = read_job(RunStore(root, dict(probe.run.storage_options)))
    config = merge_root_config(root, job, list(overrides))
    return config, RunStore(root, dict(config.run.storage_options))


def verifier_name(name: str | None) -> str:
    """The verifier a root command works with; a root whose config names none needs one named."""
    if name is None:
        raise TroopError("verify.verifier is null for this root: name a verifier, e.g. verify.verifier=numeric")
    return name
