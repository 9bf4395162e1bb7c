"""Integration fixtures: one local Ray and one vLLM engine on the CPU for the whole session
(an engine takes about 20 s to start here; never start one per test)."""

import pytest

from jobs.config import JobConfig, merge_config
from jobs.cluster.pools import generation_pool
from workers.engine import EngineSpec

# vLLM's own test runner uses a small max_model_len and enforce_eager=True.
ENGINE_KEYS = ["model.dtype=float32", "model.max_model_len=256", "model.enforce_eager=true"]


def pytest_collection_modifyitems(items):
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def ray_session():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def pool(ray_session, tiny_model):
    spec = EngineSpec(model=tiny_model, dtype="float32", max_model_len=256, enforce_eager=True)
    with generation_pool(spec, num_workers=1) as shared:
        yield shared


@pytest.fixture
def make_config(tmp_path, tiny_model):
    """A JobConfig for the shared engine: arithmetic problems (unless the overrides name another
    problems.source), a fresh root per name."""

    def make(name: str = "run", *overrides: str) -> JobConfig:
        own_source = any(o.startswith("problems.source=") for o in overrides)
        arithmetic = [] if own_source else ["problems.source=arithmetic", "problems.options.num_problems=12"]
        return merge_config(
            None,
            [
                f"run.root={tmp_path / name}",
                f"model.path={tiny_model}",
                *ENGINE_KEYS,
                *arithmetic,
                "sampling.max_tokens=12",
                "sampling.n=8",
                "plan.samples_per_unit=32",
                *overrides,
            ],
        )

    return make
