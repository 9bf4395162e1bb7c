"""Values and combinations of a config that the schema's types cannot express: one-line
`ConfigError`s naming the key and the fix."""

from jobs.config.schema import (JobConfig, MetricsConfig, PromptConfig, ScoreConfig, StrategyConfig, VerifyConfig,
                                VerifyMathConfig)
from jobs.errors import ConfigError
from jobs.ray_syntax import label_selector_error, resources_error
from verifiers.extract import EXTRACTS
from verifiers.math_answer import MATH_TARGETS
from verifiers.registry import VerifySettings


SANDBOX_MODES = ("auto", "bwrap", "rlimits")


def verify_settings(config: VerifyConfig) -> VerifySettings:
    """What the verifiers take of a verify section (the rest says where they run)."""
    return VerifySettings(timeout_s=config.timeout_s, memory_mb=config.memory_mb, sandbox=config.sandbox,
                          python=config.python, repos=config.repos, gold_runs=config.gold_runs,
                          allow_test_edits=config.allow_test_edits, extract=config.extract,
                          math_precision=config.math.precision, math_strict=config.math.strict,
                          math_targets=tuple(config.math.targets))


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
    if v.gold_runs < 0:
        raise ConfigError(f"config key 'verify.gold_runs' is {v.gold_runs}: it must be >= 0 (0: no gold self-check)")
    if v.extract is not None and v.extract not in EXTRACTS:
        raise ConfigError(f"config key 'verify.extract' is {v.extract!r}: use one of {', '.join(EXTRACTS)} (or null: the verifier's own)")
    check_math_config(v.math)
    check_placement_keys("verify", v.resources, v.label_selector)


def check_math_config(m: VerifyMathConfig) -> None:
    if not 0 <= m.precision <= 15:
        raise ConfigError(f"config key 'verify.math.precision' is {m.precision}: it must be in 0..15 (decimal places)")
    unknown = [t for t in m.targets if t not in MATH_TARGETS]
    if unknown or not m.targets or len(set(m.targets)) < len(m.targets):
        raise ConfigError(f"config key 'verify.math.targets' is {list(m.targets)}: give distinct ones of "
                          f"{', '.join(MATH_TARGETS)}, e.g. [latex,expr]")


def check_placement_keys(section: str, resources: dict, label_selector: dict) -> None:
    """`<section>.resources` and `<section>.label_selector` as Ray will take them."""
    problem = resources_error(resources, f"{section}.resources") or label_selector_error(label_selector, f"{section}.label_selector")
    if problem:
        raise ConfigError(problem)


SCORE_KINDS = ("outcome", "process")
SCORE_AGGREGATES = ("last", "min", "prod", "mean")
SCORE_STARTS = ("after_generation", "with_generation")


def check_score_config(s: ScoreConfig) -> None:
    for key, value, allowed in (("kind", s.kind, SCORE_KINDS), ("aggregate", s.aggregate, SCORE_AGGREGATES),
                                ("start", s.start, SCORE_STARTS)):
        if value not in allowed:
            raise ConfigError(f"config key 'score.{key}' is {value!r}: use one of {', '.join(allowed)}")
    for key, value in (("max_model_len", s.max_model_len), ("tensor_parallel_size", s.tensor_parallel_size)):
        if value < 1:
            raise ConfigError(f"config key 'score.{key}' is {value}: it must be at least 1")
    if s.workers is not None and s.workers < 1:
        raise ConfigError(f"config key 'score.workers' is {s.workers}: it must be at least 1")
    if s.max_unit_retries < 0:
        raise ConfigError(f"config key 'score.max_unit_retries' is {s.max_unit_retries}: it must be >= 0")
    if s.cpus_per_worker <= 0:
        raise ConfigError(f"config key 'score.cpus_per_worker' is {s.cpus_per_worker}: it must be > 0")
    if not s.step_separator:
        raise ConfigError("config key 'score.step_separator' is empty: a process reward model needs steps, e.g. '\\n\\n'")
    if s.gpu_memory_utilization is not None and not 0 < s.gpu_memory_utilization <= 1:
        raise ConfigError(f"config key 'score.gpu_memory_utilization' is {s.gpu_memory_utilization}: it must be in (0, 1]")
    check_placement_keys("score", s.resources, s.label_selector)


def check_metrics_config(m: MetricsConfig) -> None:
    if m.ks is not None and (not m.ks or min(m.ks) < 1):
        raise ConfigError(f"config key 'metrics.ks' is {list(m.ks)}: give sample counts >= 1, e.g. metrics.ks=[1,10,100]")
    if m.draws is not None and m.draws < 2:
        raise ConfigError(f"config key 'metrics.draws' is {m.draws}: it must be at least 2 (a standard error needs two)")
    if m.model_params is not None and m.model_params < 1:
        raise ConfigError(f"config key 'metrics.model_params' is {m.model_params}: it must be at least 1")


PROMPT_CHAT_MODES = ("auto", "true", "false")


def check_prompt_config(p: PromptConfig) -> None:
    """The prompt section; a template's syntax too, so a typo fails before any problem is loaded."""
    # YAML and overrides read true/false as booleans, which the str field holds as 'True'/'False'.
    if p.chat.lower() not in PROMPT_CHAT_MODES:
        raise ConfigError(f"config key 'prompt.chat' is {p.chat!r}: use one of {', '.join(PROMPT_CHAT_MODES)}")
    if p.shots is not None and p.shots < 0:
        raise ConfigError(f"config key 'prompt.shots' is {p.shots}: it must be >= 0")
    if p.few_shot is None and (p.shots is not None or p.few_shot_options):
        key = "shots" if p.shots is not None else "few_shot_options"
        raise ConfigError(f"config key 'prompt.{key}' is set without prompt.few_shot: name the examples' file or dataset")
    if not p.few_shot_completion:
        raise ConfigError("config key 'prompt.few_shot_completion' is empty: name the examples' column with the worked answer")
    if p.template is not None:
        import jinja2  # here, not at import: only configs with a template need it

        try:
            jinja2.Environment().parse(p.template)
        except jinja2.TemplateSyntaxError as err:
            raise ConfigError(f"config key 'prompt.template' is not a valid Jinja2 template (line {err.lineno}: {err.message})") from None


STRATEGY_KINDS = ("sample", "beam", "dvts")


def is_search(config: JobConfig) -> bool:
    return config.strategy.kind != "sample"


def resolve_strategy(config: JobConfig) -> None:
    """A search's sampling.n is strategy.width (set from it, or giving it), and its PRM splits
    a trajectory into steps where the search ends them: score.step_separator is
    strategy.step_separator when that is set (for a sample run too, so that it is scored like
    a search it is compared with), and gives it otherwise."""
    t = config.strategy
    if t.kind == "sample":
        # A sample point of a sweep against a search: its PRM splits steps where the search's does.
        if t.step_separator is not None:
            config.score.step_separator = t.step_separator
        return
    if t.width is None:
        t.width = config.sampling.n
    config.sampling.n = t.width
    if t.step_separator is None:
        t.step_separator = config.score.step_separator
    config.score.step_separator = t.step_separator


def check_strategy_config(config: JobConfig) -> None:
    t = config.strategy
    if t.kind not in STRATEGY_KINDS:
        raise ConfigError(f"config key 'strategy.kind' is {t.kind!r}: use one of {', '.join(STRATEGY_KINDS)}")
    if t.kind == "sample":
        return
    for key, value, least in (("width", t.width, 1), ("beam", t.beam, 1), ("max_steps", t.max_steps, 1),
                              ("lookahead", t.lookahead, 0)):
        if value < least:
            raise ConfigError(f"config key 'strategy.{key}' is {value}: it must be at least {least}")
    if t.width % t.beam:
        shape = "N/M subtrees of M children" if t.kind == "dvts" else "N/M children of each of the M kept trajectories"
        raise ConfigError(f"strategy.beam={t.beam} does not divide strategy.width={t.width} ({t.kind} makes {shape}): "
                          f"pick a divisor of {t.width}, e.g. strategy.beam={_divisor_near(t.width, t.beam)}")
    if not t.step_separator:
        raise ConfigError("config key 'strategy.step_separator' is empty: a search needs the text that ends a step, e.g. '\\n\\n'")
    if config.score.model is None:
        raise ConfigError(f"strategy.kind={t.kind} needs a process reward model to score each step: set "
                          "score.model=PATH and score.kind=process (or strategy.kind=sample)")
    if config.score.kind != "process":
        raise ConfigError(f"strategy.kind={t.kind} needs a process reward model, and score.kind is {config.score.kind!r}: "
                          "set score.kind=process with a PRM in score.model")
    if config.allocate.policy != "uniform":
        raise ConfigError(f"allocate.policy={config.allocate.policy} decides how many independent samples a problem gets; "
                          f"strategy.kind={t.kind} makes strategy.width trajectories per problem: use one or the other")


def _divisor_near(width: int, beam: int) -> int:
    return min((d for d in range(1, width + 1) if width % d == 0), key=lambda d: (abs(d - beam), d))


def check_config(config: JobConfig) -> None:
    """Values and combinations the schema's types cannot express."""
    s, m, p = config.sampling, config.model, config.problems
    for key, value in p.columns.items():
        if not (isinstance(value, str) or (isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value))):
            raise ConfigError(f"config key 'problems.columns.{key}' is {value!r}: give a column name, or a list of "
                              "column names whose items are concatenated")
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
    check_strategy_config(config)  # before score's: a search's separator is the PRM's
    check_score_config(config.score)
    check_metrics_config(config.metrics)
    check_prompt_config(config.prompt)
    if config.metrics.score == "reward" and config.score.model is None:
        raise ConfigError("metrics.score=reward needs a reward model to score the samples: set score.model=PATH")
