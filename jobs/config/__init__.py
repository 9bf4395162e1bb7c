"""The job config: the schema (`schema`), loading YAML and overrides into it (`load`), and the
checks of values the types cannot express (`checks`). The names below are the package's API."""

from jobs.config.checks import (
    SANDBOX_MODES, SCORE_AGGREGATES, SCORE_KINDS, SCORE_STARTS, STRATEGY_KINDS, check_config, is_search, check_metrics_config,
    check_placement_keys, check_score_config, check_verify_config, verify_settings,
)
from jobs.config.load import (
    config_layers, merge_config, merge_layers, merge_root_config, read_config_file, to_yaml, valid_keys,
)
from jobs.config.schema import (
    AllocateConfig, ClusterConfig, JobConfig, MetricsConfig, ModelConfig, PlanConfig, ProblemsConfig, RootConfig, RunConfig,
    SamplingConfig, ScoreConfig, StrategyConfig, VerifyConfig,
)

__all__ = [
    "SANDBOX_MODES", "SCORE_AGGREGATES", "SCORE_KINDS", "SCORE_STARTS", "STRATEGY_KINDS", "StrategyConfig", "is_search", "AllocateConfig", "ClusterConfig", "JobConfig", "MetricsConfig",
    "ModelConfig", "PlanConfig", "ProblemsConfig", "RootConfig", "RunConfig", "SamplingConfig", "ScoreConfig",
    "VerifyConfig", "check_config", "check_metrics_config", "check_placement_keys", "check_score_config",
    "check_verify_config", "config_layers", "merge_config", "merge_layers", "merge_root_config", "read_config_file",
    "to_yaml", "valid_keys", "verify_settings",
]
