"""The job config's schema: dataclasses are the schema, YAML and `key=value` overrides only set
values (`jobs.config.load`); domain code receives these, never a `DictConfig`."""

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING

from verifiers.registry import VerifySettings


@dataclass
class RunConfig:
    root: str = MISSING  # a local path or any fsspec URL (s3://bucket/prefix)
    seed: int = 0
    storage_options: dict[str, Any] = field(default_factory=dict)  # passed to fsspec
    # A local root on a cluster of several nodes is refused (each node would write to its own
    # disk) unless it is on a filesystem every node mounts (NFS, Lustre, ...): say so here.
    shared_filesystem: bool = False


@dataclass
class ModelConfig:
    path: str = MISSING  # a local directory or a Hugging Face Hub id
    revision: Optional[str] = None
    dtype: str = "auto"
    max_model_len: int = 4096
    tensor_parallel_size: int = 1
    # KV cache budget: kv_cache_memory_bytes if set, else gpu_memory_utilization if set, else
    # vLLM's default share of GPU memory; on a CPU (where vLLM would read the share as a share
    # of host RAM) a fixed 2 GiB.
    gpu_memory_utilization: Optional[float] = None
    kv_cache_memory_bytes: Optional[int] = None
    enforce_eager: bool = False
    enable_prefix_caching: bool = True
    # Passed to vllm.LLM as they are, for anything Troop does not name.
    engine_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class SamplingConfig:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0: off
    min_p: float = 0.0
    max_tokens: int = 256
    stop: list[str] = field(default_factory=list)
    ignore_eos: bool = False  # always generate max_tokens (benchmarks)


@dataclass
class ProblemsConfig:
    source: str = "jsonl"  # a name in jobs.problems.SOURCES
    path: Optional[str] = None  # for file sources: a local path or fsspec URL
    limit: Optional[int] = None  # keep the first N problems
    # Contract name -> column in the file, e.g. {problem_id: task_id, prompt: question}.
    # (A list of columns makes one list column of all their items, e.g. CodeContests'
    # test_cases: [public_tests, private_tests]; see jobs.problems.files.concatenated.)
    columns: dict[str, Any] = field(default_factory=dict)
    # Source-specific arguments, e.g. arithmetic's num_problems, seed, digits, ops.
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class PlanConfig:
    # A work unit holds about this many samples: min(n, samples_per_unit) sample indices of
    # as many problems as fit. Smaller units lose less on a crash; larger ones batch better.
    samples_per_unit: int = 2048


@dataclass
class ClusterConfig:
    # None: the cluster RAY_ADDRESS names (set inside a submitted job) or one started on this
    # machine with `ray start`, else a new local Ray; "auto" or ray://host:port: an existing one.
    address: Optional[str] = None
    # None: as many as fit node by node (a node with 8 GPUs holds 8 // tensor_parallel_size), or 1 on CPU
    num_workers: Optional[int] = None
    cpus_per_worker: float = 1.0  # CPUs each generation actor reserves (with tensor parallelism, per actor, not per GPU)
    # Custom Ray resources each generation actor reserves on its node (`ray start --resources`),
    # e.g. {"accelerator_type:H100": 0.001}; with tensor parallelism, once per actor.
    resources: dict[str, float] = field(default_factory=dict)
    # Node labels generation actors must land on (`ray start --labels`), as Ray label
    # selectors: {"ray.io/accelerator-type": "H100", "market": "!spot", "zone": "in(a,b)"}.
    label_selector: dict[str, str] = field(default_factory=dict)
    max_unit_retries: int = 2  # attempts after the first for a unit whose worker dies or errs
    # `troop submit` only: packages the job installs on the cluster where it lacks them
    # (runtime_env pip, e.g. ["vllm==0.11.0"]), and environment variables for the job.
    pip: list[str] = field(default_factory=list)
    env_vars: dict[str, str] = field(default_factory=dict)


@dataclass
class VerifyMathConfig:
    """math-verify's settings for `verify.verifier=math` (part of the verifier's key when changed)."""

    precision: int = VerifySettings.math_precision  # decimal places floats are rounded to before comparing
    strict: bool = VerifySettings.math_strict  # variables matter, a set is not a tuple; false: matched by position
    # What is extracted from a completion and a gold answer: latex, expr (plain expressions and
    # numbers), string (the letters A-D).
    targets: list[str] = field(default_factory=lambda: list(VerifySettings.math_targets))


@dataclass
class VerifyConfig:
    verifier: Optional[str] = "numeric"  # a name in verifiers.VERIFIERS; null: no verification
    workers: Optional[int] = None  # verification actors; None: the cluster's CPUs left free
    max_unit_retries: int = 2  # attempts after the first for a unit whose worker dies or errs
    # The defaults are the verifiers' own (verifiers.registry.VerifySettings):
    timeout_s: float = VerifySettings.timeout_s  # per sample: a program's wall clock, or one math check
    memory_mb: int = VerifySettings.memory_mb  # a sandboxed program's address space
    sandbox: str = VerifySettings.sandbox  # auto: bubblewrap, else rlimits only (warned); bwrap; rlimits
    # The patch verifier: the interpreter that runs a repository's tests (None: the worker's own;
    # a venv's python for a repository with its own dependencies), a folder of clones named
    # owner__name for problems given as repo + base_commit, runs of the gold patch per instance
    # (flaky tests, broken instances), and whether a candidate that edits the tests may pass.
    python: Optional[str] = VerifySettings.python
    repos: Optional[str] = VerifySettings.repos
    gold_runs: int = VerifySettings.gold_runs
    allow_test_edits: bool = VerifySettings.allow_test_edits
    # The answer verifiers (numeric, exact, math): where a completion's final answer is:
    # last_number, hash_answer (GSM8K's "#### 72"), boxed (the last \boxed{}), answer_is
    # ("The answer is ..."); None: each verifier's own search (verifiers.extract).
    extract: Optional[str] = VerifySettings.extract
    math: VerifyMathConfig = field(default_factory=VerifyMathConfig)
    # Where the verification actors run (they never take a GPU): custom Ray resources each
    # actor reserves, and node labels they must land on (Ray label selectors, as cluster.*).
    # Not verifier settings: they leave the verdicts' verifier key unchanged.
    resources: dict[str, float] = field(default_factory=dict)
    label_selector: dict[str, str] = field(default_factory=dict)


@dataclass
class ScoreConfig:
    """A reward model that scores every sample (`troop score`, or `troop run` with `score.model`)."""

    model: Optional[str] = None  # a local folder or Hub id of the reward model; None: no scoring
    revision: Optional[str] = None
    kind: str = "outcome"  # outcome: a sequence classifier scores the whole answer; process: every step
    label: Optional[str] = None  # outcome models with >= 2 labels: whose probability is the reward (default: the last)
    aggregate: str = "last"  # process models: the reward from the step rewards (last, min, prod, mean)
    step_separator: str = "\n\n"  # process models: where a completion splits into steps
    step_token: str = "<extra_0>"  # process models: the token the model reads after each step (Qwen2.5-Math-PRM's)
    system: Optional[str] = None  # a system message in the reward model's chat
    dtype: str = "auto"
    max_model_len: int = 4096  # a prompt + completion longer than this gets reward null, with the reason
    tensor_parallel_size: int = 1
    gpu_memory_utilization: Optional[float] = None
    kv_cache_memory_bytes: Optional[int] = None
    enforce_eager: bool = False
    engine_kwargs: dict[str, Any] = field(default_factory=dict)
    # Where the scoring actors run, as cluster.* for generation.
    workers: Optional[int] = None  # None: as many as the cluster holds (one on a CPU machine)
    cpus_per_worker: float = 1.0
    resources: dict[str, float] = field(default_factory=dict)
    label_selector: dict[str, str] = field(default_factory=dict)
    max_unit_retries: int = 2  # attempts after the first for a unit whose worker dies or errs
    # troop run: `after_generation` starts the scoring actors once the generation engines are shut
    # down (units wait in the queue meanwhile): on one machine the two engines would compete for
    # the same GPU memory and cores. `with_generation` starts them at once, for clusters with
    # room for both.
    start: str = "after_generation"


@dataclass
class AllocateConfig:
    """How many samples each problem gets (jobs.allocate): uniform, or adaptive from the verdicts."""

    policy: str = "uniform"  # uniform | until_solved | coverage | confidence
    budget: Optional[int] = None  # samples over all problems; None: sampling.n x problems (sampling.n stays the cap)
    first: Optional[int] = None  # samples per problem in round 1; None: min(8, sampling.n)
    step: Optional[int] = None  # samples per problem in each later round; None: first
    confidence: float = 0.95  # confidence: stop once the leading answer beats the runner-up with this probability
    min_gain: float = 1e-4  # coverage: stop a problem whose next samples are expected to solve it less often per sample


@dataclass
class StrategyConfig:
    """How a sample is made (jobs.strategy): independent samples, or step-level search guided by
    the process reward model of `score:` (jobs/stages/search.py)."""

    kind: str = "sample"  # sample: independent samples (sampling.n per problem); beam; dvts
    width: Optional[int] = None  # N, final trajectories per problem (a search's sampling.n); None: sampling.n
    beam: int = 4  # M: beam keeps the top M trajectories per step; dvts runs N/M subtrees of M children
    max_steps: int = 40  # the step that ends every trajectory still open
    step_separator: Optional[str] = None  # where a step ends; None: score.step_separator ("\n\n"), the PRM's
    lookahead: int = 0  # greedy steps rolled out past each child to rank it (not kept)
    filter_duplicates: bool = True  # a child whose whole text repeats an earlier one is dropped


@dataclass
class MetricsConfig:
    score: Optional[str] = None  # best-of-k and weighted vote; None: mean token log-prob (cumulative_logprob / num_tokens)
    ks: Optional[list[int]] = None  # None: 1, 2, 4, ... up to the smallest n
    draws: Optional[int] = None  # Monte Carlo subsets per problem where a vote is not exact; None: ~1e6 in all
    seed: int = 0  # of the Monte Carlo draws and the bootstrap
    model_params: Optional[int] = None  # for FLOPs; None: counted from model.path's safetensors when readable


@dataclass
class PromptConfig:
    """What the model is given for each problem (jobs.problems.prompts); all unset: the problem's
    `prompt` column as it is."""

    template: Optional[str] = None  # Jinja2 over the problem's columns, e.g. "Question: {{ question }}\nAnswer:"
    system: Optional[str] = None  # a system message (plain text: its own paragraph first)
    chat: str = "auto"  # auto: chat messages when the model has a chat template and system or few_shot is set; true; false
    few_shot: Optional[str] = None  # worked examples: a .jsonl/.parquet file or a dataset (as problems.source=hf)
    few_shot_options: dict[str, Any] = field(default_factory=dict)  # a dataset's split, name, revision, data_files
    few_shot_completion: str = "completion"  # the examples' column with the worked answer
    shots: Optional[int] = None  # the first N examples; None: all
    prefill: Optional[str] = None  # text the model's answer starts with (e.g. "<think>\n")


@dataclass
class JobConfig:
    run: RunConfig = field(default_factory=RunConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    problems: ProblemsConfig = field(default_factory=ProblemsConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    plan: PlanConfig = field(default_factory=PlanConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    allocate: AllocateConfig = field(default_factory=AllocateConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)


@dataclass
class RootConfig:
    """The settings of commands that work on an existing run root (verify, metrics, status)."""

    run: RunConfig = field(default_factory=RunConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
