"""A sweep's grid: axes from `key=a,b` overrides and the YAML's `sweep:` section, one point per
combination, each point a full run under `<run.root>/<point name>/`, and `sweep.yaml`.

    troop sweep conf/demo.yaml sampling.temperature=0.6,1.0 sampling.n=4,8

is four points named `temperature=0.6,n=4`, `temperature=0.6,n=8`, ... A comma inside brackets
or quotes is a value's own (`sampling.stop=[a,b]` is one value); the same axes can be written
in the YAML, where values keep their types:

    sweep:
      sampling.temperature: [0.6, 1.0]
      sampling.n: [4, 8]

An axis on the command line replaces the YAML's axis of the same key. Pure: nothing here
starts Ray or writes to a store except `write_sweep_yaml`.
"""

import itertools
import re
from dataclasses import dataclass
from typing import Any, Optional

from omegaconf import OmegaConf

from jobs.config import JobConfig, config_layers, merge_layers, read_config_file
from jobs.errors import ConfigError
from jobs.store.root import RunStore
from jobs.store.sweep_root import is_sweep_root, point_root, read_sweep_points

SWEEP_SECTION = "sweep"


@dataclass
class Point:
    name: str  # readable from its values, e.g. "temperature=0.6,n=256"; its folder under the sweep root
    values: dict[str, Any]  # axis key -> this point's value
    config: JobConfig  # run.root already the point's folder


@dataclass
class Sweep:
    root: str  # the base config's run.root: sweep.yaml and one folder per point
    storage_options: dict
    config_path: Optional[str]
    overrides: list[str]  # the plain overrides, applied to every point
    axes: dict[str, list]
    points: list[Point]

    @property
    def store(self) -> RunStore:
        return RunStore(self.root, dict(self.storage_options))


def split_values(text: str) -> list[str]:
    """`text` split at its top-level commas (outside brackets, braces and quotes)."""
    parts, depth, quote, start = [], 0, None, 0
    for i, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def split_overrides(overrides: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """(axes, plain overrides): `key=a,b` is an axis with values a and b; the rest apply to all."""
    axes: dict[str, list[str]] = {}
    plain: list[str] = []
    for item in overrides:
        key, sep, value = item.partition("=")
        values = split_values(value) if sep else [value]
        if len(values) == 1:
            plain.append(item)
            continue
        if any(not v.strip() for v in values):
            raise ConfigError(f"sweep axis '{item}' has an empty value: write e.g. {key}=0.6,1.0")
        if key in axes:
            raise ConfigError(f"sweep axis '{key}' is given twice: list all its values once, e.g. {key}=a,b,c")
        axes[key] = values
    return axes, plain


def is_sweep(config_path: Optional[str], overrides: list[str]) -> bool:
    """Whether these arguments describe a sweep (an axis override or a `sweep:` section)."""
    if split_overrides(overrides)[0]:
        return True
    return config_path is not None and SWEEP_SECTION in read_config_file(config_path)


def _yaml_axes(section, path: str) -> dict[str, list]:
    if not OmegaConf.is_dict(section):
        raise ConfigError(f"the sweep: section of {path} must map keys to lists of values, e.g. sampling.n: [4, 8]")
    axes = {}
    for key, values in OmegaConf.to_container(section).items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweep axis '{key}' in {path} must be a non-empty list of values, e.g. {key}: [a, b]")
        axes[str(key)] = values
    return axes


def _axis_value(raw) -> Any:
    """A command-line value parsed as OmegaConf parses `key=value` (YAML values are already typed)."""
    if not isinstance(raw, str):
        return raw
    return OmegaConf.to_container(OmegaConf.from_dotlist([f"value={raw}"]))["value"]


def _short_keys(keys: list[str]) -> dict[str, str]:
    """The shortest dotted suffix of each key that tells it apart from the others."""
    short = {}
    for key in keys:
        parts = key.split(".")
        for depth in range(1, len(parts) + 1):
            suffix = ".".join(parts[-depth:])
            if not any(other != key and (other == suffix or other.endswith("." + suffix)) for other in keys):
                break
        short[key] = suffix
    return short


def _flow(value) -> str:
    """A value as YAML flow text without spaces: 0.6, true, null, [a,b], {x:1}."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_flow(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_flow(v)}" for k, v in value.items()) + "}"
    return str(value)


def _format_value(value, full: bool) -> str:
    """A value as a folder name part: a path shows its last component unless `full`."""
    text = _flow(value)
    if isinstance(value, str) and not full and "/" in value.strip("/"):
        text = value.rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"[/\\\s]+", "_", text.strip()) or "_"


def point_names(axes: dict[str, list], combos: list[tuple]) -> list[str]:
    """Readable, unique folder names: `temperature=0.6,n=256`; values that are paths show
    their last component unless two points would then share a name."""
    short = _short_keys(list(axes))
    for full in (False, True):
        names = [",".join(f"{short[k]}={_format_value(v, full)}" for k, v in zip(axes, combo)) for combo in combos]
        if len(set(names)) == len(names):
            return names
    raise ConfigError(f"sweep axes {', '.join(axes)} give two points the same folder name: make their values differ")


def _file_layers(config_path: Optional[str]) -> tuple[list, dict[str, list]]:
    """The config file as a merge layer without its `sweep:` section, and that section's axes."""
    if config_path is None:
        return [], {}
    loaded = read_config_file(config_path)
    if SWEEP_SECTION not in loaded:
        return [(config_path, loaded)], {}
    axes = _yaml_axes(loaded[SWEEP_SECTION], config_path)
    return [(config_path, OmegaConf.masked_copy(loaded, [k for k in loaded if k != SWEEP_SECTION]))], axes


def load_sweep(config_path: Optional[str], overrides: list[str]) -> Sweep:
    """The sweep these arguments describe, every point's config merged and checked."""
    cli_axes, plain = split_overrides(overrides)
    layers, file_axes = _file_layers(config_path)
    written = {**file_axes, **cli_axes}  # names show values as the user wrote them ("0.60", not 0.6)
    axes = {key: [_axis_value(v) for v in values] for key, values in written.items()}
    if not axes:
        raise ConfigError("a sweep needs at least one axis: key=a,b on the command line or a sweep: section in the config")
    if "run.root" in axes:
        raise ConfigError("run.root cannot be a sweep axis: the points' folders are named after the other axes")
    layers += config_layers(plain)
    base = merge_layers(layers)
    combos = list(itertools.product(*axes.values()))
    points = []
    names = point_names(written, list(itertools.product(*written.values())))
    for name, combo in zip(names, combos):
        values = dict(zip(axes, combo))
        point_layers = [(f"sweep axis '{k}={v}'", _layer(k, v)) for k, v in values.items()]
        root_layer = ("the sweep point's folder", OmegaConf.create({"run": {"root": point_root(base.run.root, name)}}))
        points.append(Point(name, values, merge_layers(layers + point_layers + [root_layer])))
    return Sweep(base.run.root, dict(base.run.storage_options), config_path, plain, axes, points)


def _layer(key: str, value):
    layer = OmegaConf.create()
    OmegaConf.update(layer, key, value, force_add=True)
    return layer


def write_sweep_yaml(sweep: Sweep) -> None:
    """`<sweep root>/sweep.yaml`: the points of this sweep after those an earlier sweep command
    listed there (a sweep extended by a new value keeps its old points in the comparison)."""
    store = sweep.store
    earlier = read_sweep_points(store) if is_sweep_root(store) else []
    names = {p.name for p in sweep.points}
    points = [p for p in earlier if p["name"] not in names] + [{"name": p.name, "values": p.values} for p in sweep.points]
    listing = {"config": sweep.config_path, "overrides": list(sweep.overrides), "axes": sweep.axes, "points": points}
    store.write_text(store.sweep_yaml, OmegaConf.to_yaml(OmegaConf.create(listing)))
