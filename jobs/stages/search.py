"""Searching one work unit: the unit processor of a `strategy.kind=beam|dvts` run.

A `SearchWorker` owns two engines in one actor: the policy (`model:`, vLLM's generate) and the
process reward model (`score:`, vLLM's pooling runner). A search alternates between them at
every step, so neither would keep a pool of its own busy; in one actor they share its GPU (or
CPU cores) and no text crosses the network. Memory is split between them: on a GPU, each
engine's `gpu_memory_utilization` (default 0.6 for the policy and 0.3 for the PRM when
neither `model.*` nor `score.*` sets a KV cache budget); on a CPU each takes its own
`kv_cache_memory_bytes` (2 GiB by default).

For a unit (all N trajectories of a block of problems) it runs the search
(`jobs.strategy.drive`) and writes, in this order, `search/unit-<id>.parquet` (the tree),
`scores/<scorer-key>/unit-<id>.parquet` (the final trajectories' step rewards, as `troop score`
would write them) and `samples/unit-<id>.parquet` last, the unit's completion marker: a killed
attempt leaves no sample file, and its rerun rewrites the other two identically.
"""

import os
import time
from dataclasses import dataclass, field, replace

import pyarrow as pa

from jobs.config import JobConfig
from jobs.problems.units import WorkUnit
from jobs.stages.generation import UnitStats, engine_spec, sampling_spec
from jobs.stages.scoring import SCORES_SCHEMA, reward_spec, scorer_key
from jobs.store.failures import record_failures
from jobs.store.root import RunStore
from jobs.store.runinfo import read_prompts
from jobs.strategy.drive import Spent, rendered_prompts, search_problems, separator_stops
from jobs.strategy.search import SearchSettings, SearchState, final_trajectories, tree_records
from workers.engine import Engine, EngineSpec
from workers.reward import RewardEngine, RewardSpec, aggregate
from workers.samples import SAMPLES_SCHEMA
from workers.sampling import SamplingSpec

# GPU memory shares when the config names no KV cache budget for either engine.
POLICY_GPU_SHARE, PRM_GPU_SHARE = 0.6, 0.3

TREE_SCHEMA = pa.schema([
    pa.field("problem_id", pa.string(), nullable=False),
    pa.field("step", pa.int32(), nullable=False),
    pa.field("node", pa.string(), nullable=False),
    pa.field("parent", pa.string(), nullable=False),
    pa.field("group", pa.int32(), nullable=False),
    pa.field("text", pa.string(), nullable=False),  # the step's own text
    pa.field("step_reward", pa.float64()),
    pa.field("score", pa.float64()),  # what it was ranked by (score.aggregate, lookahead included)
    pa.field("status", pa.string(), nullable=False),  # kept | pruned | duplicate | finished
    pa.field("finish_reason", pa.string()),
    pa.field("seed", pa.int64(), nullable=False),
    pa.field("num_tokens", pa.int32(), nullable=False),  # tokens of the step
    pa.field("sample_idx", pa.list_(pa.int32()), nullable=False),  # the samples it became
    # Compute (metrics' FLOPs): PRM input tokens read to score it (0 where an equal trajectory
    # of its problem was scored already), its lookahead rollout's generated tokens.
    pa.field("prm_tokens", pa.int32(), nullable=False),
    pa.field("lookahead_tokens", pa.int32(), nullable=False),
])


@dataclass(frozen=True)
class SearchEngines:
    """What a search actor holds: equal values may share actors (`Stage.identity`)."""

    policy: EngineSpec
    prm: RewardSpec
    in_placement_group: bool = field(default=False, compare=False)

    @property
    def model(self) -> str:
        return self.policy.model

    @property
    def tensor_parallel_size(self) -> int:
        return self.policy.tensor_parallel_size


def search_engines(config: JobConfig) -> SearchEngines:
    # The search tells the PRM where steps end at every call, so runs that differ only in
    # strategy.step_separator (a sweep over it) share actors.
    prm = replace(reward_spec(config.score), step_separator=SearchSettings.step_separator)
    return SearchEngines(engine_spec(config), prm)


def search_settings(config: JobConfig) -> SearchSettings:
    t = config.strategy
    return SearchSettings(kind=t.kind, width=t.width, beam=t.beam, max_steps=t.max_steps,
                          step_separator=t.step_separator, lookahead=t.lookahead, aggregate=config.score.aggregate,
                          filter_duplicates=t.filter_duplicates)


@dataclass(frozen=True)
class SearchTask:
    store: RunStore
    unit: WorkUnit
    sampling: SamplingSpec
    run_seed: int
    settings: SearchSettings
    scorer_key: str

    @property
    def unit_id(self) -> str:
        return self.unit.unit_id


def search_task(config: JobConfig, store: RunStore, unit: WorkUnit) -> SearchTask:
    return SearchTask(store, unit, sampling_spec(config), config.run.seed, search_settings(config), scorer_key(config.score))


@dataclass(frozen=True)
class SearchStats(UnitStats):
    nodes: int = 0  # children made (the tree's rows)
    steps: int = 0  # engine rounds
    prompt_tokens: int = 0
    prm_tokens: int = 0


def _gpu_shares(spec: SearchEngines, on_cpu: bool) -> tuple[EngineSpec, RewardSpec]:
    policy = replace(spec.policy, in_placement_group=spec.in_placement_group)
    prm = replace(spec.prm, in_placement_group=spec.in_placement_group)
    budgets = (policy.gpu_memory_utilization, policy.kv_cache_memory_bytes, prm.gpu_memory_utilization,
               prm.kv_cache_memory_bytes)
    if not on_cpu and all(b is None for b in budgets):  # vLLM's default (0.9) each would not fit twice
        policy = replace(policy, gpu_memory_utilization=POLICY_GPU_SHARE)
        prm = replace(prm, gpu_memory_utilization=PRM_GPU_SHARE)
    return policy, prm


class SearchWorker:
    """The policy and the PRM in one actor; searches whole units."""

    def __init__(self, spec: SearchEngines, engine_factory=Engine, reward_factory=RewardEngine):
        from vllm.platforms import current_platform

        policy, prm = _gpu_shares(spec, current_platform.is_cpu())
        self.policy = engine_factory(policy)
        try:
            self.prm = reward_factory(prm)
        except BaseException:
            self.policy.close()
            raise
        self._prompts: dict[str, dict] = {}  # run root -> {problem_id: prompt}

    def ready(self) -> int:
        return os.getpid()

    def close(self) -> None:
        self.policy.close()
        self.prm.close()

    def _prompts_of(self, store: RunStore) -> dict:
        if store.root not in self._prompts:  # one run at a time, several in turn
            self._prompts = {store.root: read_prompts(store)}
        return self._prompts[store.root]

    def separator_stops(self, prompts: dict, task: SearchTask) -> tuple[int, int]:
        """(children that ended at the separator, children) in the first step of `prompts`."""
        return separator_stops(self.policy, self.prm, prompts, task.settings, task.sampling, task.run_seed)

    def run_unit(self, task: SearchTask) -> SearchStats:
        began = time.perf_counter()
        unit, store = task.unit, task.store
        all_prompts = self._prompts_of(store)
        prompts = {pid: all_prompts[pid] for pid in unit.problem_ids}
        refused = too_long(self.policy, prompts)
        state, spent = search_problems(self.policy, self.prm, {p: v for p, v in prompts.items() if p not in refused},
                                       task.settings, task.sampling, task.run_seed)
        record_failures(store, unit.unit_id, [(pid, "prompt_too_long", why) for pid, why in refused.items()])
        tree = tree_table(state, spent)
        samples, scores = outputs_tables(state, spent, task.settings.aggregate)
        store.write_table(store.search_unit(unit.unit_id), tree, TREE_SCHEMA)
        kind = b"probability"  # a process model's rewards are probabilities
        store.write_table(store.score_unit(task.scorer_key, unit.unit_id), scores,
                          SCORES_SCHEMA.with_metadata({b"troop.reward": kind}))
        store.write_table(store.sample_unit(unit.unit_id), samples, SAMPLES_SCHEMA)
        return SearchStats(unit.unit_id, samples.num_rows, spent.generated_tokens, time.perf_counter() - began,
                           len(refused), tree.num_rows, state.step, spent.prompt_tokens, spent.prm_tokens)


def too_long(policy, prompts: dict) -> dict:
    """problem_id -> why, for prompts the policy cannot continue (as generation refuses them)."""
    tokenizer = policy.llm.get_tokenizer()
    limit = policy.spec.max_model_len
    refused = {}
    for pid, text in rendered_prompts(policy, prompts).items():
        length = len(tokenizer.encode(text))
        if length >= limit:
            refused[pid] = f"{length} prompt tokens, model.max_model_len is {limit}"
    return refused


def tree_table(state: SearchState, spent: Spent) -> pa.Table:
    rows = {name: [] for name in TREE_SCHEMA.names}
    charged: set = set()  # a trajectory made twice (a duplicate) was scored once
    texts = {(n.problem_id, n.path): n.text for p in state.problems for n in p.nodes}
    for record in tree_records(state):
        path = tuple(int(part) for part in record.node.split("."))
        trajectory = (record.problem_id, texts[(record.problem_id, path)])
        first = trajectory not in charged
        charged.add(trajectory)
        values = {**record.__dict__, "num_tokens": spent.tokens.get((record.problem_id, path), 0),
                  "sample_idx": list(record.sample_idx),
                  "prm_tokens": spent.prm_tokens_of.get(trajectory, 0) if first else 0,
                  "lookahead_tokens": spent.lookahead_tokens_of.get(trajectory, 0) if first else 0}
        for name in TREE_SCHEMA.names:
            rows[name].append(values[name])
    return pa.table(rows, schema=TREE_SCHEMA)


def outputs_tables(state: SearchState, spent: Spent, how: str) -> tuple[pa.Table, pa.Table]:
    """The samples (N final trajectories per problem) and their scores rows."""
    samples = {name: [] for name in SAMPLES_SCHEMA.names}
    scores = {name: [] for name in SCORES_SCHEMA.names}
    for final in final_trajectories(state):
        node, pid = final.node, final.problem_id
        samples["problem_id"].append(pid)
        samples["sample_idx"].append(final.sample_idx)
        samples["text"].append(node.text)
        samples["num_tokens"].append(spent.path_tokens(pid, node.path))
        samples["cumulative_logprob"].append(spent.path_logprob(pid, node.path))
        samples["finish_reason"].append(node.finish_reason)
        samples["seed"].append(node.seed)
        scored = spent.scored[(pid, node.text)]
        steps = list(scored.step_rewards) if scored.step_rewards is not None else None
        scores["problem_id"].append(pid)
        scores["sample_idx"].append(final.sample_idx)
        scores["reward"].append(aggregate(steps, how) if steps else scored.reward)
        scores["step_rewards"].append(steps)
        scores["detail"].append(scored.detail)
        scores["num_tokens"].append(scored.num_tokens)
    return pa.table(samples, schema=SAMPLES_SCHEMA), pa.table(scores, schema=SCORES_SCHEMA)
