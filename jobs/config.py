"""The job config: dataclasses are the schema, YAML and `key=value` overrides only set values.

`load_config` merges `OmegaConf.structured(JobConfig)` with a YAML file and command-line
overrides, turns every OmegaConf complaint into a one-line `ConfigError` that names the key
(and the nearest valid key for a typo), checks combinations that cannot work, and returns a
plain `JobConfig`: domain code never sees a `DictConfig`.
"""

import difflib
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Callable, Optional

import yaml
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException

from jobs.errors import ConfigError
from jobs.ray_syntax import label_selector_error, resources_error
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
    columns: dict[str, str] = field(default_factory=dict)
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
class VerifyConfig:
    verifier: Optional[str] = "numeric"  # a name in verifiers.VERIFIERS; null: no verification
    workers: Optional[int] = None  # verification actors; None: the cluster's CPUs left free
    max_unit_retries: int = 2  # attempts after the first for a unit whose worker dies or errs
    # The defaults are the verifiers' own (verifiers.registry.VerifySettings):
    timeout_s: float = VerifySettings.timeout_s  # per sample: a program's wall clock, or one math check
    memory_mb: int = VerifySettings.memory_mb  # a sandboxed program's address space
    sandbox: str = VerifySettings.sandbox  # auto: bubblewrap, else rlimits only (warned); bwrap; rlimits
    # Where the verification actors run (they never take a GPU): custom Ray resources each
    # actor reserves, and node labels they must land on (Ray label selectors, as cluster.*).
    # Not verifier settings: they leave the verdicts' verifier key unchanged.
    resources: dict[str, float] = field(default_factory=dict)
    label_selector: dict[str, str] = field(default_factory=dict)


@dataclass
class MetricsConfig:
    score: Optional[str] = None  # best-of-k and weighted vote; None: mean token log-prob (cumulative_logprob / num_tokens)
    ks: Optional[list[int]] = None  # None: 1, 2, 4, ... up to the smallest n
    draws: Optional[int] = None  # Monte Carlo subsets per problem where a vote is not exact; None: ~1e6 in all
    seed: int = 0  # of the Monte Carlo draws and the bootstrap
    model_params: Optional[int] = None  # for FLOPs; None: counted from model.path's safetensors when readable


@dataclass
class JobConfig:
    run: RunConfig = field(default_factory=RunConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    problems: ProblemsConfig = field(default_factory=ProblemsConfig)
    plan: PlanConfig = field(default_factory=PlanConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)


def valid_keys(schema: type = JobConfig, prefix: str = "") -> list[str]:
    """Every dotted key of the schema, sections included (`sampling`, `sampling.n`, ...)."""
    keys = []
    for f in fields(schema):
        key = f"{prefix}{f.name}"
        keys.append(key)
        if is_dataclass(f.type):
            keys.extend(valid_keys(f.type, key + "."))
    return keys


def _nearest_key(key: str, schema: type = JobConfig) -> str:
    match = difflib.get_close_matches(key, valid_keys(schema), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _one_line(err: OmegaConfBaseException, source: str, schema: type = JobConfig) -> ConfigError:
    key = getattr(err, "full_key", None) or "?"
    if isinstance(err, MissingMandatoryValue):
        return ConfigError(f"config key '{key}' is not set: add {key}=VALUE")
    if isinstance(err, ConfigKeyError):
        if source.startswith("override '"):  # OmegaConf names only the first unknown part
            key = source[len("override '") :].split("=")[0]
        return ConfigError(f"unknown config key '{key}' in {source}{_nearest_key(key, schema)}")
    detail = _first_line(err)
    value = getattr(err, "value", None)
    if value is not None:
        detail = f"{value!r} is not a valid value ({detail})"
    return ConfigError(f"config key '{key}' in {source}: {detail}")


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _parse_sections(load: Callable[[], Any], what: str, fix: str):
    """`load()` as a mapping of config sections, or a ConfigError naming `what` and the fix."""
    try:
        loaded = load()
    except (FileNotFoundError, OSError, UnicodeDecodeError):
        raise
    except Exception as err:  # yaml.YAMLError and OmegaConf's wrappers of it
        raise ConfigError(f"{what} is not valid YAML ({_first_line(err)}): {fix}") from None
    if not OmegaConf.is_dict(loaded):
        raise ConfigError(f"{what} must hold a mapping of sections (run:, model:, ...): {fix}")
    return loaded


def read_config_file(path: str):
    """A config file's sections as loaded (a `sweep:` section included), or a one-line ConfigError."""
    try:
        return _parse_sections(lambda: OmegaConf.load(path), f"config file {path}", "fix the file")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist: give the path of a YAML file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {path} cannot be read ({err}): check the path") from None


def _merge(schema: type, layers: list) -> Any:
    """`schema` <- each (source name, DictConfig) layer, as a plain dataclass instance."""
    merged = OmegaConf.structured(schema)
    source = "the schema"
    try:
        for source, layer in layers:
            merged = OmegaConf.merge(merged, layer)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise _one_line(err, source, schema) from None


def config_layers(overrides: list[str]) -> list:
    """`key=value` overrides as (source name, DictConfig) layers for `merge_layers`."""
    layers = []
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise ConfigError(f"override '{item}' is not key=value: write e.g. sampling.n=64")
        try:
            layers.append((f"override '{item}'", OmegaConf.from_dotlist([item])))
        except OmegaConfBaseException as err:
            raise ConfigError(f"override '{item}' cannot be parsed ({str(err).splitlines()[0]})") from None
        except yaml.YAMLError as err:  # a value is read as YAML, where a leading ! is a tag
            raise ConfigError(f"override '{item}' is not valid YAML ({_first_line(err)}): quote the value, e.g. key='\"!x\"'") from None
    return layers


def merge_layers(layers: list) -> JobConfig:
    """Schema <- each (source name, DictConfig) layer, as a validated `JobConfig`."""
    config = _merge(JobConfig, layers)
    check_config(config)
    return config


def merge_config(path: Optional[str], overrides: list[str] = ()) -> JobConfig:
    """Schema <- YAML file <- `key=value` overrides, as a validated `JobConfig`."""
    layers = [(path, read_config_file(path))] if path is not None else []
    return merge_layers(layers + config_layers(list(overrides)))


@dataclass
class RootConfig:
    """The settings of commands that work on an existing run root (verify, metrics, status)."""

    run: RunConfig = field(default_factory=RunConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)


def merge_root_config(root: str, job: Optional[dict], overrides: list[str] = ()) -> RootConfig:
    """Schema <- the root's job.yaml (its run, verify and metrics sections, as
    `jobs.store.runinfo.read_job` gives them) <- overrides <- run.root."""
    layers = []
    if job is not None:
        sections = {f.name: job[f.name] for f in fields(RootConfig) if f.name in job}
        layers.append(("job.yaml", OmegaConf.create(sections)))
    layers += config_layers(list(overrides))
    layers.append(("the ROOT argument", OmegaConf.create({"run": {"root": root}})))
    config = _merge(RootConfig, layers)
    check_verify_config(config.verify)
    check_metrics_config(config.metrics)
    return config


SANDBOX_MODES = ("auto", "bwrap", "rlimits")


def verify_settings(config: VerifyConfig) -> VerifySettings:
    """What the verifiers take of a verify section (the rest says where they run)."""
    return VerifySettings(timeout_s=config.timeout_s, memory_mb=config.memory_mb, sandbox=config.sandbox)


def check_verify_config(v: VerifyConfig) -> None:
    if v.workers is not None and v.workers < 1:
        raise ConfigError(f"config key 'verify.workers' is {v.workers}: it must be at least 1")
    if v.max_unit_retries < 0:
        raise ConfigError(f"config key 'verify.max_unit_retries' is {v.max_unit_retries}: it must be >= 0")
    if v.timeout_s <= 0:
        raise ConfigError(f"config key 'verify.timeout_s' is {v.timeout_s}: it must be > 0")
    if v.memory_mb < 64:
        raise ConfigError(f"config key 'verify.memory_mb' is {v.memory_mb}: it must be at least 64")
    if v.sandbox not in SANDBOX_MODES:
        raise ConfigError(f"config key 'verify.sandbox' is {v.sandbox!r}: use one of {', '.join(SANDBOX_MODES)}")
    check_placement_keys("verify", v.resources, v.label_selector)


def check_placement_keys(section: str, resources: dict, label_selector: dict) -> None:
    """`<section>.resources` and `<section>.label_selector` as Ray will take them."""
    problem = resources_error(resources, f"{section}.resources") or label_selector_error(label_selector, f"{section}.label_selector")
    if problem:
        raise ConfigError(problem)


def check_metrics_config(m: MetricsConfig) -> None:
    if m.ks is not None and (not m.ks or min(m.ks) < 1):
        raise ConfigError(f"config key 'metrics.ks' is {list(m.ks)}: give sample counts >= 1, e.g. metrics.ks=[1,10,100]")
    if m.draws is not None and m.draws < 2:
        raise ConfigError(f"config key 'metrics.draws' is {m.draws}: it must be at least 2 (a standard error needs two)")
    if m.model_params is not None and m.model_params < 1:
        raise ConfigError(f"config key 'metrics.model_params' is {m.model_params}: it must be at least 1")


def check_config(config: JobConfig) -> None:
    """Values and combinations the schema's types cannot express."""
    s, m, p = config.sampling, config.model, config.problems
    positive = {
        "sampling.n": s.n,
        "sampling.max_tokens": s.max_tokens,
        "model.max_model_len": m.max_model_len,
        "model.tensor_parallel_size": m.tensor_parallel_size,
        "plan.samples_per_unit": config.plan.samples_per_unit,
    }
    if p.limit is not None:
        positive["problems.limit"] = p.limit
    if config.cluster.max_unit_retries < 0:
        raise ConfigError(f"config key 'cluster.max_unit_retries' is {config.cluster.max_unit_retries}: it must be >= 0")
    if config.cluster.num_workers is not None:
        positive["cluster.num_workers"] = config.cluster.num_workers
    if config.cluster.cpus_per_worker <= 0:
        raise ConfigError(f"config key 'cluster.cpus_per_worker' is {config.cluster.cpus_per_worker}: it must be > 0")
    check_placement_keys("cluster", config.cluster.resources, config.cluster.label_selector)
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"config key '{key}' is {value}: it must be at least 1")
    if s.temperature < 0:
        raise ConfigError(f"config key 'sampling.temperature' is {s.temperature}: it must be >= 0")
    if not 0 < s.top_p <= 1:
        raise ConfigError(f"config key 'sampling.top_p' is {s.top_p}: it must be in (0, 1]")
    if s.temperature == 0 and s.n > 1:
        raise ConfigError(
            f"sampling.temperature=0 with sampling.n={s.n} gives {s.n} identical greedy samples: "
            "set sampling.temperature > 0 or sampling.n=1"
        )
    if s.max_tokens >= m.max_model_len:
        raise ConfigError(
            f"sampling.max_tokens={s.max_tokens} leaves no room for a prompt in "
            f"model.max_model_len={m.max_model_len}: lower max_tokens or raise max_model_len"
        )
    if m.gpu_memory_utilization is not None and not 0 < m.gpu_memory_utilization <= 1:
        raise ConfigError(
            f"config key 'model.gpu_memory_utilization' is {m.gpu_memory_utilization}: it must be in (0, 1]"
        )
    check_verify_config(config.verify)
    check_metrics_config(config.metrics)


def to_yaml(config: JobConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(config))
