"""The stages' executors as a config asks for them, and the seam use cases take them through.

Generation: one vLLM engine per actor, on GPUs where there are some (`jobs.cluster.placement`).
Scoring: one reward-model engine (vLLM's pooling runner) per actor, placed the same way.
Verification: one warm checker per actor, on the CPUs the generation actors left free, never
a GPU. All are `UnitExecutor`s; only the processor and the placement differ.
"""

import os
from dataclasses import dataclass, replace
from typing import Callable

from jobs.cluster.executor import Stage, UnitExecutor
from jobs.cluster.placement import PlacementSettings, generation_placement, verify_placement
from jobs.cluster.session import cluster_nodes, free_nodes, init_ray
from jobs.config import JobConfig, ScoreConfig, VerifyConfig, is_search
from jobs.stages.generation import GenerationWorker, engine_spec
from jobs.stages.scoring import ScoreWorker, reward_spec
from jobs.stages.search import SearchEngines, SearchWorker, search_engines
from jobs.stages.verification import VerifyWorker
from workers.engine import EngineSpec
from workers.reward import RewardSpec

# An engine's shutdown stops its processes and frees their shared memory: seconds, unless it
# hangs, and then the actor is killed anyway.
ENGINE_CLOSE_TIMEOUT_S = 60
# A checker stops its sandbox zygote and math helper: well under a second.
CHECKER_CLOSE_TIMEOUT_S = 10


def _engine_stage(name: str, spec, num_workers: int | None, cpus_per_worker: float, max_unit_retries: int,
                  worker_class, placement: PlacementSettings, start_error: str) -> UnitExecutor:
    """Actors that each own one vLLM engine built from `spec` (generation's or a reward model's):
    one GPU each, or a placement group per actor with tensor parallelism; one on a CPU machine."""
    placed = generation_placement(cluster_nodes(), spec.tensor_parallel_size, cpus_per_worker, num_workers, placement)
    # The engine is told it owns a placement group, so it runs its ranks in the group's GPUs.
    actor_spec = replace(spec, in_placement_group=placed.uses_placement_groups)
    # vLLM logs every engine step at INFO; a user who wants them sets VLLM_LOGGING_LEVEL.
    env = {"VLLM_LOGGING_LEVEL": os.environ.get("VLLM_LOGGING_LEVEL", "WARNING")}
    return UnitExecutor(Stage(
        name, worker_class, (actor_spec,), placed, identity=spec, max_unit_retries=max_unit_retries,
        units_in_flight=2, env_vars=env, close_timeout_s=ENGINE_CLOSE_TIMEOUT_S,
        what_failed_to_start=start_error, serves=f" for {spec.model}",
    ))


def generation_pool(spec: EngineSpec, num_workers: int | None = None, cpus_per_worker: float = 1.0,
                    max_unit_retries: int = 2, worker_class=GenerationWorker,
                    placement: PlacementSettings = PlacementSettings()) -> UnitExecutor:
    """`num_workers` actors (None: as many as the cluster holds), each owning one engine built
    from `spec`; `placement` adds custom resources and node labels."""
    return _engine_stage("generation", spec, num_workers, cpus_per_worker, max_unit_retries, worker_class, placement,
                         f"model.path={spec.model}: the vLLM engine")


def verification_pool(workers: int | None = None, max_unit_retries: int = 2, worker_class=VerifyWorker,
                      placement: PlacementSettings = PlacementSettings()) -> UnitExecutor:
    """`workers` actors (None: one per CPU the generation actors left free)."""
    placed = verify_placement(free_nodes(), workers, placement)
    return UnitExecutor(Stage(
        "verification", worker_class, (), placed, max_unit_retries=max_unit_retries,
        close_timeout_s=CHECKER_CLOSE_TIMEOUT_S, what_failed_to_start="a verification worker",
    ))


def scoring_pool(spec: RewardSpec, num_workers: int | None = None, cpus_per_worker: float = 1.0,
                 max_unit_retries: int = 2, worker_class=ScoreWorker,
                 placement: PlacementSettings = PlacementSettings()) -> UnitExecutor:
    """Reward-model actors, placed like generation's."""
    return _engine_stage("scoring", spec, num_workers, cpus_per_worker, max_unit_retries, worker_class, placement,
                         f"score.model={spec.model}: the reward model's engine")


def search_pool(spec: SearchEngines, num_workers: int | None = None, cpus_per_worker: float = 1.0,
                max_unit_retries: int = 2, worker_class=SearchWorker,
                placement: PlacementSettings = PlacementSettings()) -> UnitExecutor:
    """Actors that each own the policy and the PRM of a step-level search, placed like
    generation's (the PRM shares the policy's GPUs: jobs.stages.search)."""
    return _engine_stage("search", spec, num_workers, cpus_per_worker, max_unit_retries, worker_class, placement,
                         f"model.path={spec.policy.model} with score.model={spec.prm.model}: the search's engines")


def start_generation(config: JobConfig) -> UnitExecutor:
    """The actors that make the samples: vLLM engines, or a search's policy and PRM."""
    c = config.cluster
    placement = PlacementSettings(dict(c.resources), dict(c.label_selector))
    if is_search(config):
        return search_pool(search_engines(config), c.num_workers, c.cpus_per_worker, c.max_unit_retries, placement=placement)
    return generation_pool(engine_spec(config), c.num_workers, c.cpus_per_worker, c.max_unit_retries, placement=placement)


def start_scoring(config: ScoreConfig) -> UnitExecutor:
    return scoring_pool(reward_spec(config), config.workers, config.cpus_per_worker, config.max_unit_retries,
                        placement=PlacementSettings(dict(config.resources), dict(config.label_selector)))


def start_verification(config: VerifyConfig) -> UnitExecutor:
    return verification_pool(config.workers, config.max_unit_retries,
                             placement=PlacementSettings(dict(config.resources), dict(config.label_selector)))


@dataclass(frozen=True)
class Cluster:
    """Where the use cases get their Ray session and executors. The default is the real
    cluster; a test passes its own (an in-process verifier, a scripted pool) as an argument."""

    connect: Callable[..., None] = init_ray  # (address, root, shared_filesystem)
    generation: Callable[[JobConfig], UnitExecutor] = start_generation
    verification: Callable[[VerifyConfig], UnitExecutor] = start_verification
    scoring: Callable[[ScoreConfig], UnitExecutor] = start_scoring


RAY = Cluster()
