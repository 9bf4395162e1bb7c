"""Loading a config: `OmegaConf.structured(JobConfig)` merged with a YAML file and command-line
overrides; every OmegaConf complaint becomes a one-line `ConfigError` that names the key (and
the nearest valid key for a typo); the result is checked (`jobs.config.checks`) and returned as
a plain `JobConfig`.
"""

import difflib
from dataclasses import fields, is_dataclass
from typing import Any, Callable, Optional

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException

from jobs.config.checks import resolve_strategy, check_config, check_metrics_config, check_score_config, check_verify_config
from jobs.config.schema import JobConfig, RootConfig
from jobs.errors import ConfigError


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
    resolve_strategy(config)
    check_config(config)
    return config


def merge_config(path: Optional[str], overrides: list[str] = ()) -> JobConfig:
    """Schema <- YAML file <- `key=value` overrides, as a validated `JobConfig`."""
    layers = [(path, read_config_file(path))] if path is not None else []
    return merge_layers(layers + config_layers(list(overrides)))


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
    check_score_config(config.score)
    check_metrics_config(config.metrics)
    return config


def to_yaml(config: JobConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(config))
